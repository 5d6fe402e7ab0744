"""The one way a classifier is built: `ModelSpec` -> backbone -> fine-tuning method -> SentimentClassifier.
Training calls it with the pretrained weights; `inference.artifact.load_artifact` calls it with the architecture
only (or the original weights plus the saved trainable ones)."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from senti_lit.data.labels import LabelSpace
from senti_lit.models.backbone import build_backbone
from senti_lit.models.classifier import SentimentClassifier
from senti_lit.models.methods import apply_method
from senti_lit.models.spec import ModelSpec


def build_classifier(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase, label_space: LabelSpace, *,
                     optimizer: Callable[..., torch.optim.Optimizer] | None = None,
                     prepare: Callable[[PreTrainedModel], None] | None = None,
                     **backbone: Any) -> SentimentClassifier:
    """`backbone` overrides the spec's backbone arguments (an artifact: `path=<its backbone dir>, weights=False`);
    `prepare(backbone)` runs before the method wraps it (training: whole-word embeddings, the MLM warm-up)."""
    net = build_backbone(tokenizer, **{**spec.backbone, **backbone})
    if prepare is not None:
        prepare(net)
    net = apply_method(net, **spec.method)
    return SentimentClassifier(net, label_space, optimizer=optimizer, **spec.classifier)


def parameter_counts(module: nn.Module) -> dict[str, float]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"params/total": total, "params/trainable": trainable, "params/trainable_share": trainable / max(total, 1)}
