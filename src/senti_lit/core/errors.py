"""What bad user input raises: the one error type every layer may raise and every command turns into one line."""


class DataError(ValueError):
    """Bad input data; the message names the file, the row and the fix."""
