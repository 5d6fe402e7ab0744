"""Token ids of a split in flat numpy arrays, encoded in chunks, and the on-disk cache that keeps them.

A million texts as Python lists of token ints would cost ~30 bytes per token; one int32 array plus offsets
costs 4, loads in milliseconds and is what the cache stores.
"""
from __future__ import annotations

import json
from itertools import chain
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from senti_lit.core.files import atomic_write

# the cache's keys and JSON files live in the torch-free data.cache; imported from here they keep working
from senti_lit.data.cache import CACHE_VERSION, digest, file_digest, files_digest, load_json, save_json  # noqa: F401

CHUNK = 8192  # texts per tokenizer call: the per-token Python ints of one chunk are all that is ever alive


class EncodedDataset(Dataset):
    """Token ids (flat int32 + offsets) and labels (class ids, or 0/1 rows for multi-label) of one split."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, labels: np.ndarray | None) -> None:
        self.ids, self.offsets, self.labels = ids, offsets, labels

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {"input_ids": self.ids[self.offsets[i]:self.offsets[i + 1]].tolist()}
        if self.labels is not None:
            item["labels"] = self.labels[i].tolist()
        return item

    def lengths(self) -> list[int]:
        return np.diff(self.offsets).tolist()

    def without_labels(self) -> "EncodedDataset":
        return EncodedDataset(self.ids, self.offsets, None)

    def packed(self, block: int, seed: int) -> "EncodedDataset":
        """The texts' token ids (each with its own special tokens) in a seeded random order, concatenated and cut
        into rows of `block` tokens, as HF's run_mlm.py `group_texts` does for MLM: no padding, the same number of
        tokens in every row. Unlike group_texts the last, shorter row is kept: every token is in exactly one row."""
        order = np.random.default_rng(seed).permutation(len(self))
        ids = np.concatenate([self.ids[self.offsets[i]:self.offsets[i + 1]] for i in order]) if len(self) else \
            self.ids[:0]
        offsets = np.append(np.arange(0, len(ids), block), len(ids)).astype(self.offsets.dtype)
        return EncodedDataset(ids, offsets, None)

    def save(self, path: Path) -> None:
        arrays = {"ids": self.ids, "offsets": self.offsets, "labels": self.labels}
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: Path) -> "EncodedDataset":
        with np.load(path) as data:
            return cls(data["ids"], data["offsets"], data["labels"])


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], labels: np.ndarray | None,
           max_length: int, prompt: str | None = None, pairs: Sequence[str] | None = None) -> EncodedDataset:
    """Tokenize `texts` (truncated to `max_length`) chunk by chunk into flat arrays.

    `prompt`: a template holding `{text}` (prefix + text + suffix, e.g. a rendered few-shot chat: used verbatim,
    so it carries its own special tokens), or a suffix that follows every text as its second segment (special
    tokens added as for any pair); either way only the text is truncated. `pairs`: a second segment per text
    (knowledge), the longer of the two truncated first; not combined with a prompt."""
    if pairs is not None and prompt:
        raise ValueError("a model prompt and a second segment per text (data.knowledge.join=pair) do not combine; "
                         "use data.knowledge.join=template")
    ids_parts, lengths = [], []
    for start in range(0, len(texts), CHUNK):
        chunk = list(texts[start:start + CHUNK])
        if pairs is not None:
            batch = tokenizer(chunk, list(pairs[start:start + CHUNK]), truncation="longest_first",
                              max_length=max_length, return_attention_mask=False, return_token_type_ids=False
                              )["input_ids"]
        else:
            batch = encode_chunk(tokenizer, chunk, max_length, prompt)
        sizes = [len(x) for x in batch]
        ids_parts.append(np.fromiter(chain.from_iterable(batch), dtype=np.int32, count=sum(sizes)))
        lengths.extend(sizes)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, dtype=np.int32)
    return EncodedDataset(ids, offsets, labels)


def encode_chunk(tokenizer: PreTrainedTokenizerBase, chunk: list[str], max_length: int,
                 prompt: str | None) -> list[list[int]]:
    common = {"return_attention_mask": False, "return_token_type_ids": False}
    if not prompt:
        return tokenizer(chunk, truncation=True, max_length=max_length, **common)["input_ids"]
    if "{text}" not in prompt:
        return tokenizer(chunk, [prompt] * len(chunk), truncation="only_first", max_length=max_length,
                         **common)["input_ids"]
    prefix, suffix = (tokenizer(part, add_special_tokens=False)["input_ids"] for part in prompt.split("{text}", 1))
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ValueError(f"the prompt takes {max_length - budget} of data.max_length={max_length} tokens; raise "
                         "data.max_length or shorten the prompt")
    texts = tokenizer(chunk, add_special_tokens=False, truncation=True, max_length=budget, **common)["input_ids"]
    return [prefix + ids + suffix for ids in texts]


# -- cache keys ---------------------------------------------------------------------------------------------------
def tokenizer_digest(tokenizer: PreTrainedTokenizerBase) -> str:
    """What decides the token ids: the whole fast-tokenizer pipeline (vocab, normaliser, post-processor)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # truncation/padding are set per call, not part of the tokenizer's identity
        state = json.loads(backend.to_str())
        state.pop("truncation", None), state.pop("padding", None)
        return digest(type(tokenizer).__name__, state)
    return digest(type(tokenizer).__name__, sorted(tokenizer.get_vocab().items()), tokenizer.all_special_tokens)
