"""InputSpec: how a text becomes model input, the one definition shared by training, the artifact, prediction and
serving: the tokenizer's max_length, the model's prompt (a suffix, or a `{text}` template), and for
knowledge-augmented models how an explanation is joined to its text with the label words cut out of it."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # torch and transformers only where texts are encoded: data.splits holds an InputSpec without them
    from transformers import PreTrainedTokenizerBase

    from senti_lit.data.encoding import EncodedDataset


def word_pattern(words: Sequence[str]) -> re.Pattern | None:
    """One case-insensitive pattern for `words` (give them longest first, so 'joyful' is cut before 'joy')."""
    return re.compile("|".join(map(re.escape, words)), re.IGNORECASE) if words else None


def mask(text: str, pattern: re.Pattern | None) -> tuple[str, int]:
    """`text` with every match of `pattern` cut (and the doubled spaces left behind), and how many were cut."""
    if pattern is None:
        return text, 0
    masked, count = pattern.subn("", text)
    return re.sub(r"[ \t]{2,}", " ", masked).strip(), count


@dataclass
class InputSpec:
    """Args:
        max_length: tokens per input after truncation (special tokens included); only the text is truncated.
        prompt: a template holding `{text}` (used verbatim, e.g. a rendered few-shot chat), or a suffix that
            follows every text as its second segment (e.g. "总之很[MASK]。").
        knowledge: `{join: pair|template, template, mask_words}`: an explanation per text, as the second segment
            (`pair`) or formatted with the text into one string (`template`); `mask_words` are cut out of it first.
    """

    max_length: int = 128
    prompt: str | None = None
    knowledge: dict[str, Any] | None = None
    _pattern: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "InputSpec":
        return cls(max_length=int(values["max_length"]), prompt=values.get("prompt"), knowledge=values.get("knowledge"))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    @property
    def is_template(self) -> bool:
        """The prompt holds `{text}`: the input ends where the prompt ends (no segment after it)."""
        return bool(self.prompt) and "{text}" in self.prompt

    def explanation(self, text: str | None) -> str:
        """An explanation as the model reads it: label words cut."""
        if self._pattern is None and self.knowledge:
            self._pattern = word_pattern(self.knowledge.get("mask_words") or [])
        return mask(text or "", self._pattern)[0]

    def model_inputs(self, texts: Sequence[str], knowledge: Sequence[str | None] | None = None
                     ) -> tuple[list[str], list[str] | None]:
        """What the tokenizer gets: (texts, second segments or None)."""
        texts = list(texts)
        if not self.knowledge:
            return texts, None
        explanations = [self.explanation(k) for k in (knowledge or [None] * len(texts))]
        if self.knowledge["join"] == "pair":
            return texts, explanations
        template = self.knowledge["template"]
        return [template.format(text=t, knowledge=k) for t, k in zip(texts, explanations)], None

    def encode(self, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], labels: np.ndarray | None = None,
               knowledge: Sequence[str | None] | None = None) -> EncodedDataset:
        """Token ids of `texts` (and their raw explanations, for knowledge models), with `labels` if given."""
        from senti_lit.data.encoding import encode

        texts, pairs = self.model_inputs(texts, knowledge)
        return encode(tokenizer, texts, labels, self.max_length, self.prompt, pairs)

    def truncated(self, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], encoded: EncodedDataset,
                  knowledge: Sequence[str | None] | None = None) -> list[bool]:
        """Whether each of `texts` (encoded as `encoded`) lost tokens to `max_length`. Truncation leaves exactly
        max_length tokens, so only inputs at the limit are encoded again, one token longer: cut iff that is longer."""
        lengths = encoded.lengths()
        at_limit = [i for i, n in enumerate(lengths) if n >= self.max_length]
        out = [False] * len(lengths)
        if at_limit:
            longer = replace(self, max_length=self.max_length + 1)
            again = longer.encode(tokenizer, [texts[i] for i in at_limit],
                                  knowledge=[knowledge[i] for i in at_limit] if knowledge is not None else None)
            for i, n in zip(at_limit, again.lengths()):
                out[i] = n > self.max_length
        return out
