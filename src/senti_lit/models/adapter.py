"""Bottleneck adapters (Houlsby et al. 2019) after every transformer block. Hand-written: peft has no bottleneck
adapter. Each adapter starts as the identity (zero up-projection), so training starts from the pretrained model."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel


class Bottleneck(nn.Module):
    """x + up(dropout(act(down(x)))): hidden -> size -> hidden with a residual connection."""

    def __init__(self, hidden_size: int, size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.down = nn.Linear(hidden_size, size)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.up = nn.Linear(size, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.dropout(self.act(self.down(x))))


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks (BERT `encoder.layer`, GPT2 `h`, ...): the ModuleList with one entry per
    layer of the config."""
    layers = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == layers:
            return module
    raise ValueError(f"{type(model).__name__}: no list of {layers} transformer blocks found for the adapters")


def add_adapters(model: PreTrainedModel, size: int = 64, dropout: float = 0.0) -> list[Bottleneck]:
    """One Bottleneck after every block: a child `adapter` of the block (so it is in the state dict and travels
    with copies of the model, e.g. the EMA copy), applied by a forward hook."""
    hidden = model.config.hidden_size
    adapters = []
    for block in transformer_blocks(model):
        block.add_module("adapter", Bottleneck(hidden, size, dropout))
        block.register_forward_hook(_apply_adapter)
        adapters.append(block.adapter)
    return adapters


def _apply_adapter(block: nn.Module, inputs: Any, output: Any) -> Any:
    # no closure: a deep copy of the model copies the hook's target with the block
    if isinstance(output, tuple):  # older blocks return (hidden, attentions, ...)
        return (block.adapter(output[0]), *output[1:])
    return block.adapter(output)
