"""Every use of Lightning's private API, in one place. Lightning (2.6) decides where `last.ckpt` points once for the
whole fit (`save_last=True` or `"link"`); senti_lit decides per save, which needs one private method and two
private attributes of `ModelCheckpoint`:

  - `ModelCheckpoint._save_last_checkpoint(trainer, monitor_candidates)`: where last.ckpt is written;
  - `_last_checkpoint_saved` / `_last_global_step_saved`: the path and step of the checkpoint saved last.

A Lightning release that renames or re-signs them fails `tests/test_library_adapters.py` before a user sees it.
Everything else in senti_lit uses Lightning's public API only.
"""
from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint

PRIVATE_METHODS = ("_save_last_checkpoint",)  # what the adapter test checks
PRIVATE_ATTRIBUTES = ("_last_checkpoint_saved", "_last_global_step_saved")


class LastCheckpointHook(ModelCheckpoint):
    """ModelCheckpoint with a public hook before `last.ckpt` is saved, and what was saved last."""

    def before_save_last(self, trainer: Any) -> None:
        """Called before Lightning writes (or links) `last.ckpt`; may change `self.save_last`."""

    def saved_at_this_step(self, trainer: Any) -> bool:
        """Whether a checkpoint was saved at the trainer's current step (the best one, when it improved)."""
        return bool(self._last_checkpoint_saved) and self._last_global_step_saved == trainer.global_step

    def _save_last_checkpoint(self, trainer: Any, monitor_candidates: dict[str, torch.Tensor]) -> None:
        self.before_save_last(trainer)
        super()._save_last_checkpoint(trainer, monitor_candidates)
