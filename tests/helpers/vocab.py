"""A tokenizer stand-in for building real-size architectures from a config (tests, parameter counts)."""


class VocabOnly:
    """A stand-in tokenizer with only a size and special ids: enough for `build_backbone` to build a real-size
    architecture from a config without its tokenizer (parameter counts, tests)."""

    pad_token_id, bos_token_id, eos_token_id, cls_token_id, sep_token_id = 0, None, None, 101, 102

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size
