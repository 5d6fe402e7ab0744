"""Backbones: a pretrained encoder from a Hub id or local dir, or a fresh one built from a config."""
from __future__ import annotations

import logging
from typing import Any

from transformers import AutoConfig, AutoModel, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


def build_backbone(
    tokenizer: PreTrainedTokenizerBase,
    path: str | None = None,
    model_type: str = "bert",
    config: dict[str, Any] | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> PreTrainedModel:
    """`path` (Hub id or local dir) loads pretrained weights; otherwise `model_type` + `config` build from scratch.

    A from-scratch model takes its vocabulary size and special token ids from `tokenizer`.
    """
    model_kwargs = dict(model_kwargs or {})
    if path:
        return AutoModel.from_pretrained(path, **model_kwargs)
    cfg = AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        **dict(config or {}),
    )
    model = AutoModel.from_config(cfg, **model_kwargs)
    log.info("backbone: %s from scratch, %.2fM parameters", model_type, model.num_parameters() / 1e6)
    return model
