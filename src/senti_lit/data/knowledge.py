"""Knowledge-augmented inputs: an LLM's explanation of each text, read from a file and joined to the text.

The file (written by `python -m senti_lit.annotate`, or by hand) is JSON lines, one `{"text": ..., "knowledge": ...}`
per text, `text` as the data module holds it after cleaning. Every label name, published alias and configured
synonym is cut out of the explanations first: an explanation that says "this text expresses joy" would otherwise
hand the classifier its answer (the 8-label seed did the same).
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from senti_lit.core.errors import DataError
from senti_lit.data.cache import files_digest
from senti_lit.data.examples import Example
from senti_lit.data.inputs import mask, word_pattern
from senti_lit.data.labels import LabelSpace
from senti_lit.data.sources import read_lines

log = logging.getLogger(__name__)

POLICIES = ("error", "empty", "drop")


@dataclass
class KnowledgeReport:
    matched: int = 0
    missing: int = 0            # texts without an explanation (empty or dropped, by policy)
    dropped: int = 0            # of those, dropped from their split (missing=drop)
    masked_words: int = 0       # label words cut out of explanations
    examples_missing: list[str] = field(default_factory=list)


class Knowledge:
    """Explanations for the texts of a dataset.

    Args:
        path: the JSON-lines file.
        join: `pair` (text and explanation as the tokenizer's two segments, e.g. `[CLS] text [SEP] knowledge [SEP]`)
            or `template` (one string from `template`, with `{text}` and `{knowledge}`).
        mask_labels: cut label names, aliases and `synonyms` out of the explanations.
        synonyms: {label: [words]} also cut (other languages, near-synonyms: 喜悦 for joy ...).
        missing: a text without an explanation -> `error` (names the text's file:line), `empty` (the text alone)
            or `drop` (the example leaves its split; counted in data.json).
    """

    def __init__(self, path: str, join: str = "pair", template: str = "{text}\n{knowledge}", mask_labels: bool = True,
                 synonyms: Mapping[str, Iterable[str]] | None = None, missing: str = "error") -> None:
        if join not in ("pair", "template"):
            raise ValueError(f"data.knowledge.join must be 'pair' or 'template', got {join!r}")
        if join == "template" and not {"{text}", "{knowledge}"} <= set(re.findall(r"\{\w+\}", template)):
            raise ValueError(f"data.knowledge.template must hold {{text}} and {{knowledge}}, got {template!r}")
        if missing not in POLICIES:
            raise ValueError(f"data.knowledge.missing must be one of {POLICIES}, got {missing!r}")
        self.path, self.join, self.template = Path(path), join, template
        self.mask_labels, self.missing = mask_labels, missing
        self.synonyms = {str(k): [str(w) for w in v] for k, v in (synonyms or {}).items()}

    def read(self) -> dict[str, str]:
        """{text: explanation}; a malformed line fails naming the file and line."""
        if not self.path.is_file():
            raise DataError(f"{self.path}: knowledge file not found; write it with python -m senti_lit.annotate or "
                            "set data.knowledge.path")
        table: dict[str, str] = {}
        for number, line in read_lines(self.path):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, knowledge = row["text"], row["knowledge"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise DataError(f"{self.path}:{number}: expected a JSON object with 'text' and 'knowledge' "
                                f"({type(e).__name__}: {e}); fix or delete the line") from None
            if not isinstance(text, str) or not isinstance(knowledge, str):
                raise DataError(f"{self.path}:{number}: 'text' and 'knowledge' must be strings")
            table[text] = knowledge
        return table

    def label_words(self, labels: LabelSpace) -> list[str]:
        """Words cut out of explanations, longest first (so 'joyful' goes before 'joy')."""
        words = {*labels.names, *labels.aliases, *(w for ws in self.synonyms.values() for w in ws)}
        unknown = set(self.synonyms) - set(labels.names)
        if unknown:
            raise ValueError(f"data.knowledge.synonyms names unknown labels {sorted(unknown)}; labels are "
                             f"{list(labels.names)}")
        return sorted((w for w in words if w.strip()), key=lambda w: (-len(w), w))

    def attach(self, splits: dict[str, list[Example]], labels: LabelSpace
               ) -> tuple[dict[str, list[Example]], dict[str, list[str]], KnowledgeReport]:
        """(splits without dropped examples, raw explanations aligned with each split's examples, report). The label
        words are cut when the inputs are made (`InputSpec`, as in prediction); here they are only counted."""
        table, report = self.read(), KnowledgeReport()
        pattern = word_pattern(self.label_words(labels) if self.mask_labels else [])
        kept_splits, explanations = {}, {}
        for name, examples in splits.items():
            kept, texts = [], []
            for ex in examples:
                knowledge = table.get(ex.text)
                if knowledge is None:
                    report.missing += 1
                    if len(report.examples_missing) < 3:
                        report.examples_missing.append(f"{ex.origin} {ex.text[:30]!r}")
                    if self.missing == "drop":
                        report.dropped += 1
                        continue
                    knowledge = ""
                else:
                    report.matched += 1
                report.masked_words += mask(knowledge, pattern)[1]
                kept.append(ex)
                texts.append(knowledge)
            kept_splits[name], explanations[name] = kept, texts
        if report.missing and self.missing == "error":
            raise DataError(f"{self.path}: no explanation for {report.missing} texts, e.g. "
                            f"{'; '.join(report.examples_missing)}; annotate them (python -m senti_lit.annotate "
                            "resumes where it stopped) or set data.knowledge.missing=empty|drop")
        log.info("knowledge: %d texts explained, %d without (%s), %d label words cut", report.matched,
                 report.missing, self.missing, report.masked_words)
        return kept_splits, explanations, report

    def input_settings(self, labels: LabelSpace) -> dict:
        """The knowledge part of the model's `InputSpec`: how explanations join texts and which words are cut."""
        return {"join": self.join, "template": self.template,
                "mask_words": self.label_words(labels) if self.mask_labels else []}

    def key(self) -> list:
        """What changes the encodings (part of the token cache key)."""
        return [files_digest([self.path]), self.join, self.template, self.mask_labels, self.synonyms, self.missing]
