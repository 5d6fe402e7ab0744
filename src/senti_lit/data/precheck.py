"""The data's cheap checks, before a training run imports Lightning (seconds): the files exist, the text column is
there and the first row reads. A wrong path or column is then one line within a second or two instead of after
the heavy imports; with declared `data.labels`, every row's label too (for up to LABEL_SCAN_SECONDS: a file too big
for that is checked on by the data module). Everything else is checked where the data module reads the data."""
from __future__ import annotations

import time
from typing import Any, Iterable

from hydra.utils import instantiate
from omegaconf import DictConfig

from senti_lit.core.errors import DataError
from senti_lit.data.cleaning import is_blank
from senti_lit.data.examples import Example
from senti_lit.data.labels import LabelSpace

LABEL_SCAN_SECONDS = 1.5


def check_data_source(data: DictConfig) -> None:
    """Build the data config's reader on its path and read its first row; a reader that cannot be built this way
    (a mix of datasets, a Hub download) is left to the data module."""
    if "source" not in data or data.get("path") is None and not data.source.get("_partial_"):
        return
    try:
        factory: Any = instantiate(data.source)
        source = factory(data.path) if callable(factory) else factory
        plan = getattr(source, "plan", None)
        if plan is not None and plan() is None:
            return  # no local files: the Hub fallback (or its error) is the data module's
        rows = iter(source.read())
        next(rows, None)
        if data.get("labels"):
            check_labels(rows, LabelSpace(tuple(data.labels), bool(data.get("multi_label")),
                                          dict(data.get("aliases") or {})))
    except (DataError, FileNotFoundError):
        raise
    except Exception:  # noqa: BLE001 - not a cheap check for this reader: the data module checks it all
        return


def check_labels(rows: Iterable[Example], labels: LabelSpace) -> None:
    """A row whose label is none of the declared labels (or their aliases) fails now, named as the data module would
    name it; rows the data module skips anyway (no text, no label) are left to it."""
    deadline = time.perf_counter() + LABEL_SCAN_SECONDS
    for ex in rows:
        if ex.label is not None and not is_blank(ex.text):
            try:
                labels.encode(ex.label if isinstance(ex.label, str) else list(ex.label))
            except KeyError as e:
                raise DataError(f"{ex.origin}: {e.args[0]}; fix the row, add the label to data.labels, or map it "
                                "with data.aliases") from None
        if time.perf_counter() > deadline:
            return
