"""HubSource: a dataset's copy on the Hugging Face Hub, read through the `datasets` library (optional extra).

Used only when the local files are absent; offline (or without `datasets`) the error says which files to put
where. Integer class labels are turned into names with the dataset's own ClassLabel names.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from senti_lit.core.errors import DataError
from senti_lit.data.examples import Example

DEFAULT_SPLITS = {"train": "train", "validation": "val", "test": "test"}


class HubSource:
    """`load_dataset(id, config)`; `splits` maps the Hub's split names onto train/val/test."""

    def __init__(self, id: str, config: str | None = None, text: str = "text", label: str = "label",
                 splits: Mapping[str, str] | None = None) -> None:
        self.id, self.config, self.text, self.label = id, config, text, label
        self.splits = dict(splits or DEFAULT_SPLITS)

    def read(self, offline_hint: str) -> Iterator[Example]:
        try:
            import datasets
        except ImportError:
            raise DataError(f"no local files and the Hub copy {self.id} needs the `datasets` package "
                            f"(pip install 'senti_lit[hub]'); or {offline_hint}") from None
        try:
            loaded = datasets.load_dataset(self.id, self.config)
        except Exception as e:  # offline, unknown id, ...: the library raises many types
            raise DataError(f"could not download {self.id} from the Hugging Face Hub ({type(e).__name__}: {e}); "
                            f"{offline_hint}") from None
        unknown = set(loaded) - set(self.splits)
        if unknown:
            raise DataError(f"{self.id}: splits {sorted(unknown)} are not mapped; set data.source.hub.splits "
                            f"(now {self.splits})")
        for hub_split, part in loaded.items():
            to_name = label_names(part.features[self.label])
            for i, row in enumerate(part, start=1):
                label = row[self.label]
                label = tuple(to_name(v) for v in label) if isinstance(label, (list, tuple)) else to_name(label)
                yield Example(row[self.text] or "", label, f"hub:{self.id}/{hub_split}:{i}", self.splits[hub_split])


def label_names(feature: Any):
    """value -> label name: ClassLabel ids become names (also inside a sequence feature), others become str."""
    inner = getattr(feature, "feature", feature)  # Sequence(ClassLabel) / List(ClassLabel)
    if hasattr(inner, "int2str"):
        return lambda v: inner.int2str(int(v))
    return str
