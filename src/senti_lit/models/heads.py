"""Pooling of the backbone's token states and the classification layer on top."""
from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("cls", "mean", "last", "cls_mean")


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """hidden (B, T, H), mask (B, T) -> (B, H) or (B, 2H) for `cls_mean`."""
    if how == "cls":
        return hidden[:, 0]
    if how == "last":  # last non-pad token (right padding): what a causal LM has read everything up to
        last = mask.sum(dim=1).clamp(min=1) - 1
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    if how == "mean":
        return mean
    if how == "cls_mean":
        return torch.cat([hidden[:, 0], mean], dim=-1)
    raise ValueError(f"model.head.pooling must be one of {POOLINGS}, got {how!r}")


class ClassificationHead(nn.Module):
    """pool -> dropout -> linear logits (one per label)."""

    def __init__(self, hidden_size: int, num_labels: int, pooling: str = "cls", dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"model.head.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        width = 2 * hidden_size if pooling == "cls_mean" else hidden_size
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(width, num_labels)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(pool(hidden, mask, self.pooling)))
