"""The one way a classifier network is built: `ModelSpec` -> backbone -> fine-tuning method -> classifier network.
Training wraps the same network in its LightningModule (`training.module.SentimentClassifier`, built by
`training.steps.build_model`); `inference.artifact.load_artifact` builds a `TextClassifier` (plain torch) with the
architecture only (or the original weights plus the saved trainable ones)."""
from __future__ import annotations

from typing import Any, Callable

from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from senti_lit.data.labels import LabelSpace
from senti_lit.models.backbone import build_backbone
from senti_lit.models.methods import apply_method
from senti_lit.models.network import NETWORK_KEYS, TextClassifier
from senti_lit.models.spec import ModelSpec


def build_network(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase, *,
                  prepare: Callable[[PreTrainedModel], None] | None = None, **backbone: Any) -> PreTrainedModel:
    """The spec's backbone with its fine-tuning method applied. `backbone` overrides the spec's backbone arguments
    (an artifact: `path=<its backbone dir>, weights=False`); `prepare(backbone)` runs before the method wraps it
    (training: whole-word embeddings, the MLM warm-up)."""
    net = build_backbone(tokenizer, **{**spec.backbone, **backbone})
    if prepare is not None:
        prepare(net)
    return apply_method(net, **spec.method)


def build_classifier(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase, label_space: LabelSpace,
                     **backbone: Any) -> TextClassifier:
    """The classifier network for inference (`build_network` + head, probabilities and decision rule)."""
    net = build_network(spec, tokenizer, **backbone)
    return TextClassifier(net, label_space, **{k: v for k, v in spec.classifier.items() if k in NETWORK_KEYS})


def parameter_counts(module: nn.Module) -> dict[str, float]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"params/total": total, "params/trainable": trainable, "params/trainable_share": trainable / max(total, 1)}
