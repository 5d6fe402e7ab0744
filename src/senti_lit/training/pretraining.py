"""Masked-LM pretraining of a from-scratch backbone (`senti_lit.pretrain`) on any data config's texts (labels
ignored) or a plain text file; writes `<run>/pretrained/` (weights + tokenizer)."""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from senti_lit.core.config import data_config, named_datasets, plain
from senti_lit.core.errors import DataError
from senti_lit.core.files import umask_mode, write_json
from senti_lit.core.runtime import quiet_known_warnings
from senti_lit.data.sources import read_lines
from senti_lit.weights.locate import check_model_sources

log = logging.getLogger(__name__)


def corpus(cfg: DictConfig) -> tuple[list[str], dict]:
    """The pretraining texts and a report of where they came from: a text file (one per line; blank lines and
    repeats skipped and counted), the chosen splits of every data config in `datasets`, or of the data config."""
    if cfg.text_file and cfg.get("datasets"):
        raise DataError("text_file and datasets are two corpora: set one of them")
    if cfg.text_file:
        seen: set[str] = set()
        lines = [line.strip() for _, line in read_lines(Path(cfg.text_file))]
        texts = [t for t in lines if t and not (t in seen or seen.add(t))]
        blank = sum(1 for t in lines if not t)
        log.info("corpus: %s: %d lines, %d blank, %d repeated, %d texts", cfg.text_file, len(lines), blank,
                 len(lines) - blank - len(texts), len(texts))
        return texts, {"text_file": str(cfg.text_file), "lines": len(lines), "blank": blank,
                       "repeated": len(lines) - blank - len(texts)}
    if cfg.get("datasets"):
        return several_datasets(cfg)
    return [ex.text for ex in split_texts(instantiate(cfg.data), cfg.splits, "data")[0]], {}


def split_texts(datamodule, wanted, name: str) -> tuple[list, set[str]]:
    """The examples of the `wanted` splits, and the texts of every other split (held out)."""
    splits = datamodule.prepare_splits()
    unknown = set(wanted) - set(splits)
    if unknown:
        raise DataError(f"{name}: splits={list(wanted)}: no split {sorted(unknown)}; choose from {list(splits)}")
    held_out = {ex.text for split, examples in splits.items() if split not in wanted for ex in examples}
    return [ex for split in wanted for ex in splits[split]], held_out


def several_datasets(cfg: DictConfig) -> tuple[list[str], dict]:
    """The `splits` of every dataset in `datasets` (`config` or `name:config`, to read one config's data twice, e.g.
    `baidu:chnsenticorp`), each composed from its own data config (its seeded split, as its fine-tuning run sees
    it). A text that is in any dataset's other splits is dropped (datasets overlap: a review can be in one set's
    train split and another's test split), as are repeats; both are counted."""
    entries = named_datasets(plain(cfg.datasets), plain(cfg.get("data_overrides") or {}), "datasets",
                             "data_overrides")
    per_dataset, held_out, texts = {}, set(), []
    for name, (config, overrides) in entries.items():
        datamodule = instantiate(data_config("pretrain", config, overrides, cfg.paths))
        examples, other = split_texts(datamodule, cfg.splits, f"data={name}")
        per_dataset[name] = len(examples)
        held_out |= other
        texts += [ex.text for ex in examples]
    seen: set[str] = set()
    kept = [t for t in texts if t not in held_out and not (t in seen or seen.add(t))]
    report = {"per_dataset": per_dataset, "held_out_dropped": sum(1 for t in texts if t in held_out),
              "repeats_dropped": len(texts) - len(kept) - sum(1 for t in texts if t in held_out)}
    log.info("corpus: %s; dropped %d texts found in a val/test split and %d repeats; %d texts", per_dataset,
             report["held_out_dropped"], report["repeats_dropped"], len(kept))
    return kept, report


def pretrain(cfg: DictConfig) -> Path:
    check_model_sources(plain(cfg.model))  # before torch is imported and the corpus read
    # imported here, not at the top: `--help` and Tab completion answer without torch and Lightning (seconds)
    import lightning as L
    from lightning.pytorch.utilities import rank_zero_only
    from torch.utils.data import DataLoader
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from senti_lit.data.encoding import encode
    from senti_lit.data.tokenization import build_tokenizer
    from senti_lit.models.backbone import build_backbone
    from senti_lit.training.mlm import fit_mlm, mlm_collator
    from senti_lit.training.steps import instantiate_group

    quiet_known_warnings()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    out = Path(cfg.paths.output_dir)
    texts, report = corpus(cfg)
    if not texts:
        raise DataError("no texts to pretrain on")
    tokenizer = build_tokenizer(**cfg.model.tokenizer, texts=texts)
    backbone = build_backbone(tokenizer, **cfg.model.backbone)
    encoded = encode(tokenizer, texts, None, cfg.data.max_length)
    m = cfg.mlm
    loader = DataLoader(encoded, batch_size=m.batch_size, collate_fn=mlm_collator(tokenizer, m.mask_prob),
                        sampler=LengthGroupedSampler(m.batch_size, lengths=encoded.lengths()))
    mlm = fit_mlm(backbone, loader, plain(m), partial(instantiate, cfg.trainer), cfg.get("fast_dropout", False),
                  logger=instantiate_group(cfg.logger))
    target = out / "pretrained"
    if rank_zero_only.rank == 0:
        backbone.save_pretrained(target)
        umask_mode(*target.glob("*.safetensors"))
        tokenizer.save_pretrained(target)
        write_json(out / "pretrain.json", {"texts": len(texts), "corpus": report, "tokens": int(encoded.offsets[-1]),
                                           "epochs": m.epochs, **mlm, "pretrained": str(target)})
        log.info("pretrained backbone + tokenizer: %s (fine-tune with model.backbone.path=%s "
                 "model.mlm_warmup.epochs=0)", target, target)
    return target
