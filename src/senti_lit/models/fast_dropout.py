"""Dropout with a cheaper random mask for training on CPU.

Hand-written because no library has it: torch's CPU dropout draws each mask element with `bernoulli_`, about
7.5 ns an element here, which made dropout about a quarter of a from-scratch mini-BERT's forward + backward
step. One 64-bit draw of torch's generator gives the random bits of four elements (16 bits each): every element is
still dropped independently, with probability p rounded to a multiple of 1/65536, and kept ones are scaled by
1/(1 - that rounded p), so that the expected output is the input, as with `F.dropout`. `python benchmarks/cpu_kernels.py --sections dropout`: 0.70 ms instead of 3.01 for p 0.2 of a
32 x 96 x 128 tensor; a mini_bert forward + backward step 77-89 ms instead of 93-100.

`cpu_fast_dropout(model)` switches a model's `nn.Dropout` modules and the attention-probability dropout of its
transformers backbones to it for the duration of a `with` block (training), and restores them afterwards, so that
checkpoints, artifacts and exported configs never depend on it. Tensors on other devices use `F.dropout`.
"""
from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION = "senti_lit_sdpa"  # transformers' sdpa, with this dropout on attention probabilities in training
_SPAN = 2**16  # random values per element: p is rounded to a multiple of 1/65536


def drop_count(p: float) -> int:
    """How many of the 65536 16-bit values drop an element: round(p * 65536)."""
    return round(p * _SPAN)


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A boolean mask of `shape`, each element False (dropped) with probability drop_count(p) / 65536,
    independently."""
    n = math.prod(shape)
    # random_(-2**63, None) draws all 64 bits (plain random_() leaves the sign bit 0)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-2**63, None)
    threshold = drop_count(p) - _SPAN // 2  # P(int16 < threshold) = drop_count(p) / 65536
    return (words.view(torch.int16)[:n] >= threshold).view(shape)


class _ScaledMask(torch.autograd.Function):
    """x * keep * scale, keeping only the boolean mask for backward (as torch's native dropout does)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x * keep * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad * keep * ctx.scale, None, None


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`F.dropout`, with the cheaper mask for CPU tensors."""
    dropped = drop_count(p)
    if not training or not 0 < dropped < _SPAN or x.device.type != "cpu":  # p within 2^-17 of 0 or 1: torch's
        return F.dropout(x, p, training)
    # scaled by the rounded keep rate, so that the expected output is x exactly
    return _ScaledMask.apply(x, keep_mask(x.shape, p, x.device), _SPAN / (_SPAN - dropped))


class FastDropout(nn.Dropout):
    """`nn.Dropout` with `fast_dropout`'s mask; `cpu_fast_dropout` swaps the class of existing modules in and out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training) if not self.inplace else super().forward(x)


def attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
              is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' sdpa attention. In CPU training with attention dropout, torch's sdpa falls back to its math
    kernel with `bernoulli_` masks anyway; this runs the same math (in fp32, as that kernel does, also under bf16
    autocast; rows with every key masked attend to nothing) with `fast_dropout`'s mask."""
    # what the math below does not do stays with sdpa: T5-style position bias, paged caches, softcapping, and
    # more keys than queries (cached generation, where sdpa aligns the causal mask its own way)
    plain = any(kwargs.get(k) is not None for k in ("position_bias", "cache", "softcap"))
    if (plain or not module.training or dropout <= 0 or query.device.type != "cpu"
            or key.shape[2] != query.shape[2]):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    length = query.shape[2]
    with torch.autocast("cpu", enabled=False):
        q, k, v = query.float(), repeat_kv(key, groups).float(), repeat_kv(value, groups).float()
        scores = q @ k.transpose(-2, -1) * (q.shape[-1] ** -0.5 if scaling is None else scaling)
        causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
        mask = attention_mask
        if mask is None and causal and length > 1:
            mask = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
        if mask is not None and mask.dtype == torch.bool:
            probs = scores.masked_fill(~mask, torch.finfo(scores.dtype).min).softmax(dim=-1)
            empty = ~mask.any(dim=-1, keepdim=True)
            if empty.any():  # sdpa's safe softmax: a row with no key to attend to outputs zeros
                probs = probs.masked_fill(empty, 0.0)
        else:
            probs = (scores if mask is None else scores + mask.float()).softmax(dim=-1)
        out = fast_dropout(probs, dropout) @ v
    return out.to(query.dtype).transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, attention)
AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def fast_dropout_if(enabled: bool, model: nn.Module):
    """`cpu_fast_dropout(model)` when `enabled` (the `fast_dropout` config key), else a block that changes nothing."""
    return cpu_fast_dropout(model) if enabled else nullcontext(0)


def sdpa_configs(model: nn.Module) -> list:
    """The configs (sub-configs included) of `model`'s transformers models that dispatch attention through
    transformers' interface and are set to sdpa."""
    found, stack = {}, [m.config for m in model.modules()
                        if isinstance(m, PreTrainedModel) and type(m)._can_set_attn_implementation()]
    while stack:
        config = stack.pop()
        if id(config) not in found:
            found[id(config)] = config
            stack += [getattr(config, key) for key in config.sub_configs if getattr(config, key, None) is not None]
    # the private field: the public setter would also overwrite every sub-config with the same value
    return [c for c in found.values() if c._attn_implementation_internal == "sdpa"]


@contextmanager
def cpu_fast_dropout(model: nn.Module) -> Iterator[int]:
    """Within the block, `model`'s dropout modules and sdpa attention use `fast_dropout`'s mask; yields how many
    dropout modules were switched. Everything is switched back on exit, also on errors."""
    dropouts = [m for m in model.modules() if type(m) is nn.Dropout]
    configs = sdpa_configs(model)
    for m in dropouts:
        m.__class__ = FastDropout
    for c in configs:
        c._attn_implementation_internal = ATTENTION
    try:
        yield len(dropouts)
    finally:
        for m in dropouts:
            m.__class__ = nn.Dropout
        for c in configs:
            c._attn_implementation_internal = "sdpa"
