"""SentimentClassifier: the classifier network (`models.network`) as a LightningModule: loss, metrics, optimiser."""
from __future__ import annotations

from typing import Any, Callable

import lightning as L
import torch
from torch import nn
from transformers import PreTrainedModel, get_scheduler

from senti_lit.data.labels import LabelSpace
from senti_lit.models.calibration import expected_calibration_error
from senti_lit.models.losses import build_loss, distillation_loss
from senti_lit.models.metrics import build_metrics, confusion_figure, flatten
from senti_lit.models.network import ClassifierNet
from senti_lit.training.optim import FusedClipping, can_fuse, weight_decay_groups


class SentimentClassifier(ClassifierNet, FusedClipping, L.LightningModule):
    """Single-label (softmax + cross-entropy) or multi-label (sigmoid per label + BCE) text classifier.

    Args:
        backbone: a transformers encoder returning `last_hidden_state`.
        label_space: the task's labels; decides the head width, loss and metrics.
        optimizer: partial optimiser (`torch.optim.AdamW` with lr etc.), called with parameter groups.
        scheduler: `{name, warmup_ratio}` for `transformers.get_scheduler` (linear, cosine, constant_with_warmup …).
        head: `{pooling, dropout}` for `ClassificationHead`.
        label_smoothing: single-label cross-entropy smoothing.
        verbalizer: `{token_ids, position, mask_token_id, special_ids}` for `VerbalizerHead` (train.py resolves
            the config's label words); the backbone is then a language model with its LM head.
        loss: `{name: ce|focal, class_weights: null | [one per label], gamma}` (train.py turns
            `class_weights: balanced` into inverse-frequency weights from the training split).
        token_dropout: in training, the share of input token embeddings zeroed (whole tokens, not features): a
            regulariser that matters for small from-scratch models, which otherwise overfit within two epochs.
        threshold: how probabilities become labels. Binary single-label: `positive_label` is predicted when its
            probability is >= threshold (null: the likelier label). Multi-label: one threshold for every label, or
            a list with one per label (default 0.5). Multi-class tasks take the likeliest label.
        positive_label: the label a binary threshold applies to (default: `positive` if it is a label, else the
            second label).
        multilabel: multi-label strategy: `sigmoid` (one linear head, a sigmoid per label) or `one_vs_rest`
            (`OneVsRestHead`: an independent binary classifier per label on the shared encoder).
        head_lr: the classification head's learning rate (null: the optimiser's). A head initialised from scratch
            on a pretrained backbone learns faster at a higher rate than the backbone can take.
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        label_space: LabelSpace,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: dict | None = None,
        head: dict | None = None,
        label_smoothing: float = 0.0,
        token_dropout: float = 0.0,
        loss: dict | None = None,
        verbalizer: dict | None = None,
        threshold: float | list[float] | None = None,
        positive_label: str | None = None,
        multilabel: str = "sigmoid",
        head_lr: float | None = None,
    ) -> None:
        super().__init__()
        scheduler = dict(scheduler or {"name": "linear", "warmup_ratio": 0.1})
        self.save_hyperparameters(
            {"labels": label_space.to_dict(), "head": dict(head or {}), "scheduler": scheduler,
             "label_smoothing": label_smoothing, "token_dropout": token_dropout, "loss": dict(loss or {}),
             "verbalizer": verbalizer, "threshold": threshold, "positive_label": positive_label,
             "multilabel": multilabel, "head_lr": head_lr}
        )
        self.init_network(backbone, label_space, head=head, token_dropout=token_dropout, verbalizer=verbalizer,
                          threshold=threshold, positive_label=positive_label, multilabel=multilabel)
        self.optimizer_factory = optimizer
        self.head_lr = head_lr
        self.scheduler_cfg = scheduler
        self.loss_fn = build_loss(label_space, label_smoothing=label_smoothing, **dict(loss or {}))
        metrics = build_metrics(label_space)
        self.train_metrics, self.val_metrics, self.test_metrics = (metrics.clone() for _ in range(3))
        self._outputs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"val": [], "test": []}

    def _metrics(self, stage: str) -> nn.Module:
        return getattr(self, f"{stage}_metrics")

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"]
        size = labels.size(0)  # the loss covers every row, pool rows included
        if "teacher_logits" in batch:  # distillation (training split only): the pool rows have no gold label
            loss, gold = self._distilled_loss(logits.float(), labels, batch)
            logits, labels = logits[gold], labels[gold]
        else:
            loss = self.loss_fn(logits.float(), labels.float() if self.label_space.multi_label else labels)
        if labels.size(0):  # a distillation batch may hold pool rows only: nothing to score
            probs = self.probabilities(logits)
            self._metrics(stage).update(self.decide(probs), labels.long())
        if stage in self._outputs:  # for calibration error, confusion matrix and PR curves at the epoch's end
            self._outputs[stage].append((logits.detach().float().cpu(), labels.detach().cpu()))
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, batch_size=size,
                 prog_bar=stage != "test", sync_dist=stage != "train")
        return loss

    def set_distillation(self, alpha: float, temperature: float) -> None:
        """Train on `(1 - alpha) * loss(gold) + alpha * T^2 * KL(teacher_T || student_T)` where a batch carries
        `teacher_logits` (see `senti_lit.training.distillation`)."""
        self.distill = {"alpha": float(alpha), "temperature": float(temperature)}

    def _distilled_loss(self, logits: torch.Tensor, labels: torch.Tensor,
                        batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        settings = getattr(self, "distill", None) or {"alpha": 0.5, "temperature": 1.0}
        alpha = settings["alpha"]
        gold = batch["has_label"].bool()
        soft = distillation_loss(logits, batch["teacher_logits"].float(), settings["temperature"],
                                 self.label_space.multi_label)
        hard = logits.new_zeros(())
        if gold.any() and alpha < 1:
            target = labels[gold].float() if self.label_space.multi_label else labels[gold]
            hard = self.loss_fn(logits[gold], target)
        self.log("train/distill_loss", soft, on_step=False, on_epoch=True, batch_size=labels.size(0))
        return (1 - alpha) * hard + alpha * soft, gold

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def _log_epoch_metrics(self, stage: str) -> None:
        values = flatten(self._metrics(stage).compute(), self.label_space, stage)
        self._metrics(stage).reset()
        main = f"{stage}/acc"
        self.log_dict({k: v for k, v in values.items() if k != main})
        self.log(main, values[main], prog_bar=stage != "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")
        self._log_outputs("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")
        self._log_outputs("test")

    def _log_outputs(self, stage: str) -> None:
        """Expected calibration error (with the fitted temperature, and without it on test), and to TensorBoard
        a confusion-matrix image (single-label) and one PR curve per label (this rank's data)."""
        outputs, self._outputs[stage] = self._outputs[stage], []
        if not outputs:
            return
        logits, labels = torch.cat([p for p, _ in outputs]), torch.cat([y for _, y in outputs])
        probs = self.probabilities(logits.to(self.temperature.device)).cpu()
        multi = self.label_space.multi_label
        self.log(f"{stage}/ece", expected_calibration_error(probs, labels, multi), sync_dist=True)
        if stage == "test":
            raw = logits.sigmoid() if multi else logits.softmax(dim=-1)
            self.log("test/ece_uncalibrated", expected_calibration_error(raw, labels, multi), sync_dist=True)
        self._log_curves(stage, probs, labels)

    def _log_curves(self, stage: str, probs: torch.Tensor, labels: torch.Tensor) -> None:
        writer = next((lg.experiment for lg in (self.loggers if self._trainer else [])
                       if isinstance(lg, L.pytorch.loggers.TensorBoardLogger)), None)
        if writer is None or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        names, step = self.label_space.names, self.global_step
        if not self.label_space.multi_label:
            matrix = torch.zeros(len(names), len(names), dtype=torch.long)
            matrix.index_put_((labels, self.decide(probs).cpu()), torch.ones_like(labels), accumulate=True)
            writer.add_figure(f"{stage}/confusion_matrix", confusion_figure(matrix, names, f"{stage}, step {step}"),
                              step)
            labels = torch.nn.functional.one_hot(labels, len(names))
        for i, name in enumerate(names):
            writer.add_pr_curve(f"{stage}/pr_{name}", labels[:, i].bool(), probs[:, i], step)

    def configure_optimizers(self) -> dict[str, Any]:
        groups = weight_decay_groups(self, getattr(self.optimizer_factory, "keywords", {}).get("weight_decay", 0.0),
                                     head=self.head, head_lr=self.head_lr)
        fused = getattr(self.optimizer_factory, "keywords", {}).get("fused")
        unfused = {"fused": False} if fused and not can_fuse(self.trainer) else {}
        optimizer = self.optimizer_factory(groups, **unfused)
        total = int(self.trainer.estimated_stepping_batches)
        cfg = self.scheduler_cfg
        scheduler = get_scheduler(
            cfg["name"], optimizer, num_warmup_steps=int(cfg.get("warmup_ratio", 0.0) * total),
            num_training_steps=total,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "lr"}}
