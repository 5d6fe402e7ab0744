"""`data=mix`: several datasets as one, in one shared label space (the course report's 6- and 13-label sets).

Every part is a whole data config: it is read, cleaned and split by its own rules (its files, aliases, split
seed, cache), so a part's test texts stay test texts in the mix. Labels then pass through the mix's aliases into
the shared `labels`; rows whose label has no place there are dropped and counted per part and label (data.json
`dropped.bad_rows`), never silently.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Iterator, Mapping, Sequence

from senti_lit.core.errors import DataError
from senti_lit.data.examples import Example

log = logging.getLogger(__name__)


class MixSource:
    """Examples of every part (a `TextClassificationDataModule`), with its splits, labels mapped into `labels`."""

    def __init__(self, path: str | None = None, parts: Mapping[str, Any] | None = None,
                 labels: Sequence[str] | None = None, aliases: Mapping[str, str] | None = None) -> None:
        if not parts:
            raise DataError("data=mix needs at least one part: data.source.parts={name: <data config>}")
        if not labels:
            raise DataError("data=mix needs the shared label space: data.labels=[...]")
        self.parts = dict(parts)
        self.labels, self.aliases = set(labels), {str(k): str(v) for k, v in (aliases or {}).items()}
        self.skipped: Counter[str] = Counter()
        self.kept: Counter[str] = Counter()

    def _map(self, label: str) -> str | None:
        label = self.aliases.get(label, label)
        return label if label in self.labels else None

    def read(self) -> Iterator[Example]:
        kinds = {name: part.multi_label for name, part in self.parts.items()}
        if len(set(kinds.values())) > 1:
            raise DataError(f"data=mix: parts mix single- and multi-label data {kinds}; mix one kind")
        for name, part in self.parts.items():
            for split_name, examples in part.prepare_splits().items():
                for ex in examples:
                    label = self._label(name, ex.label)
                    if label is None:
                        continue
                    self.kept[name] += 1
                    yield Example(ex.text, label, f"{name}:{ex.origin}", split_name)
            log.info("data=mix: %s gave %d rows (%s)", name, self.kept[name],
                     ", ".join(f"{k}: {v}" for k, v in self.skipped.items() if k.startswith(f"{name}:")) or
                     "none dropped")

    def _label(self, part: str, label: str | tuple[str, ...]) -> str | tuple[str, ...] | None:
        if isinstance(label, tuple):  # multi-label: labels outside the space go, the row stays if any is left
            mapped = tuple(m for m in (self._map(l) for l in label) if m is not None)
            for l in label:
                if self._map(l) is None:
                    self.skipped[f"{part}: label {l!r} not in data.labels (label removed)"] += 1
            if not mapped:
                self.skipped[f"{part}: no label left in data.labels"] += 1
            return mapped or None
        mapped = self._map(label)
        if mapped is None:
            self.skipped[f"{part}: label {label!r} not in data.labels"] += 1
        return mapped

    def files(self) -> None:
        """No mix-level cache: every part caches its own examples."""
        return None

    def __repr__(self) -> str:
        return f"MixSource({', '.join(f'{n}={p.path}' for n, p in self.parts.items())})"
