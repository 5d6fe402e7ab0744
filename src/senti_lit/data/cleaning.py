"""Cleaning: label aliases, text normalisation, and every drop (empty, duplicate, contradictory) counted."""
from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from senti_lit.core.errors import DataError
from senti_lit.data.examples import Example

BAD_ROWS_LISTED = 1000  # skipped rows named one by one in data.json (all are counted)

# When one text sits in several published splits, the copy in the later split is kept: test and val stay as
# published and train loses the overlap.
SPLIT_PRIORITY = {None: 0, "train": 1, "val": 2, "test": 3}

FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}  # ！..～ and the ideographic space
# A segmenter's space: any whitespace not between two Latin letters/digits ("It ’ s me" -> "It’s me").
SEGMENTATION_SPACE = re.compile(r"(?<![A-Za-z0-9])\s+|\s+(?![A-Za-z0-9])")
WHITESPACE = re.compile(r"\s+")


def duplicate_key(text: str) -> str:
    """What makes two texts the same review, whatever `data.normalize` does to the model's input: NFKC (full-width
    forms), without format characters (Unicode category Cf: zero-width spaces and joiners, the BOM, bidi marks) and
    without any whitespace ("很好 ，推荐" = "很好，推荐", "YMC A" = "YMCA", "29 90" = "2990"). The split leakage check
    uses the same key."""
    return "".join(c for c in unicodedata.normalize("NFKC", text) if not c.isspace() and not is_invisible(c))


def is_invisible(char: str) -> bool:
    """A control or format character (Unicode categories Cc, Cf: NUL, zero-width space/joiner, BOM, bidi marks)."""
    return unicodedata.category(char) in ("Cc", "Cf")


def is_blank(text: str) -> bool:
    """Nothing to classify: only whitespace, control and format characters (a text of NULs or zero-width spaces
    is as empty as ""). Stops at the first visible character."""
    return all(c.isspace() or is_invisible(c) for c in text)


def lone_surrogate(text: str) -> int | None:
    """The index of the first lone UTF-16 surrogate (U+D800-U+DFFF: not a character, and no tokenizer takes it; a
    JSON "\\ud800" escape decodes to one), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


@dataclass(frozen=True)
class TextNormalizer:
    """Text normalisation options (`data.normalize`); surrounding whitespace is always stripped.

    fullwidth: full-width ASCII forms and the ideographic space become half-width (`Ｉｔ’ｓ　ｍｅ` -> `It’s me`).
    whitespace: runs of whitespace (newlines, tabs) become one space.
    join_cjk_words: undo a word segmentation (cecps8's texts are published segmented: `现在 好 终于 如愿以偿` ->
        `现在好终于如愿以偿`): whitespace goes unless it separates two Latin letters or digits.
    """

    fullwidth: bool = False
    whitespace: bool = False
    join_cjk_words: bool = False

    def __call__(self, text: str) -> str:
        if self.fullwidth:
            text = text.translate(FULLWIDTH)
        if self.whitespace:
            text = WHITESPACE.sub(" ", text)
        if self.join_cjk_words:
            text = SEGMENTATION_SPACE.sub("", text)
        return text.strip()


@dataclass
class CleanReport:
    """What cleaning dropped, by reason; logged and kept for the run's records."""

    rows_read: int = 0
    empty: int = 0
    duplicates: int = 0
    near_duplicates: int = 0  # copies equal to a kept text but for full-width forms or whitespace (duplicate_key)
    contradictory_texts: int = 0
    contradictory_rows: int = 0
    cross_split: int = 0  # copies in train of a text that is also in the published val/test split
    no_label: int = 0  # kept multi-label examples with an empty label set (a valid all-zero target)
    kept: int = 0
    bad_rows: dict[str, int] = field(default_factory=dict)  # skipped by the reader (on_bad_row=skip), by reason
    bad_row_lines: list = field(default_factory=list)  # [file:line, reason] of the first BAD_ROWS_LISTED of them
    examples_of_contradictions: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = "; ".join(f"{origin}: {reason}" for origin, reason in self.bad_row_lines[:3])
        more = " …" if sum(self.bad_rows.values()) > 3 else ""
        bad = (f"; skipped {sum(self.bad_rows.values())} bad rows {self.bad_rows} ({lines}{more}; every one in "
               "data.json)" if self.bad_rows else "")
        overlap = f", {self.cross_split} train copies of val/test texts" if self.cross_split else ""
        unlabelled = f" ({self.no_label} with no label)" if self.no_label else ""
        return (
            f"read {self.rows_read} rows{bad}; dropped {self.empty} empty, {self.duplicates} exact duplicates, "
            f"{self.near_duplicates} near-duplicates"
            f"{overlap}, {self.contradictory_rows} rows of {self.contradictory_texts} texts labelled two ways; "
            f"kept {self.kept}{unlabelled}"
        )


