"""TextClassificationDataModule: read -> clean -> dedup -> split -> tokenize once -> length-bucketed batches.

The flow is explicit: `prepare_splits()` gives the cleaned, split examples (the tokenizer of a from-scratch model
is trained on `train_texts()`), `set_tokenizer()` encodes every split once, the dataloaders batch the encodings with
dynamic padding.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import lightning as L
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase
from transformers.trainer_pt_utils import LengthGroupedSampler

from senti_lit.data.labels import LabelSpace
from senti_lit.data.sources import DataError, Example

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# When one text sits in several published splits, the copy in the later split is kept: test and val stay as
# published and train loses the overlap.
SPLIT_PRIORITY = {None: 0, "train": 1, "val": 2, "test": 3}


@dataclass
class CleanReport:
    """What cleaning dropped, by reason; logged and kept for the run's records."""

    rows_read: int = 0
    empty: int = 0
    duplicates: int = 0
    contradictory_texts: int = 0
    contradictory_rows: int = 0
    kept: int = 0
    bad_rows: dict[str, int] = field(default_factory=dict)  # skipped by the reader (on_bad_row=skip), by reason
    examples_of_contradictions: list[str] = field(default_factory=list)

    def summary(self) -> str:
        bad = f"; skipped {sum(self.bad_rows.values())} bad rows {self.bad_rows}" if self.bad_rows else ""
        return (
            f"read {self.rows_read} rows{bad}; dropped {self.empty} empty, {self.duplicates} exact duplicates, "
            f"{self.contradictory_rows} rows of {self.contradictory_texts} texts labelled both ways; "
            f"kept {self.kept}"
        )


def normalize(text: str) -> str:
    """The form texts are compared and trained in: surrounding whitespace is never meaningful."""
    return text.strip()


def clean(examples: Sequence[Example]) -> tuple[list[Example], CleanReport]:
    """Drop empty texts, exact duplicates, and every copy of a text that carries different labels."""
    report = CleanReport(rows_read=len(examples))
    by_text: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        text = normalize(ex.text)
        if not text:
            report.empty += 1
            continue
        label = ex.label if isinstance(ex.label, str) else tuple(sorted(set(ex.label)))  # label sets: order-free
        by_text[text].append(Example(text, label, ex.origin, ex.split))
    kept: list[Example] = []
    for text, group in by_text.items():
        labels = {ex.label for ex in group}
        if len(labels) > 1:
            report.contradictory_texts += 1
            report.contradictory_rows += len(group)
            if len(report.examples_of_contradictions) < 3:
                origins = sorted({ex.origin for ex in group})
                more = f" (+{len(origins) - 2} more)" if len(origins) > 2 else ""
                report.examples_of_contradictions.append(f"{text[:30]!r} at {', '.join(origins[:2])}{more}")
            continue
        report.duplicates += len(group) - 1
        kept.append(max(group, key=lambda ex: SPLIT_PRIORITY[ex.split]))
    report.kept = len(kept)
    return kept, report


def take(examples: list[Example], share: float, seed: int, multi_label: bool) -> tuple[list, list]:
    """Seeded split of `share` of `examples` (stratified on the label for single-label): (rest, taken)."""
    strata = None if multi_label else [ex.label for ex in examples]
    try:
        return train_test_split(examples, test_size=share, random_state=seed, stratify=strata)
    except ValueError as e:  # sklearn's message does not say which label or what to do
        rare = {k: v for k, v in Counter(strata or []).items() if v < 3}
        raise DataError(
            f"cannot split {share:.0%} off {len(examples)} examples: {e}; labels with fewer than 3 examples: "
            f"{rare or 'none'}; add examples, drop those labels, or change data.split.fractions"
        ) from None


def by_content(examples: Sequence[Example]) -> list[Example]:
    """Sorted by text and label, so a split depends on the data, not on file or reading order."""
    return sorted(examples, key=lambda ex: (ex.text, str(ex.label)))


