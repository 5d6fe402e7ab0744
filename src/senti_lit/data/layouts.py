"""DatasetFiles: a published dataset in whichever of its known file layouts the user has, else its Hub copy.

A dataset is often published in several forms (ChnSentiCorp: one hotel-review CSV, or Baidu's train/dev/test
TSVs). Each form is a *layout*: the published file name per split and the reader options for those files.
`data.path` may be
- a folder: the first layout whose train (or single) file is in it is read; its split files keep their splits;
- a file: the layout that names it, or else the one whose format and columns fit it; read as one unsplit table;
- absent: the dataset's Hub copy is downloaded (when configured, with `datasets` installed and a network),
  otherwise the error lists which files to put where.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from senti_lit.core.config import plain
from senti_lit.core.errors import DataError
from senti_lit.data.examples import Example
from senti_lit.data.hub import HubSource
from senti_lit.data.sources import TableSource, detect_encoding, read_lines, sniff_format

SPLIT_FILES = ("all", "train", "val", "test")

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Layout:
    """One published form of a dataset: `files` maps all|train|val|test to a file name; `reader` holds the
    TableSource options for those files."""

    name: str
    files: dict[str, str]
    reader: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.files) - set(SPLIT_FILES)
        if unknown or not ({"all", "train"} & set(self.files)):
            raise ValueError(f"layout {self.name!r}: files must be keyed by {list(SPLIT_FILES)} and include "
                             f"'all' or 'train', got {sorted(self.files)}")

    def main_file(self) -> str:
        return self.files.get("all") or self.files["train"]

    def describe(self) -> str:
        return " + ".join(self.files.values())

    def fits(self, path: Path) -> bool:
        """Whether `path` looks like this layout's files: same format and, with a header, the same column names."""
        encoding = detect_encoding(path, self.reader.get("encoding", "auto"))
        fmt, detected = self.reader.get("format", "auto"), sniff_format(path, encoding)
        if fmt not in ("auto", detected):
            return False
        if self.reader.get("header", True) is not True or detected == "jsonl":
            return True
        first = next((line for _, line in read_lines(path, encoding) if line.strip()), "")
        names = next(csv.reader([first], delimiter="\t" if detected == "tsv" else ","), [])
        columns = [self.reader.get("text_column", "text"), self.reader.get("label_column", "label"),
                   *(self.reader.get("label_columns") or [])]
        return all(c in names for c in columns if isinstance(c, str))


class DatasetFiles:
    """The source of every named dataset config (`data=weibo`, `data=goemotions`, ...).

    Args:
        path: `data.path`: a folder holding the published files, one file, or a missing path (-> Hub).
        layouts: the published forms, in order of preference: `[{name, files: {all|train|val|test: file},
            reader: {TableSource options}}]`.
        layout: force one layout by name (e.g. to read a renamed file with that layout's options).
        hub: `{id, config, text, label, splits}` of a Hugging Face Hub copy, or null.
        on_bad_row, encoding: as for TableSource, applied to every file.
    """

    def __init__(
        self,
        path: str | Path,
        layouts: Sequence[Mapping[str, Any]],
        layout: str | None = None,
        hub: Mapping[str, Any] | None = None,
        on_bad_row: str = "error",
        encoding: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.layouts = [Layout(str(l["name"]), dict(l["files"]), dict(l.get("reader") or {})) for l in plain(layouts)]
        if layout is not None and layout not in {l.name for l in self.layouts}:
            raise ValueError(f"data.source.layout={layout!r} is not one of {[l.name for l in self.layouts]}")
        self.forced = layout
        self.hub = HubSource(**plain(hub)) if hub else None
        self.on_bad_row, self.encoding = on_bad_row, encoding
        self.skipped: Counter[str] = Counter()
        self.bad_rows: list[tuple[str, str]] = []  # (file:line, reason) of each skipped row, every file
        self.chosen: str | None = None  # the layout (or "hub") actually read, for the run's data summary

    def __repr__(self) -> str:
        return f"DatasetFiles({str(self.path)!r}, layout={self.chosen or self.forced})"

    # -- which files ------------------------------------------------------------------------------------------
    def plan(self) -> tuple[Layout, dict[str | None, Path]] | None:
        """(layout, {split or None: file}) for the local files, or None when there are none."""
        candidates = [l for l in self.layouts if self.forced in (None, l.name)]
        if self.path.is_file():
            named = [l for l in candidates if self.path.name in l.files.values()]
            fitting = named or [l for l in candidates if l.fits(self.path)]
            if not fitting:
                raise DataError(
                    f"{self.path}: matches none of this dataset's layouts ({self._expected()}); name the file as "
                    "published, or set data.source.layout to the layout whose format it has")
            return fitting[0], {None: self.path}
        if self.path.is_dir():
            present = {l.name: {split: self.path / name for split, name in l.files.items()
                                if (self.path / name).is_file()} for l in candidates}
            complete = [l for l in candidates if (self.path / l.main_file()).is_file()]
            if len(complete) > 1:  # which one the user meant is theirs to say, not the config order's
                raise DataError(
                    f"{self.path}: holds {len(complete)} of this dataset's layouts: "
                    + "; ".join(f"{l.name} ({', '.join(p.name for p in present[l.name].values())})" for l in complete)
                    + f"; choose one with data.source.layout={complete[0].name} (or "
                    f"{', '.join(l.name for l in complete[1:])}), or set data.path to the file to read")
            for layout in complete:
                return layout, {(None if s == "all" else s): p for s, p in present[layout.name].items()}
            for layout in candidates:
                if present[layout.name]:
                    # e.g. dev + test copies without train: not a dataset to train on, and no reason to download
                    raise DataError(
                        f"{self.path}: has {', '.join(p.name for p in present[layout.name].values())} of layout "
                        f"{layout.name} but not {layout.main_file()}; add it, or set data.path to one of the files "
                        "to read it alone (split with data.split)")
        return None

    def files(self) -> list[Path]:
        """Every local file read (their content keys the tokenization cache); [] for a Hub download."""
        plan = self.plan()
        if plan is None:
            return []
        return [f for path in plan[1].values() for f in self._table(plan[0], path).files()]

    def _table(self, layout: Layout, path: Path) -> TableSource:
        options = dict(layout.reader)
        options["on_bad_row"] = self.on_bad_row
        if self.encoding:
            options["encoding"] = self.encoding
        return TableSource(path, **options)

    def _expected(self) -> str:
        return "; or ".join(f"{l.name}: {l.describe()}" for l in self.layouts)

    # -- reading ----------------------------------------------------------------------------------------------
    def read(self) -> Iterator[Example]:
        plan = self.plan()
        if plan is None:
            yield from self._from_hub()
            return
        layout, files = plan
        self.chosen = layout.name
        log.info("data: reading layout %s: %s", layout.name,
                 ", ".join(f"{p}{f' ({split})' if split else ''}" for split, p in files.items()))
        for split, path in files.items():
            table = self._table(layout, path)
            for ex in table.read():
                yield dataclasses.replace(ex, split=split) if split else ex
            self.skipped.update(table.skipped)
            self.bad_rows += table.bad_rows

    def _from_hub(self) -> Iterator[Example]:
        missing_file = self.path.suffix and not self.path.is_dir()  # data.path named a file that is not there
        where = f"{self.path} does not exist" if missing_file else f"put {self._expected()} in {self.path}"
        if self.hub is None:
            raise DataError(f"{self.path}: no dataset files found; {where} (or set data.path to your copy)")
        self.chosen = f"hub:{self.hub.id}"
        yield from self.hub.read(offline_hint=f"{where}, or set data.path to your copy")
