"""The classifier network in plain torch: backbone + head, calibrated probabilities and the decision rule.

Inference (`inference.artifact`, the Predictor, export, serving) builds `TextClassifier`; training builds
`training.module.SentimentClassifier`, the same network as a LightningModule. Both take their layers and buffers
from `ClassifierNet`, so their weights have the same names. Kept free of Lightning and torchmetrics: importing
them costs seconds that a one-text predict should not pay."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from senti_lit.data.labels import LabelSpace
from senti_lit.models.heads import ClassificationHead, OneVsRestHead, VerbalizerHead

MULTILABEL = ("sigmoid", "one_vs_rest")
# artifact.json `classifier` keys that shape the network; the others (loss, scheduler, …) matter to training only
NETWORK_KEYS = ("head", "token_dropout", "verbalizer", "threshold", "positive_label", "multilabel")


def positive_index(label_space: LabelSpace, positive_label: str | None) -> int:
    if positive_label is not None:
        return label_space.id_of(positive_label)
    return label_space.names.index("positive") if "positive" in label_space.names else 1


def decision_thresholds(label_space: LabelSpace, threshold: float | list[float] | None) -> torch.Tensor:
    """[num_labels] thresholds (multi-label), [1] (binary with a threshold) or [] (argmax)."""
    if label_space.multi_label:
        values = [0.5] * label_space.num_labels if threshold is None else threshold
        if isinstance(values, (int, float)):
            values = [values] * label_space.num_labels
        if len(values) != label_space.num_labels:
            raise ValueError(f"model.threshold has {len(values)} values for {label_space.num_labels} labels "
                             f"{list(label_space.names)}")
        return torch.tensor([float(v) for v in values])
    if threshold is None:
        return torch.zeros(0)
    if label_space.num_labels != 2 or not isinstance(threshold, (int, float)):
        raise ValueError(f"model.threshold={threshold}: a decision threshold applies to binary or multi-label tasks; "
                         f"this task has {label_space.num_labels} labels and predicts the likeliest (set null)")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"model.threshold must be in (0, 1), got {threshold}")
    return torch.tensor([float(threshold)])


class ClassifierNet:
    """Mixin for an nn.Module: the network's layers (`init_network`), forward, probabilities and decision.
    A mixin rather than a module the LightningModule holds, so the weights keep their names (`backbone.…`,
    `head.…`) in checkpoints and in every artifact written so far."""

    def init_network(self, backbone: PreTrainedModel, label_space: LabelSpace, head: dict | None = None,
                     token_dropout: float = 0.0, verbalizer: dict | None = None,
                     threshold: float | list[float] | None = None, positive_label: str | None = None,
                     multilabel: str = "sigmoid") -> None:
        if multilabel not in MULTILABEL:
            raise ValueError(f"model.multilabel must be one of {MULTILABEL}, got {multilabel!r}")
        if multilabel == "one_vs_rest" and (verbalizer or not label_space.multi_label):
            raise ValueError("model.multilabel=one_vs_rest needs multi-label data (data.multi_label=true) and a "
                             "classification head (no verbalizer)")
        self.backbone = backbone
        self.label_space = label_space
        head = dict(head or {})
        if verbalizer:
            if len(verbalizer["token_ids"]) != label_space.num_labels:
                raise ValueError(f"the verbalizer has {len(verbalizer['token_ids'])} words for "
                                 f"{label_space.num_labels} labels")
            self.head: nn.Module = VerbalizerHead(**verbalizer)
        elif multilabel == "one_vs_rest":
            self.head = OneVsRestHead(backbone.config.hidden_size, label_space.num_labels, **head)
        else:
            self.head = ClassificationHead(backbone.config.hidden_size, label_space.num_labels, **head)
        self.token_dropout = token_dropout
        if token_dropout > 0:
            backbone.get_input_embeddings().register_forward_hook(self._drop_tokens)
        self.positive_index = positive_index(label_space, positive_label)
        # decision thresholds and softmax/sigmoid temperature: buffers, so checkpoints and artifacts carry them
        self.register_buffer("thresholds", decision_thresholds(label_space, threshold))
        self.register_buffer("temperature", torch.ones(()))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        # prompt tuning prepends virtual tokens: the heads read the text's own positions, which attended to them
        states = out.logits if isinstance(self.head, VerbalizerHead) else out.last_hidden_state
        states = states[:, states.size(1) - input_ids.size(1):]
        if isinstance(self.head, VerbalizerHead):
            return self.head(states, input_ids, attention_mask)
        return self.head(states, attention_mask)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax (single-label) or per-label sigmoid (multi-label) of the temperature-scaled logits."""
        scaled = logits.float() / self.temperature
        return scaled.sigmoid() if self.label_space.multi_label else scaled.softmax(dim=-1)

    def decide(self, probs: torch.Tensor, thresholds: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted labels: class ids (single-label) or a 0/1 row per text (multi-label), by the model's thresholds
        or by `thresholds` (from `decision_thresholds`: one request's rule, leaving the model's own untouched)."""
        thresholds = self.thresholds if thresholds is None else thresholds.to(probs.device)
        if self.label_space.multi_label:
            return (probs >= thresholds).long()
        if thresholds.numel() == 0:
            return probs.argmax(dim=-1)
        positive = probs[:, self.positive_index] >= thresholds[0]
        return torch.where(positive, self.positive_index, 1 - self.positive_index)

    def _drop_tokens(self, module: nn.Module, inputs: Any, embeddings: torch.Tensor) -> torch.Tensor | None:
        if not self.training:
            return None  # keep the module's output
        keep = torch.rand(embeddings.shape[:-1], device=embeddings.device) >= self.token_dropout
        return embeddings * keep.unsqueeze(-1).to(embeddings.dtype)


class TextClassifier(ClassifierNet, nn.Module):
    """The network for inference: what an artifact loads (no loss, metrics or optimiser)."""

    def __init__(self, backbone: PreTrainedModel, label_space: LabelSpace, **settings: Any) -> None:
        super().__init__()
        self.init_network(backbone, label_space, **settings)