def canonical_label(label: str | Iterable[str], aliases: Mapping[str, str]) -> str | tuple[str, ...]:
    """A label in the task's names: aliases applied; a label set sorted and de-duplicated (order is no label)."""
    if isinstance(label, str):
        return aliases.get(label, label)
    return tuple(sorted({aliases.get(l, l) for l in label}))


def clean(
    examples: Iterable[Example], normalizer: TextNormalizer = TextNormalizer(),
    aliases: Mapping[str, str] | None = None,
) -> tuple[list[Example], CleanReport]:
    """Normalise texts and labels; drop empty texts, exact duplicates and near-duplicates (the same `duplicate_key`:
    they would otherwise land in different splits). A text in several published splits keeps only its copies in
    the latest split (test > val > train); if those carry different labels, all of them are dropped."""
    report = CleanReport()
    aliases = dict(aliases or {})
    by_text: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        report.rows_read += 1
        text = normalizer(ex.text)
        if lone_surrogate(text) is not None:
            raise DataError(f"{ex.origin}: the text holds a lone UTF-16 surrogate at character "
                            f"{lone_surrogate(text)} (a JSON \\ud800-style escape without its pair): not text; fix "
                            "or remove the row")
        if is_blank(text):
            report.empty += 1
            continue
        by_text[duplicate_key(text)].append(Example(text, canonical_label(ex.label, aliases), ex.origin, ex.split))
    kept: list[Example] = []
    for group in by_text.values():
        if len(group) == 1:  # the common case, without building a set
            kept.append(group[0])
            continue
        top = max(SPLIT_PRIORITY[ex.split] for ex in group)
        winners = [ex for ex in group if SPLIT_PRIORITY[ex.split] == top]
        report.cross_split += len(group) - len(winners)  # published val/test keep their copy, train loses it
        labels = {ex.label for ex in winners}
        if len(labels) > 1:
            report.contradictory_texts += 1
            report.contradictory_rows += len(winners)
            if len(report.examples_of_contradictions) < 3:
                # file name and line only: a log line that fits a screen (data.json names the files in full)
                origins = sorted({ex.origin.replace("\\", "/").rsplit("/", 1)[-1] for ex in winners})
                more = f" +{len(origins) - 2} more" if len(origins) > 2 else ""
                text = winners[0].text if len(winners[0].text) <= 20 else winners[0].text[:20] + "…"
                report.examples_of_contradictions.append(f"{text!r} ({', '.join(origins[:2])}{more})")
            continue
        near = sum(1 for ex in winners[1:] if ex.text != winners[0].text)
        report.near_duplicates += near
        report.duplicates += len(winners) - 1 - near
        kept.append(winners[0])
    report.no_label = sum(1 for ex in kept if ex.label == ())
    report.kept = len(kept)
    return kept, report


def label_histogram(examples: Sequence[Example]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for ex in examples:
        for label in (ex.label,) if isinstance(ex.label, str) else ex.label:
            counts[label] += 1
    return dict(sorted(counts.items()))
