"""Metric collections (torchmetrics) for single- and multi-label tasks."""
from __future__ import annotations

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MultilabelAccuracy,
    MultilabelExactMatch,
    MultilabelF1Score,
    MultilabelHammingDistance,
)

from senti_lit.data.labels import LabelSpace


def build_metrics(labels: LabelSpace) -> MetricCollection:
    """acc, macro_f1 and per-class f1 (single-label). Multi-label, the 8-label seed's four metrics and more: acc =
    subset (exact-match) accuracy, label_acc = label-wise ("one-hot") accuracy over every (text, label) cell,
    micro_f1, macro_f1, plus hamming loss and per-label f1. Multi-label metrics take 0/1 decisions."""
    n = labels.num_labels
    if labels.multi_label:
        return MetricCollection({
            "acc": MultilabelExactMatch(num_labels=n),
            "label_acc": MultilabelAccuracy(num_labels=n, average="micro"),
            "hamming": MultilabelHammingDistance(num_labels=n),
            "micro_f1": MultilabelF1Score(num_labels=n, average="micro"),
            "macro_f1": MultilabelF1Score(num_labels=n, average="macro"),
            "f1": MultilabelF1Score(num_labels=n, average="none"),
        })
    return MetricCollection({
        "acc": MulticlassAccuracy(num_classes=n, average="micro"),
        "macro_f1": MulticlassF1Score(num_classes=n, average="macro"),
        "f1": MulticlassF1Score(num_classes=n, average="none"),
    })


def flatten(values: dict[str, torch.Tensor], labels: LabelSpace, prefix: str) -> dict[str, float]:
    """Scalars as `prefix/name`; per-class vectors as `prefix/f1_<label>`."""
    out: dict[str, float] = {}
    for name, value in values.items():
        if value.ndim == 0:
            out[f"{prefix}/{name}"] = float(value)
        else:
            for label, v in zip(labels.names, value.tolist()):
                out[f"{prefix}/{name}_{label}"] = float(v)
    return out


def confusion_figure(matrix: torch.Tensor, names: tuple[str, ...], title: str):
    """A confusion-matrix figure (rows: true label, columns: predicted; counts written in the cells)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")  # no display: figures go to TensorBoard
    from matplotlib import pyplot as plt

    counts = matrix.cpu().numpy()
    size = max(3.0, 0.5 * len(names) + 1.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(counts, cmap="Blues")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    for (row, col), value in np.ndenumerate(counts):
        ax.text(col, row, str(int(value)), ha="center", va="center",
                color="white" if value > counts.max() / 2 else "black", fontsize=8)
    fig.tight_layout()
    return fig

