"""TextClassificationDataModule: read -> clean -> split -> tokenize once (cached on disk) -> length-bucketed batches.

The flow is explicit: `prepare()` = `prepare_splits()` (the cleaned, split examples: `DataSplits`, data.splits, which
needs no torch), the model's tokenizer (loaded, or trained on `train_texts()`), then `set_tokenizer()`, which encodes
every split once through the data module's `InputSpec` (`inputs`); the dataloaders batch the encodings with dynamic
padding. Both stages are cached under `cache_dir`, keyed by the data files' content and every option that changes
the result, so a second run with the same data skips reading and tokenizing.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase
from transformers.trainer_pt_utils import LengthGroupedSampler

from senti_lit.data.cache import digest
from senti_lit.data.encoding import EncodedDataset, tokenizer_digest
from senti_lit.data.examples import Example
from senti_lit.data.prompts import model_prompt
from senti_lit.data.splits import DataSplits
from senti_lit.data.tokenization import build_tokenizer
from senti_lit.data.vocabulary import add_whole_words

log = logging.getLogger(__name__)  # the name DataSplits logs under too


class TextClassificationDataModule(DataSplits, L.LightningDataModule):
    """The examples of a `DataSplits` (its arguments: one data config builds either), encoded with the model's
    tokenizer and batched: `prepare` / `set_tokenizer`, then Lightning's dataloaders."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # DataSplits, then LightningDataModule
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.datasets: dict[str, EncodedDataset] = {}

    # -- encodings ------------------------------------------------------------------------------------------------
    def prepare(self, tokenizer: Mapping[str, Any], prompt: str | None = None, chat: Mapping | None = None,
                label_words: Mapping[str, str] | None = None, seed: int = 0) -> PreTrainedTokenizerBase:
        """Splits read, the model's tokenizer loaded (or trained on the training texts), every split encoded with
        the model's prompt (`prompt`, or a few-shot `chat` rendered by the tokenizer); returns the tokenizer."""
        self.prepare_splits()
        tok = build_tokenizer(**tokenizer, texts=self.train_texts(), cache_dir=self.cache_folder())
        if chat:
            prompt = model_prompt(tok, chat, label_words, self.label_space.names, self.splits["train"], seed)
        self.set_tokenizer(tok, prompt)
        return tok

    def set_tokenizer(self, tokenizer: PreTrainedTokenizerBase, prompt: str | None = None) -> None:
        """Encode every split once with `tokenizer` (after adding `data.tokenizer.keep_whole` words to it) and the
        model's `prompt` (see `InputSpec`), or load the cached encodings."""
        splits = self.prepare_splits()
        self.added_words = add_whole_words(tokenizer, self.keep_whole)
        self.tokenizer, self.inputs.prompt = tokenizer, prompt
        self.collator = DataCollatorWithPadding(tokenizer)
        folder = self.cache_folder()
        if folder is not None:
            knowledge = self.knowledge.key() if self.knowledge else None
            key = digest(tokenizer_digest(tokenizer), self.inputs.max_length, prompt, knowledge)
            folder = folder / f"tokens-{key}"
        hit = folder is not None and all((folder / f"{name}.npz").is_file() for name in splits)
        for name, examples in splits.items():
            if hit:
                self.datasets[name] = EncodedDataset.load(folder / f"{name}.npz")
                continue
            self.datasets[name] = self.inputs.encode(tokenizer, [ex.text for ex in examples],
                                                     self._label_array(examples), self.explanations.get(name))
            if folder is not None:
                self.datasets[name].save(folder / f"{name}.npz")
        self.cache_hits["tokens"] = hit
        log.info("data: token ids %s", f"from cache {folder}" if hit else "encoded")

    def _label_array(self, examples: Sequence[Example]) -> np.ndarray:
        if self.multi_label:
            return np.array([self.label_space.encode(ex.label) for ex in examples], dtype=np.float32).reshape(
                len(examples), self.label_space.num_labels)
        return np.array([self.label_space.id_of(ex.label) for ex in examples], dtype=np.int64)

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
        ds = self.datasets["train"].without_labels()
        sampler = LengthGroupedSampler(batch_size, lengths=ds.lengths())
        return self._loader(ds, batch_size, sampler=sampler, collate_fn=collate_fn)

    def packed_train_loader(self, batch_size: int, block: int, collate_fn: Any, seed: int) -> DataLoader:
        """The training texts packed into rows of `block` tokens (`EncodedDataset.packed`; MLM warm-up), shuffled
        each epoch. Only the training split: validation and test texts never reach the warm-up."""
        ds = self.datasets["train"].without_labels().packed(block, seed)
        return self._loader(ds, batch_size, shuffle=True, collate_fn=collate_fn)

    def _eval_loader(self, name: str) -> DataLoader:
        ds = self.datasets[name]
        # Evaluation order does not matter for metrics; length order minimises padding.
        order = np.argsort(ds.lengths(), kind="stable").tolist()
        return self._loader(ds, self.eval_batch_size, sampler=order)

    def _loader(self, ds: Any, batch_size: int, **kwargs: Any) -> DataLoader:
        kwargs.setdefault("collate_fn", self.collator)
        # pinned host memory makes the copy to a GPU asynchronous; on a CPU-only machine it is only a cost
        return DataLoader(
            ds, batch_size=batch_size, num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(), **kwargs
        )
