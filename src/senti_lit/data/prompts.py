"""Prompt templates for verbalizer models: a plain template with `{text}` (or text after which a suffix follows),
or a few-shot chat rendered with the tokenizer's own chat template (LLMs)."""
from __future__ import annotations

import logging
import random
from typing import Any, Mapping, Sequence

from senti_lit.data.examples import Example

log = logging.getLogger(__name__)


def few_shot(train: Sequence[Example], names: Sequence[str], shots: int, seed: int) -> list[Example]:
    """`shots` training examples per label (single-label), seeded, in a shuffled order."""
    rng = random.Random(seed)
    chosen = []
    for name in names:
        pool = sorted((ex for ex in train if ex.label == name), key=lambda ex: ex.text)
        chosen += rng.sample(pool, min(shots, len(pool)))
    rng.shuffle(chosen)
    return chosen


def chat_prompt(tokenizer: Any, words: Mapping[str, str], names: Sequence[str], train: Sequence[Example],
                instruction: str, system: str | None = None, shots: int = 0, shot_chars: int = 100,
                seed: int = 0) -> str:
    """A few-shot chat rendered by the tokenizer's chat template, ending where the assistant answers; `{text}`
    marks where each text goes. `instruction` may use `{labels}` (the label words) and must contain `{text}`; the
    shown examples are cut to `shot_chars` characters so that the prompt leaves room for the text."""
    if "{text}" not in instruction:
        raise ValueError("model.chat.instruction must contain {text}")
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(f"{tokenizer.name_or_path}: the tokenizer has no chat template; use model.prompt instead")
    labels = "/".join(words[n] for n in names)
    ask = instruction.replace("{labels}", labels)
    messages = [{"role": "system", "content": system}] if system else []
    for ex in few_shot(train, names, shots, seed):
        messages += [{"role": "user", "content": ask.replace("{text}", ex.text[:shot_chars])},
                     {"role": "assistant", "content": words[ex.label]}]
    messages.append({"role": "user", "content": ask})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def model_prompt(tokenizer: Any, chat: Mapping[str, Any], words: Mapping[str, str] | None, names: Sequence[str],
                 train: Sequence[Example], seed: int) -> str:
    """`model.chat` rendered into the model's `{text}` template (the verbalizer's `words` name the answers)."""
    if not words:
        raise ValueError("model.chat needs model.verbalizer.words: the label words the model answers with")
    prompt = chat_prompt(tokenizer, words, names, train, seed=seed, **dict(chat))
    log.info("prompt (%d few-shot examples per label):\n%s", chat.get("shots", 0), prompt)
    return prompt