def split(
    examples: Sequence[Example], fractions: Sequence[float], seed: int, multi_label: bool
) -> dict[str, list[Example]]:
    """Seeded train/val/test split, stratified on the label (single-label tasks)."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) <= 0:
        raise ValueError(f"data.split.fractions must be three positive numbers summing to 1, got {list(fractions)}")
    _, val_frac, test_frac = fractions
    train, rest = take(by_content(examples), val_frac + test_frac, seed, multi_label)
    val, test = take(rest, test_frac / (val_frac + test_frac), seed, multi_label)
    return {"train": train, "val": val, "test": test}


def published_splits(
    examples: Sequence[Example], fractions: Sequence[float], seed: int, multi_label: bool
) -> dict[str, list[Example]]:
    """Keep the dataset's own splits; a missing val or test split is split off train (seeded, stratified)."""
    unknown = {ex.split for ex in examples} - set(SPLITS)
    parts = {name: by_content([ex for ex in examples if ex.split == name]) for name in SPLITS}
    if unknown or not parts["train"]:
        raise DataError(f"published splits must be named {list(SPLITS)} and include train; got "
                        f"{sorted(map(str, unknown))} and {len(parts['train'])} train examples")
    share = dict(zip(SPLITS, fractions))
    for name in ("test", "val"):
        if not parts[name]:
            remaining = share["train"] + sum(share[n] for n in ("val", "test") if not parts[n])
            parts["train"], parts[name] = take(parts["train"], share[name] / remaining, seed, multi_label)
    return parts


def check_no_leakage(splits: dict[str, list[Example]]) -> None:
    """No text may sit in two splits: a model would be tested on what it trained on."""
    seen: dict[str, str] = {}
    for name, examples in splits.items():
        for ex in examples:
            other = seen.setdefault(ex.text, name)
            if other != name:
                raise DataError(f"{ex.origin}: text is in both the {other} and {name} splits: {ex.text[:60]!r}")


def label_histogram(examples: Sequence[Example]) -> dict[str, int]:
    counts = Counter(label for ex in examples for label in ((ex.label,) if isinstance(ex.label, str) else ex.label))
    return dict(sorted(counts.items()))


class EncodedDataset(Dataset):
    """Token ids and labels of one split, encoded once."""

    def __init__(self, input_ids: list[list[int]], labels: list[Any]) -> None:
        self.input_ids, self.labels = input_ids, labels

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


