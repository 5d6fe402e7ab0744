"""Seeded, stratified splits (iterative stratification for multi-label), published splits, subsampling."""
from __future__ import annotations

import hashlib
import random
from collections import Counter
from typing import Sequence

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit
from sklearn.model_selection import StratifiedKFold, train_test_split

from senti_lit.core.errors import DataError
from senti_lit.data.cleaning import duplicate_key
from senti_lit.data.examples import Example

SPLITS = ("train", "val", "test")


def label_matrix(examples: Sequence[Example]) -> np.ndarray:
    """0/1 matrix (examples x label names seen) of multi-label examples."""
    names = {name: i for i, name in enumerate(sorted({l for ex in examples for l in ex.label}))}
    y = np.zeros((len(examples), max(len(names), 1)), dtype=np.int8)
    for row, ex in enumerate(examples):
        y[row, [names[l] for l in ex.label]] = 1
    return y


def take(examples: list[Example], share: float | int, seed: int, multi_label: bool) -> tuple[list, list]:
    """Seeded split of `share` (a fraction, or a number of examples) of `examples`, stratified on the label
    (multi-label: iterative stratification, Sechidis et al. 2011, via iterstrat), as (rest, taken)."""
    if multi_label:
        splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=share, random_state=seed)
        rest, taken = next(splitter.split(np.zeros(len(examples)), label_matrix(examples)))
        return [examples[i] for i in sorted(rest)], [examples[i] for i in sorted(taken)]
    strata = [ex.label for ex in examples]
    try:
        return train_test_split(examples, test_size=share, random_state=seed, stratify=strata)
    except ValueError as e:  # sklearn's message does not say which label or what to do
        rare = {k: v for k, v in Counter(strata).items() if v < 3}
        amount = f"{share:.0%}" if isinstance(share, float) else str(share)
        where = "; ".join(f"{label!r} at {', '.join(ex.origin for ex in examples if ex.label == label)}"
                          for label in list(rare)[:5])  # a stray quote makes `negative"` a label: its line
        raise DataError(
            f"cannot split {amount} off {len(examples)} examples: {e}; labels with fewer than 3 examples: "
            f"{rare or 'none'}{' (' + where + ')' if where else ''}; fix those rows (a typo or a stray quote in the "
            "label column?), add examples, drop those labels, or change data.split.fractions"
        ) from None


def by_content(examples: Sequence[Example]) -> list[Example]:
    """Sorted by text and label, so a split depends on the data, not on file or reading order."""
    return sorted(examples, key=lambda ex: (ex.text, str(ex.label)))


def split(
    examples: Sequence[Example], fractions: Sequence[float], seed: int, multi_label: bool
) -> dict[str, list[Example]]:
    """Seeded train/val/test split, stratified on the label(s)."""
    check_fractions(fractions)
    _, val_frac, test_frac = fractions
    train, rest = take(by_content(examples), val_frac + test_frac, seed, multi_label)
    val, test = take(rest, test_frac / (val_frac + test_frac), seed, multi_label)
    return {"train": train, "val": val, "test": test}


def kfold_split(
    examples: Sequence[Example], fractions: Sequence[float], seed: int, multi_label: bool, folds: int, fold: int
) -> dict[str, list[Example]]:
    """Cross-validation: fold `fold` of a seeded, stratified `folds`-way partition is the test split; the other
    folds split into train and val in the train:val ratio of `fractions`. Over fold = 0..folds-1 every example is
    tested exactly once."""
    check_fractions(fractions)
    check_fold(folds, fold)
    ordered = by_content(examples)
    if multi_label:
        kfold, y = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed), label_matrix(ordered)
    else:
        y = [ex.label for ex in ordered]
        rare = {k: v for k, v in Counter(y).items() if v < folds}
        if rare:
            raise DataError(f"cannot split {len(ordered)} examples into {folds} stratified folds: labels with fewer "
                            f"than {folds} examples: {rare}; drop those labels or lower data.split.folds")
        kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    rest, test = list(kfold.split(np.zeros(len(ordered)), y))[fold]
    train, val = take([ordered[i] for i in rest], fractions[1] / (fractions[0] + fractions[1]), seed, multi_label)
    return {"train": train, "val": val, "test": [ordered[i] for i in test]}


def check_fractions(fractions: Sequence[float]) -> None:
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) <= 0:
        raise ValueError(f"data.split.fractions must be three positive numbers summing to 1, got {list(fractions)}")


def published_splits(
    examples: Sequence[Example], fractions: Sequence[float], seed: int, multi_label: bool
) -> dict[str, list[Example]]:
    """Keep the dataset's own splits; a missing val or test split is split off train (seeded, stratified)."""
    check_fractions(fractions)
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


def check_fold(folds: int | None, fold: int) -> None:
    """`data.split.folds` / `fold` make sense together (checked before any data is read)."""
    if folds is None:
        if fold:
            raise DataError(f"data.split.fold={fold} needs data.split.folds (the number of folds, e.g. 5)")
    elif not (int(folds) >= 2 and 0 <= fold < int(folds)):
        raise DataError(f"data.split: fold must be in 0..folds-1 with folds >= 2, got fold={fold}, folds={folds}")


def split_digest(examples: Sequence[Example]) -> str:
    """A fingerprint of a split's texts and labels in order: runs (and benchmark rows) with equal digests trained
    or tested on the same examples (data.json records one per split)."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(f"{ex.text}\t{ex.label}\n".encode())
    return h.hexdigest()[:16]


def check_no_leakage(splits: dict[str, list[Example]]) -> None:
    """No text may sit in two splits, not even as a near-duplicate: a model would be tested on what it trained on."""
    seen: dict[str, str] = {}
    for name, examples in splits.items():
        for ex in examples:
            other = seen.setdefault(duplicate_key(ex.text), name)
            if other != name:
                raise DataError(f"{ex.origin}: text is in both the {other} and {name} splits: {ex.text[:60]!r}")


def per_label_sample(examples: list[Example], n: int, seed: int) -> list[Example]:
    """At most `n` examples of each label, seeded. Multi-label: labels are filled rarest first, and an example
    taken for one label counts for all its labels, so frequent labels may stay a little under `n`; examples with
    no label form one more group of at most `n`."""
    rng = random.Random(seed)
    order = list(examples)
    rng.shuffle(order)
    labels_of = [(ex.label,) if isinstance(ex.label, str) else ex.label or ("",) for ex in order]  # "": no label
    holders: dict[str, list[int]] = {}
    for i, ls in enumerate(labels_of):
        for label in ls:
            holders.setdefault(label, []).append(i)
    counts: Counter[str] = Counter()
    chosen: set[int] = set()
    for label in sorted(holders, key=lambda l: (len(holders[l]), l)):
        for i in holders[label]:
            if counts[label] >= n:
                break
            if i not in chosen and all(counts[l] < n for l in labels_of[i]):
                chosen.add(i)
                counts.update(labels_of[i])
    return by_content(order[i] for i in chosen)


def subsample_train(
    train: list[Example], limit: int | None, per_label: int | None, seed: int, multi_label: bool
) -> list[Example]:
    """`per_label`: balanced, at most that many per label; then `limit`: at most that many, stratified."""
    if per_label is not None:
        train = per_label_sample(train, per_label, seed)
    if limit is not None and limit < len(train):
        _, train = take(train, int(limit), seed, multi_label)
    return train
