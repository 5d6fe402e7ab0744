"""The one way a classifier is built: `ModelSpec` -> backbone -> fine-tuning method -> classifier network.
Training calls it with the pretrained weights and an optimiser (a `SentimentClassifier`, the LightningModule);
`inference.artifact.load_artifact` calls it without one (a `TextClassifier`, plain torch) with the architecture
only (or the original weights plus the saved trainable ones)."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from senti_lit.data.labels import LabelSpace
from senti_lit.models.backbone import build_backbone
from senti_lit.models.methods import apply_method
from senti_lit.models.network import NETWORK_KEYS, TextClassifier
from senti_lit.models.spec import ModelSpec


def build_classifier(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase, label_space: LabelSpace, *,
                     optimizer: Callable[..., torch.optim.Optimizer] | None = None,
                     prepare: Callable[[PreTrainedModel], None] | None = None,
                     **backbone: Any) -> TextClassifier | Any:
    """A `SentimentClassifier` (training) when `optimizer` is given, else a `TextClassifier` (inference).
    `backbone` overrides the spec's backbone arguments (an artifact: `path=<its backbone dir>, weights=False`);
    `prepare(backbone)` runs before the method wraps it (training: whole-word embeddings, the MLM warm-up)."""
    net = build_backbone(tokenizer, **{**spec.backbone, **backbone})
    if prepare is not None:
        prepare(net)
    net = apply_method(net, **spec.method)
    if optimizer is None:
        return TextClassifier(net, label_space, **{k: v for k, v in spec.classifier.items() if k in NETWORK_KEYS})
    from senti_lit.models.classifier import SentimentClassifier  # Lightning: seconds to import, training only

    return SentimentClassifier(net, label_space, optimizer=optimizer, **spec.classifier)


def parameter_counts(module: nn.Module) -> dict[str, float]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"params/total": total, "params/trainable": trainable, "params/trainable_share": trainable / max(total, 1)}
