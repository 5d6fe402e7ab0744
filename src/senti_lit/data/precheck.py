"""The data's cheap checks, before a training run imports Lightning (seconds): the files exist, the text column is
there and the first row reads. A wrong path or column is then one line within a second or two instead of after
the heavy imports; everything else is checked where the data module reads the data."""
from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from senti_lit.core.errors import DataError


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
        next(iter(source.read()), None)
    except (DataError, FileNotFoundError):
        raise
    except Exception:  # noqa: BLE001 - not a cheap check for this reader: the data module checks it all
        return
