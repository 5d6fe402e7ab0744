"""Masked-language-model training of a backbone: the warm-up before fine-tuning a from-scratch encoder."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_only
from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling, PreTrainedModel, get_scheduler

from senti_lit.core.config import run_label
from senti_lit.core.files import write_json
from senti_lit.models.fast_dropout import fast_dropout_if
from senti_lit.training.optim import FusedClipping, can_fuse, weight_decay_groups

log = logging.getLogger(__name__)


class MaskedLM(FusedClipping, L.LightningModule):
    """An MLM head on top of `backbone`; training it updates the backbone in place.

    The head comes from the architecture's own `…ForMaskedLM` class; its decoder shares the backbone's input
    embeddings, as in BERT pretraining.
    """

    def __init__(self, backbone: PreTrainedModel, lr: float = 1e-3, weight_decay: float = 0.01,
                 warmup_ratio: float = 0.1, scheduler: str = "linear") -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.model = AutoModelForMaskedLM.from_config(backbone.config)
        setattr(self.model, self.model.base_model_prefix, backbone)
        self.model.get_output_embeddings().weight = backbone.get_input_embeddings().weight
        # The vocabulary projection costs more than a small encoder's layers; when the head is one module (BERT's
        # `cls`, RoBERTa's `lm_head`) apply it to the ~15% masked positions only, not to every position.
        heads = [m for name, m in self.model.named_children() if name != self.model.base_model_prefix]
        self.head = heads[0] if len(heads) == 1 else None
        self.epoch_losses: list[float] = []  # mean MLM loss per epoch (what pretrain.json reports)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.head is None:
            return self.model(**batch).loss
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        hidden = self.model.base_model(**inputs).last_hidden_state
        masked = batch["labels"] != -100
        if not masked.any():  # a batch of very short texts can draw no masks: nothing to learn, not NaN
            return hidden.sum() * 0.0
        return F.cross_entropy(self.head(hidden[masked]).float(), batch["labels"][masked])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("mlm/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=batch["input_ids"].size(0))
        return loss

    def on_train_epoch_end(self) -> None:
        loss = self.trainer.callback_metrics.get("mlm/loss_epoch")
        if loss is not None:
            self.epoch_losses.append(round(float(loss), 4))

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = torch.optim.AdamW(weight_decay_groups(self, hp.weight_decay), lr=hp.lr, fused=can_fuse(self.trainer))
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = get_scheduler(hp.scheduler, optimizer, num_warmup_steps=int(hp.warmup_ratio * total),
                                  num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def mlm_collator(tokenizer, mask_prob: float) -> DataCollatorForLanguageModeling:
    """Pads a batch of `{input_ids}` and masks `mask_prob` of the non-special tokens (80/10/10 BERT scheme)."""
    return DataCollatorForLanguageModeling(tokenizer, mlm_probability=mask_prob)


def fit_mlm(backbone: PreTrainedModel, loader, mlm: Mapping[str, Any], make_trainer: Callable[..., L.Trainer],
            fast_dropout: bool = False, **trainer_kwargs: Any) -> dict:
    """Masked-LM training of `backbone` (in place) on `loader`'s batches with the `mlm` settings: `epochs`, an optional
    `max_steps` cap, lr, weight decay, warm-up. `make_trainer(**kwargs)` builds the run's Lightning Trainer. Shared
    by the in-run warm-up and `senti_lit.pretrain`; returns the steps, seconds and loss per epoch."""
    start = time.perf_counter()
    module = MaskedLM(backbone, lr=mlm["lr"], weight_decay=mlm["weight_decay"], warmup_ratio=mlm["warmup_ratio"])
    # the step cap keeps an epoch budget sized for small data from growing with the data
    trainer = make_trainer(max_epochs=mlm["epochs"], max_steps=mlm.get("max_steps") or -1,
                           enable_checkpointing=False, **trainer_kwargs)
    with fast_dropout_if(fast_dropout, module):
        trainer.fit(module, train_dataloaders=loader)
    return {"steps": trainer.global_step, "seconds": round(time.perf_counter() - start, 1),
            "mlm_loss_per_epoch": module.epoch_losses}


def mlm_warmup(backbone: PreTrainedModel, tokenizer, datamodule, mlm: Mapping[str, Any],
               make_trainer: Callable[..., L.Trainer], out: Path, fast_dropout: bool = False,
               **trainer_kwargs: Any) -> dict:
    """Masked-LM training of the backbone on the data module's training texts only (never val/test);
    `<out>/mlm_warmup.json` records its steps, seconds, loss per epoch, the training tokens an epoch reads and the
    packing (`mlm.pack`: rows of that many tokens; 0: whole texts)."""
    log.info("MLM warm-up: %d epochs%s on %d training texts", mlm["epochs"],
             f" (at most {mlm['max_steps']} steps)" if mlm.get("max_steps") else "", len(datamodule.datasets["train"]))
    collator = mlm_collator(tokenizer, mlm["mask_prob"])
    if mlm.get("pack"):
        loader = datamodule.packed_train_loader(mlm["batch_size"], int(mlm["pack"]), collator, mlm.get("seed", 0))
    else:
        loader = datamodule.unlabelled_train_loader(mlm["batch_size"], collator)
    logger = L.pytorch.loggers.TensorBoardLogger(out / "tensorboard", name="", version=run_label("mlm_warmup"),
                                                 default_hp_metric=False)
    report = fit_mlm(backbone, loader, mlm, make_trainer, fast_dropout, logger=logger, **trainer_kwargs)
    report |= {"tokens": int(sum(datamodule.datasets["train"].lengths())), "pack": int(mlm.get("pack") or 0)}
    log.info("MLM warm-up: %s", report)
    if rank_zero_only.rank == 0:
        write_json(out / "mlm_warmup.json", report)
    return report
