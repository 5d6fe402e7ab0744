"""Synthetic training texts from a causal LM (`python -m senti_lit.augment`; course report §3.3.3, §4.2).

One LM learns every label at once: it is fine-tuned on the training split as `<label word><sep><text><eos>`, then
samples short continuations (10-15 new tokens by default) of `<label word><sep>` for each label. Generated texts
that repeat each other or any text of any split (train, val or test) are dropped; with `filter.artifact`, a trained
classifier keeps only those it assigns to the intended label with confidence >= `filter.min_confidence`. The
result is a CSV (`text,label,source=synthetic`) that `data.augment.path` mixes into the training split only.
Every count (generated, duplicates, in the data, rejected by the classifier, kept per label) goes to report.json.
"""
from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import RichProgressBar
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from transformers import AutoModelForCausalLM, DataCollatorForLanguageModeling, get_scheduler

from senti_lit.core.config import plain
from senti_lit.core.files import write_json
from senti_lit.core.runtime import quiet_known_warnings
from senti_lit.data.cleaning import TextNormalizer
from senti_lit.data.tokenization import build_tokenizer
from senti_lit.training.optim import FusedClipping, can_fuse
from senti_lit.weights.paths import resolve_path

log = logging.getLogger(__name__)


class CausalLMTuner(FusedClipping, L.LightningModule):
    """Next-token loss on the label-prefixed training texts (padding ignored)."""

    def __init__(self, lm: torch.nn.Module, lr: float, warmup_ratio: float) -> None:
        super().__init__()
        self.lm, self.lr, self.warmup_ratio = lm, lr, warmup_ratio

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.lm(**batch).loss
        self.log("train/lm_loss", loss, prog_bar=True, batch_size=batch["input_ids"].size(0))
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(self.lm.parameters(), lr=self.lr, weight_decay=0.01, fused=can_fuse(self.trainer))
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = get_scheduler("linear", optimizer, int(self.warmup_ratio * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def prefix_ids(tokenizer, word: str, sep: str) -> list[int]:
    """The generation prompt's ids: the tokenizer's start token (if it has one) + the label word + separator."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    return ([start] if start is not None else []) + tokenizer(word + sep, add_special_tokens=False)["input_ids"]


def end_id(tokenizer) -> int:
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if end is None:
        raise ValueError(f"{tokenizer.name_or_path}: the LM's tokenizer has no end-of-text (eos/sep) token")
    return end


def lm_examples(tokenizer, texts: Sequence[str], labels: Sequence[str], words: Mapping[str, str], sep: str,
                max_length: int) -> list[dict[str, list[int]]]:
    """`<start><word><sep><text><end>` token ids per training text (the text truncated, the end kept)."""
    end = end_id(tokenizer)
    out = []
    for text, label in zip(texts, labels):
        head = prefix_ids(tokenizer, words[label], sep)
        body = tokenizer(text, add_special_tokens=False)["input_ids"][:max(1, max_length - len(head) - 1)]
        out.append({"input_ids": head + body + [end]})
    return out


def fine_tune(lm, tokenizer, examples: list[dict[str, list[int]]], cfg: DictConfig) -> None:
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)  # labels = ids, padding -> -100
    loader = DataLoader(examples, batch_size=cfg.lm.batch_size, shuffle=True, collate_fn=collator)
    bar = [RichProgressBar()] if cfg.progress_bar else []
    trainer = instantiate(cfg.trainer, max_epochs=cfg.lm.epochs, enable_checkpointing=False, logger=False,
                          callbacks=bar, enable_progress_bar=bool(bar))
    lm.train()  # from_pretrained returns eval mode (dropout off)
    trainer.fit(CausalLMTuner(lm, cfg.lm.lr, cfg.lm.warmup_ratio), train_dataloaders=loader)


@torch.no_grad()
def generate(lm, tokenizer, word: str, sep: str, n: int, sampling: Mapping[str, Any]) -> list[str]:
    """`n` sampled continuations of `<word><sep>` (one batch of identical prompts: no padding needed)."""
    lm.eval()
    prompt = torch.tensor([prefix_ids(tokenizer, word, sep)])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id(tokenizer)
    out = lm.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, num_return_sequences=n,
                      eos_token_id=end_id(tokenizer), pad_token_id=pad, **sampling)
    return tokenizer.batch_decode(out[:, prompt.size(1):], skip_special_tokens=True)


def select(candidates: Sequence[str], label: str, seen: set[str], normalize: TextNormalizer, min_chars: int,
           counts: Counter) -> list[str]:
    """The new texts among `candidates`: long enough, not a repeat, not in any split (`seen` grows)."""
    kept = []
    for raw in candidates:
        text = normalize(raw)
        if len(text) < min_chars:
            counts[f"{label}/too_short"] += 1
        elif text in seen:
            counts[f"{label}/duplicate_or_in_data"] += 1
        else:
            seen.add(text)
            kept.append(text)
    return kept


def confident(texts: list[str], label: str, predictor, min_confidence: float, counts: Counter) -> list[str]:
    """The texts a classifier assigns to `label` with probability >= min_confidence."""
    if not texts:
        return []
    answers = predictor.predict(texts)
    kept = [t for t, a in zip(texts, answers) if a["label"] == label and a["confidence"] >= min_confidence]
    counts[f"{label}/rejected_by_classifier"] += len(texts) - len(kept)
    return kept


def run(cfg: DictConfig) -> dict[str, Any]:
    quiet_known_warnings()
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = instantiate(cfg.data)
    splits = datamodule.prepare_splits()
    if datamodule.multi_label:
        raise ValueError("augment: multi-label data has no single intended label per text; use single-label data")
    names = list(datamodule.label_space.names)
    words = {name: str((cfg.label_words or {}).get(name, name)) for name in names}
    tokenizer = build_tokenizer(path=cfg.lm.path)
    lm = AutoModelForCausalLM.from_pretrained(resolve_path(cfg.lm.path))
    train = splits["train"]
    fine_tune(lm, tokenizer, lm_examples(tokenizer, [ex.text for ex in train], [ex.label for ex in train], words,
                                         cfg.separator, cfg.lm.max_length), cfg)
    predictor = None
    if cfg.filter.artifact:
        from senti_lit.inference.predictor import Predictor

        predictor = Predictor.load(cfg.filter.artifact)
        unknown = sorted(set(names) - set(predictor.names))
        if unknown:
            raise ValueError(f"filter.artifact={cfg.filter.artifact}: the classifier has no label {unknown} "
                             f"(its labels: {predictor.names})")
    normalize = TextNormalizer(whitespace=True, join_cjk_words=bool(cfg.join_cjk))
    seen = {normalize(ex.text) for part in splits.values() for ex in part}
    counts: Counter = Counter()
    rows: list[tuple[str, str]] = []
    for label in names:
        kept: list[str] = []
        for _ in range(cfg.max_rounds):
            if len(kept) >= cfg.n_per_label:
                break
            candidates = generate(lm, tokenizer, words[label], cfg.separator, cfg.batch_size, plain(cfg.sampling))
            counts[f"{label}/generated"] += len(candidates)
            new = select(candidates, label, seen, normalize, cfg.min_chars, counts)
            if predictor is not None:
                new = confident(new, label, predictor, cfg.filter.min_confidence, counts)
            kept += new
        kept = kept[:cfg.n_per_label]
        counts[f"{label}/kept"] = len(kept)
        if len(kept) < cfg.n_per_label:
            log.warning("augment: %s: %d of %d texts after %d rounds (raise max_rounds, loosen the filter)",
                        label, len(kept), cfg.n_per_label, cfg.max_rounds)
        rows += [(text, label) for text in kept]
    out = Path(cfg.output) if cfg.output else Path(cfg.paths.output_dir) / "synthetic.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "source"])
        writer.writerows([text, label, "synthetic"] for text, label in rows)
    report = {"output": str(out), "rows": len(rows), "lm": str(cfg.lm.path), "filter": plain(cfg.filter),
              "counts": {label: {k.split("/", 1)[1]: v for k, v in counts.items() if k.startswith(label + "/")}
                         for label in names}}
    write_json(Path(cfg.paths.output_dir) / "report.json", report)
    print(f"{len(rows)} synthetic texts -> {out}; mix them into training with data.augment.path={out}")
    return report
