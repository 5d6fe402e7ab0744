"""What every senti_lit LightningModule shares about its optimiser: weight-decay groups and fused AdamW.

Fused AdamW (one kernel for the whole update) is the default: on this 2-core CPU the foreach AdamW step of
multilingual-e5-small (118M parameters, 96M of them the word embeddings) took 1080 ms, the fused one 187 ms
(`python benchmarks/cpu_kernels.py`). `transformers.Trainer` uses it by default too.
"""
from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn


def weight_decay_groups(module: nn.Module, weight_decay: float, head: nn.Module | None = None,
                        head_lr: float | None = None) -> list[dict[str, Any]]:
    """Decay matrices only: biases and LayerNorm scales (1-D) are left alone, as in BERT's recipe. With `head_lr`,
    the parameters of `head` (a freshly initialised classifier on a pretrained backbone) get their own groups at
    that learning rate; the scheduler scales every group's rate alike."""
    in_head = {id(p) for p in head.parameters()} if head is not None and head_lr is not None else set()
    params = [p for p in module.parameters() if p.requires_grad]
    groups = []
    for prefix, members, extra in (("", [p for p in params if id(p) not in in_head], {}),
                                   ("head_", [p for p in params if id(p) in in_head], {"lr": head_lr})):
        if members:
            groups += [
                {"name": f"{prefix}decay", "params": [p for p in members if p.ndim >= 2],
                 "weight_decay": weight_decay, **extra},
                {"name": f"{prefix}no_decay", "params": [p for p in members if p.ndim < 2], "weight_decay": 0.0,
                 **extra},
            ]
    return groups


def has_grad_scaler(trainer: L.Trainer) -> bool:
    """16-mixed training: gradients are loss-scaled until the optimiser step."""
    return getattr(trainer.precision_plugin, "scaler", None) is not None


def can_fuse(trainer: L.Trainer) -> bool:
    """A fused optimiser unscales fp16 gradients inside its own step, so under a grad scaler Lightning cannot clip
    them first: fall back to the unfused kernel there (fp16 training on old GPUs only)."""
    return not (has_grad_scaler(trainer) and trainer.gradient_clip_val)


class FusedClipping:
    """LightningModule mixin: gradient clipping with fused optimisers under bf16-mixed.

    Lightning refuses to clip for any optimiser that handles its own unscaling, in every mixed precision, because
    of fp16's scaler; bf16-mixed has no scaler, the gradients are true-scale, and clipping them here is exact.
    """

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        fused = getattr(optimizer, "_step_supports_amp_scaling", False)
        plugin = self.trainer.precision_plugin
        # only where Lightning's refusal is the fp16 rule misapplied: mixed precision without a scaler (bf16).
        # Other plugins (32-true clips fused optimisers itself; FSDP/DeepSpeed clip their shards) keep their way.
        if not (gradient_clip_val and fused and isinstance(plugin, MixedPrecision) and plugin.scaler is None):
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if gradient_clip_algorithm == "value":
            nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:
            nn.utils.clip_grad_norm_(params, gradient_clip_val)
