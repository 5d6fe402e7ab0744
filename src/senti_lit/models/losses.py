"""The training losses: cross-entropy / BCE, focal loss (both with class weights) and the distillation loss."""
from __future__ import annotations

import torch
from torch import nn

from senti_lit.data.labels import LabelSpace


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy (or per-label BCE) scaled by (1 - p_true)^gamma, so confident
    examples count less. No library in the stack has it for softmax and sigmoid alike."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, multi_label: bool = False) -> None:
        super().__init__()
        self.gamma, self.multi_label = gamma, multi_label
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
            p_true = torch.exp(-bce)
            loss = (1 - p_true) ** self.gamma * bce
            if self.weight is not None:  # like BCE's pos_weight: the weight scales the positive term only
                loss = loss * (1 + (self.weight - 1) * target)
            return loss.mean()
        ce = nn.functional.cross_entropy(logits, target, reduction="none")
        p_true = torch.exp(-ce)
        loss = (1 - p_true) ** self.gamma * ce
        if self.weight is None:
            return loss.mean()
        w = self.weight[target]
        return (loss * w).sum() / w.sum()


def build_loss(label_space: LabelSpace, name: str = "ce", class_weights: list[float] | None = None,
               gamma: float = 2.0, label_smoothing: float = 0.0) -> nn.Module:
    """ce (softmax cross-entropy, or BCE per label for multi-label) | focal; optional per-class weights (for
    multi-label, the positive-class weight of each label)."""
    weight = torch.tensor(class_weights, dtype=torch.float) if class_weights is not None else None
    if weight is not None and len(weight) != label_space.num_labels:
        raise ValueError(f"model.loss.class_weights has {len(weight)} values for {label_space.num_labels} labels")
    if name == "focal":
        if label_smoothing:
            raise ValueError("model.label_smoothing applies to the ce loss only; set it to 0 with focal")
        return FocalLoss(gamma, weight, label_space.multi_label)
    if name != "ce":
        raise ValueError(f"model.loss.name must be 'ce' or 'focal', got {name!r}")
    if label_space.multi_label:
        return nn.BCEWithLogitsLoss(pos_weight=weight)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float,
                      multi_label: bool) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T) averaged over the batch (Hinton et al. 2015: T^2 keeps the gradient scale
    of the soft term independent of T), or for multi-label T^2 * BCE(student_T, teacher_T) per label."""
    t = temperature
    if multi_label:
        return torch.nn.functional.binary_cross_entropy_with_logits(student / t, torch.sigmoid(teacher / t)) * t * t
    log_p = torch.log_softmax(student / t, dim=-1)
    q = torch.softmax(teacher / t, dim=-1)
    return torch.nn.functional.kl_div(log_p, q, reduction="batchmean") * t * t
