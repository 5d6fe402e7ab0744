"""`python -m senti_lit.pretrain`: masked-LM pretraining of a from-scratch backbone on any data config's texts
(labels ignored) or a plain text file; writes `<run>/pretrained/` (weights + tokenizer) for
`python -m senti_lit.train model=mini_bert model.backbone.path=<run>/pretrained`.
"""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from transformers.trainer_pt_utils import LengthGroupedSampler

from senti_lit.config import CONFIG_DIR
from senti_lit.data.encoding import encode
from senti_lit.data.sources import DataError, read_lines
from senti_lit.data.tokenization import build_tokenizer
from senti_lit.models.backbone import build_backbone
from senti_lit.models.mlm import MaskedLM, mlm_collator
from senti_lit.train import instantiate_group
from senti_lit.utils import quiet_known_warnings, write_json

log = logging.getLogger(__name__)


def corpus(cfg: DictConfig) -> list[str]:
    """The pretraining texts: a text file (one per line; blank lines and repeats skipped and counted) or the
    chosen splits of the data config (cleaned and deduplicated by the data module)."""
    if cfg.text_file:
        seen: set[str] = set()
        lines = [line.strip() for _, line in read_lines(Path(cfg.text_file))]
        texts = [t for t in lines if t and not (t in seen or seen.add(t))]
        log.info("corpus: %s: %d lines, %d blank, %d repeated, %d texts", cfg.text_file, len(lines),
                 sum(1 for t in lines if not t), len(lines) - sum(1 for t in lines if not t) - len(texts), len(texts))
        return texts
    splits = instantiate(cfg.data).prepare_splits()
    unknown = set(cfg.splits) - set(splits)
    if unknown:
        raise DataError(f"splits={list(cfg.splits)}: no split {sorted(unknown)}; choose from {list(splits)}")
    return [ex.text for name in cfg.splits for ex in splits[name]]


def pretrain(cfg: DictConfig) -> Path:
    quiet_known_warnings()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    out = Path(cfg.paths.output_dir)
    texts = corpus(cfg)
    if not texts:
        raise DataError("no texts to pretrain on")
    tokenizer = build_tokenizer(**cfg.model.tokenizer, texts=texts)
    backbone = build_backbone(tokenizer, **cfg.model.backbone)
    encoded = encode(tokenizer, texts, None, cfg.data.max_length)
    m = cfg.mlm
    loader = DataLoader(encoded, batch_size=m.batch_size, collate_fn=mlm_collator(tokenizer, m.mask_prob),
                        sampler=LengthGroupedSampler(m.batch_size, lengths=encoded.lengths()))
    module = MaskedLM(backbone, lr=m.lr, weight_decay=m.weight_decay, warmup_ratio=m.warmup_ratio)
    trainer = instantiate(cfg.trainer, max_epochs=m.epochs, enable_checkpointing=False,
                          logger=instantiate_group(cfg.logger))
    trainer.fit(module, train_dataloaders=loader)
    target = out / "pretrained"
    if trainer.is_global_zero:
        backbone.save_pretrained(target)
        tokenizer.save_pretrained(target)
        write_json(out / "pretrain.json", {"texts": len(texts), "tokens": int(encoded.offsets[-1]),
                                           "epochs": m.epochs, "mlm_loss_per_epoch": module.epoch_losses,
                                           "pretrained": str(target)})
        log.info("pretrained backbone + tokenizer: %s (fine-tune with model.backbone.path=%s)", target, target)
    return target


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="pretrain")
def main(cfg: DictConfig) -> None:
    pretrain(cfg)


if __name__ == "__main__":
    main()
