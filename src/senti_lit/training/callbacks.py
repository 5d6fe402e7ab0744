"""Lightning callbacks senti_lit adds to the stock ones."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import torch
from lightning.pytorch.callbacks import Callback, WeightAveraging

from senti_lit.training.lightning_private import LastCheckpointHook

log = logging.getLogger(__name__)


def warmup_ema_fn(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """EMA whose decay grows as (1 + n) / (10 + n) up to `decay` (TensorFlow's ExponentialMovingAverage scheme)."""

    def average(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = torch.clamp((1.0 + num_averaged) / (10.0 + num_averaged), max=decay).to(averaged.dtype)
        return averaged + (current - averaged) * (1.0 - d)

    return average


class WarmupEMA(WeightAveraging):
    """Exponential moving average of the weights, updated every step, validated, checkpointed and tested.

    Lightning's `EMAWeightAveraging` uses a fixed decay, so a short run (a few hundred steps at decay 0.998) stays
    close to its random initialisation; the warm-up makes the average track training from the first steps.
    """

    def __init__(self, decay: float = 0.998, **kwargs: Any) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"callbacks.ema.decay must be in (0, 1), got {decay}")
        super().__init__(avg_fn=warmup_ema_fn(decay), **kwargs)

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        # Outside fit (testing the best checkpoint) the checkpoint's state_dict already holds the averaged weights;
        # the parent would put the raw training weights back over them.
        if trainer.state.fn == "fit":
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class Checkpoints(LastCheckpointHook):
    """Lightning's ModelCheckpoint, with `last.ckpt` a link to this step's best checkpoint when the two hold the same
    weights (a 1-epoch MiniLM run wrote 690 MB as two identical files), and a file of its own otherwise (resuming
    continues from the latest step, not from the best). Lightning's `save_last="link"` would point `last.ckpt` at
    an older best checkpoint; this decides per save (the hook: `training.lightning_private`)."""

    def before_save_last(self, trainer: Any) -> None:
        if self.save_last:
            self.save_last = "link" if self.saved_at_this_step(trainer) else True

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor and self.monitor not in trainer.callback_metrics:
            return  # no validation ran (a run that stops mid-epoch): nothing to rank, and Lightning would warn
        super().on_train_epoch_end(trainer, pl_module)


def speed(steps: float, seconds: float) -> str:
    """`12.3 steps/s`, or below one step a second `4.2 s/step` (a slow model's `0.0 steps/s` said nothing)."""
    rate = steps / max(seconds, 1e-9)
    return f"{rate:.1f} steps/s" if rate >= 1 or steps == 0 else f"{seconds / steps:.1f} s/step"


def eta(done: float, total: float, seconds: float) -> str:
    """The time left at the speed so far, as h:mm:ss ("?" before the first step or when the total is unknown)."""
    if done <= 0 or total in (None, float("inf")) or total <= done:
        return "?" if done <= 0 or total in (None, float("inf")) else "0:00:00"
    left = int(seconds / done * (total - done))
    return f"{left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}"


class LineProgress(Callback):
    """Progress as log lines, for output that is not a terminal (`make train > log`, CI, SLURM), where a progress bar
    shows nothing: at least every `every_seconds` a line in every stage (training: step, epoch, loss, speed, time
    left; validation and testing: batch, time left) and one after each validation. Used in place of the
    configured progress bar when stdout is not a terminal."""

    def __init__(self, every_seconds: float = 30.0) -> None:
        self.every_seconds = every_seconds
        self._last = self._started = 0.0
        self._start_step = 0
        self._stage_started = 0.0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._last = self._started = time.monotonic()
        self._start_step = trainer.global_step

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.monotonic()
        if now - self._last < self.every_seconds:
            return
        self._last = now
        steps = trainer.global_step - self._start_step
        total = trainer.estimated_stepping_batches
        loss = {k: float(v) for k, v in trainer.callback_metrics.items() if k.endswith("loss_step")}
        log.info("epoch %d, step %d/%s, %s, %s left%s", trainer.current_epoch, trainer.global_step,
                 total if total != float("inf") else "?", speed(steps, now - self._started),
                 eta(steps, total - self._start_step if total != float("inf") else total, now - self._started),
                 "".join(f", {k} {v:.4f}" for k, v in loss.items()))

    def _stage_start(self, *args: Any) -> None:
        self._stage_started = time.monotonic()

    on_validation_epoch_start = on_test_epoch_start = _stage_start

    def _stage_batch(self, trainer: Any, stage: str, batch_idx: int, dataloader_idx: int, totals: Any) -> None:
        now = time.monotonic()
        if now - self._last < self.every_seconds or trainer.sanity_checking:
            return
        self._last = now
        total = totals[dataloader_idx] if isinstance(totals, (list, tuple)) else totals
        log.info("%s: batch %d/%s, %s left", stage, batch_idx + 1, total, eta(batch_idx + 1, total,
                                                                             now - self._stage_started))

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        self._stage_batch(trainer, "validating", batch_idx, dataloader_idx, trainer.num_val_batches)

    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        self._stage_batch(trainer, "testing", batch_idx, dataloader_idx, trainer.num_test_batches)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        shown = {k: float(metrics[k]) for k in ("val/acc", "val/macro_f1", "val/loss") if k in metrics}
        log.info("epoch %d validated: %s", trainer.current_epoch, ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))


class ShortRunLogging(Callback):
    """At least POINTS points on every training curve (loss, learning rate): a fit shorter than
    POINTS * log_every_n_steps steps logs more often. Without it, a 15-step check run showed no curve at all."""

    POINTS = 10

    def on_train_start(self, trainer, pl_module) -> None:
        steps = trainer.estimated_stepping_batches
        if trainer.log_every_n_steps and steps != float("inf"):
            trainer.log_every_n_steps = max(1, min(trainer.log_every_n_steps, int(steps) // self.POINTS))