class TextClassificationDataModule(L.LightningDataModule):
    """Any single- or multi-label text classification dataset given by a `source` with a `read()` method.

    Args:
        source: partial reader, called with `path`, whose `read()` yields `Example`s (`senti_lit.data.sources`).
        path: the dataset's file or folder (`data.path=`); each source documents its default.
        labels: label names in order; None infers them (sorted) from the data.
        multi_label: each example has a set of labels.
        split: `{fractions: [train, val, test], seed: int}`; the split seed is separate from the training seed so a
            seed sweep trains on one fixed split.
        max_length: tokens per text after truncation (special tokens included).
        length_grouped: batch texts of similar length together in training (less padding, same randomness).
    """

    def __init__(
        self,
        source: Any,
        path: str | None = None,
        labels: Sequence[str] | None = None,
        multi_label: bool = False,
        split: dict | None = None,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 128,
        num_workers: int = 0,
        length_grouped: bool = True,
    ) -> None:
        super().__init__()
        split = dict(split or {})
        self.source_factory, self.path = source, path
        self.source: Any = None
        self.labels = list(labels) if labels else None
        self.multi_label = multi_label
        self.fractions = tuple(split.get("fractions", (0.8, 0.1, 0.1)))
        self.split_seed = int(split.get("seed", 42))
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.length_grouped = length_grouped
        self.splits: dict[str, list[Example]] | None = None
        self.label_space: LabelSpace | None = None
        self.clean_report: CleanReport | None = None
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.datasets: dict[str, EncodedDataset] = {}

    # -- examples -------------------------------------------------------------------------------------------------
    def prepare_splits(self) -> dict[str, list[Example]]:
        """Read, clean and split once; later calls return the same splits."""
        if self.splits is not None:
            return self.splits
        self.source = self.source_factory(self.path)  # built here, not in __init__: composing a config reads nothing
        examples, report = clean(list(self.source.read()))
        report.bad_rows = dict(getattr(self.source, "skipped", {}))
        self.clean_report = report
        log.info("data: %s", report.summary())
        if report.contradictory_texts:
            log.info("data: contradictory texts, e.g. %s", "; ".join(report.examples_of_contradictions))
        if not examples:
            raise DataError(f"{self.source!r}: no usable rows ({report.summary()})")
        label_values = [ex.label for ex in examples]
        self.label_space = (
            LabelSpace(tuple(self.labels), self.multi_label)
            if self.labels
            else LabelSpace.infer(label_values, self.multi_label)
        )
        for ex in examples:  # unknown labels fail here, naming the row, not later inside a batch
            try:
                self.label_space.encode(ex.label)
            except KeyError as e:
                raise DataError(f"{ex.origin}: {e.args[0]}; fix the row or add the label to data.labels") from None
        if any(ex.split for ex in examples):
            self.splits = published_splits(examples, self.fractions, self.split_seed, self.multi_label)
        else:
            self.splits = split(examples, self.fractions, self.split_seed, self.multi_label)
        check_no_leakage(self.splits)
        for name, part in self.splits.items():
            log.info("data: %s split: %d examples, labels %s", name, len(part), label_histogram(part))
        return self.splits

    def summary(self) -> dict[str, Any]:
        """Rows read / kept / dropped by reason, split sizes and label histogram per split (saved with the run)."""
        splits = self.prepare_splits()
        report = self.clean_report
        return {
            "source": repr(self.source),
            "rows_read": report.rows_read,
            "kept": report.kept,
            "dropped": {"empty": report.empty, "duplicates": report.duplicates,
                        "contradictory_rows": report.contradictory_rows, "bad_rows": report.bad_rows},
            "contradictory_texts": report.contradictory_texts,
            "labels": list(self.label_space.names),
            "split_seed": self.split_seed,
            "splits": {name: {"size": len(part), "labels": label_histogram(part)} for name, part in splits.items()},
        }

    def train_texts(self) -> list[str]:
        return [ex.text for ex in self.prepare_splits()["train"]]

    # -- encodings ------------------------------------------------------------------------------------------------
    def set_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Encode every split once with `tokenizer` (truncated to `max_length`)."""
        splits = self.prepare_splits()
        self.tokenizer = tokenizer
        self.collator = DataCollatorWithPadding(tokenizer)
        for name, examples in splits.items():
            ids = tokenizer(
                [ex.text for ex in examples], truncation=True, max_length=self.max_length,
                return_attention_mask=False, return_token_type_ids=False,
            )["input_ids"]
            labels = [self.label_space.encode(ex.label) for ex in examples]
            if self.multi_label:
                labels = [[float(v) for v in vector] for vector in labels]
            self.datasets[name] = EncodedDataset(ids, labels)

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:
            raise RuntimeError("call set_tokenizer(tokenizer) before using the dataloaders")

    def train_dataloader(self) -> DataLoader:
        ds = self.datasets["train"]
        if self.length_grouped:
            # Shuffled mega-batches sorted by length inside: little padding, still random across epochs.
            sampler = LengthGroupedSampler(self.batch_size, lengths=ds.lengths())
            return self._loader(ds, self.batch_size, sampler=sampler)
        return self._loader(ds, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def unlabelled_train_loader(self, batch_size: int, collate_fn: Any) -> DataLoader:
        """The training texts' token ids without labels (for MLM warm-up), length-grouped."""
        ids = self.datasets["train"].input_ids
        sampler = LengthGroupedSampler(batch_size, lengths=[len(x) for x in ids])
        return self._loader([{"input_ids": x} for x in ids], batch_size, sampler=sampler, collate_fn=collate_fn)

    def _eval_loader(self, name: str) -> DataLoader:
        ds = self.datasets[name]
        # Evaluation order does not matter for metrics; length order minimises padding.
        order = sorted(range(len(ds)), key=ds.lengths().__getitem__)
        return self._loader(ds, self.eval_batch_size, sampler=order)

    def _loader(self, ds: Any, batch_size: int, **kwargs: Any) -> DataLoader:
        kwargs.setdefault("collate_fn", self.collator)
        return DataLoader(
            ds, batch_size=batch_size, num_workers=self.num_workers, persistent_workers=self.num_workers > 0, **kwargs
        )
