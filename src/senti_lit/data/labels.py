"""LabelSpace: the ordered label names of a task and how raw labels map onto them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True)
class LabelSpace:
    """Ordered label names; `multi_label` means each example carries a set of labels (one sigmoid per label).

    `aliases` maps other spellings onto a name (e.g. "happiness" -> "joy") so datasets can share one space.
    """

    names: tuple[str, ...]
    multi_label: bool = False
    aliases: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        if len(names) < 2 and not self.multi_label:
            raise ValueError(f"a single-label task needs at least 2 labels, got {list(names)}")
        if len(set(names)) != len(names):
            raise ValueError(f"label names must be unique, got {list(names)}")
        object.__setattr__(self, "names", names)
        unknown = {v for v in self.aliases.values() if v not in names}
        if unknown:
            raise ValueError(f"aliases point at unknown labels {sorted(unknown)}; labels are {list(names)}")

    @property
    def num_labels(self) -> int:
        return len(self.names)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    def id_of(self, label: str) -> int:
        """Index of a label name or alias; KeyError names the known labels."""
        name = self.aliases.get(str(label), str(label))
        try:
            return self.label2id[name]
        except KeyError:
            raise KeyError(f"unknown label {label!r}; known labels: {list(self.names)}") from None

    def encode(self, labels: str | Iterable[str]) -> int | list[int]:
        """Single-label: the class index. Multi-label: a 0/1 vector over `names`."""
        if not self.multi_label:
            return self.id_of(labels)  # type: ignore[arg-type]
        if isinstance(labels, str):
            raise TypeError(f"multi-label examples need a collection of labels, got the string {labels!r}")
        vector = [0] * self.num_labels
        for label in labels:
            vector[self.id_of(label)] = 1
        return vector

    def to_dict(self) -> dict:
        return {"names": list(self.names), "multi_label": self.multi_label, "aliases": dict(self.aliases)}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelSpace":
        return cls(tuple(d["names"]), bool(d.get("multi_label", False)), dict(d.get("aliases", {})))

    @classmethod
    def infer(cls, labels: Sequence, multi_label: bool = False) -> "LabelSpace":
        """Names in sorted order from the labels seen (sets of labels when multi-label)."""
        seen = {l for ls in labels for l in ls} if multi_label else set(labels)
        return cls(tuple(sorted(str(l) for l in seen)), multi_label)
