"""The decision rule of a trained classifier in numpy: calibrated probabilities from raw logits, the decision
thresholds, the answers and their one-line form. The torch `Predictor` and the torch-free `OnnxPredictor` both
answer through these functions, so that both backends give the same answers by construction; this module imports
neither torch nor transformers (a one-text ONNX predict must not pay for them).

(Training's own rule, `models.network.ClassifierNet.probabilities/decide`, computes the same in torch on batches
that never leave the device; `tests/test_onnx.py` checks that both agree.)"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def probabilities(logits: np.ndarray, temperature: float, multi_label: bool) -> np.ndarray:
    """(texts, labels) float32: softmax (single-label) or per-label sigmoid (multi-label) of logits / temperature."""
    scaled = np.asarray(logits, dtype=np.float32) / np.float32(temperature)
    if multi_label:  # sigmoid as exp(-log(1 + e^-x)): no overflow warning for very negative logits
        return np.exp(-np.logaddexp(np.float32(0), -scaled)).astype(np.float32)
    shifted = np.exp(scaled - scaled.max(axis=-1, keepdims=True))  # the max shifted out: exp never overflows
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)


def positive_index(names: Sequence[str], positive_label: str | None) -> int:
    """The binary task's positive class: the artifact's `positive_label`, else `positive`, else index 1."""
    if positive_label is not None and positive_label in names:
        return list(names).index(positive_label)
    return list(names).index("positive") if "positive" in names else 1


def thresholds_for(names: Sequence[str], multi_label: bool, threshold: Any) -> np.ndarray:
    """The decision thresholds `threshold` stands for: one per label (multi-label; one number is repeated), [t]
    (binary: the P(positive) cut) or [] (argmax); a ValueError names what this task accepts."""
    values = threshold
    if type(values).__module__.startswith("omegaconf"):  # a list from a Hydra config; OmegaConf only then: a
        from senti_lit.core.config import plain  # one-text predict does not pay its import

        values = plain(values)
    if multi_label:
        values = [0.5] * len(names) if values is None else values
        if isinstance(values, (int, float)):
            values = [values] * len(names)
        if len(values) != len(names):
            raise ValueError(f"threshold has {len(values)} values for {len(names)} labels {list(names)}")
        return np.asarray([float(v) for v in values], dtype=np.float32)
    if values is None:
        return np.zeros(0, dtype=np.float32)
    if not isinstance(values, (int, float)) or isinstance(values, bool):
        raise ValueError(f"threshold={values}: give one number for a binary task")
    if len(names) != 2:
        raise ValueError(f"threshold={values}: a decision threshold applies to binary or multi-label tasks; this "
                         f"task has {len(names)} labels and predicts the likeliest (leave threshold out)")
    if not 0.0 < values < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {values}")
    return np.asarray([float(values)], dtype=np.float32)


def decide(probs: np.ndarray, thresholds: np.ndarray, multi_label: bool, positive: int) -> np.ndarray:
    """Class ids (single-label) or a 0/1 row per text (multi-label), by `thresholds` (`thresholds_for`)."""
    probs, thresholds = np.asarray(probs), np.asarray(thresholds, dtype=np.float32)
    if multi_label:
        return (probs >= thresholds).astype(np.int64)
    if thresholds.size == 0:
        return probs.argmax(axis=-1)
    return np.where(probs[:, positive] >= thresholds[0], positive, 1 - positive)


def answers(probs: np.ndarray, decided: np.ndarray, names: Sequence[str], multi_label: bool,
            top_k: int = 1) -> list[dict[str, Any]]:
    """One answer per row: `probs` for every label (6 decimals), and `labels` (multi-label) or `label` +
    `confidence` (+ `top`, the top_k likeliest, when top_k > 1)."""
    out = []
    for p, d in zip(np.asarray(probs, dtype=np.float32).tolist(), np.asarray(decided).tolist()):
        answer: dict[str, Any] = {"probs": {n: round(v, 6) for n, v in zip(names, p)}}
        if multi_label:
            answer["labels"] = [n for n, on in zip(names, d) if on]
        else:
            answer["label"], answer["confidence"] = names[d], round(p[d], 6)
            if top_k > 1:
                ranked = sorted(zip(names, p), key=lambda x: -x[1])[:top_k]
                answer["top"] = [[n, round(v, 6)] for n, v in ranked]
        out.append(answer)
    return out


def rule(names: Sequence[str], multi_label: bool, thresholds: Sequence[float], positive_label: str | None,
         temperature: float) -> str:
    """The decision rule in words (written to an export's metadata for whoever reads it without senti_lit)."""
    if multi_label:
        cuts = ", ".join(f"{n} >= {t:.4g}" for n, t in zip(names, thresholds))
        return f"p = sigmoid(logits / {temperature:.6g}) per label; a label is on when its p reaches its threshold " \
               f"({cuts})"
    if len(thresholds):
        positive = names[positive_index(names, positive_label)]
        return f"p = softmax(logits / {temperature:.6g}); {positive} when p[{positive}] >= {thresholds[0]:.4g}, " \
               "else the other label"
    return f"p = softmax(logits / {temperature:.6g}); the likeliest label"


def describe(answer: dict[str, Any]) -> str:
    """The answer as a line: `positive (confidence 0.98)`, with the runners-up or every label that is on."""
    if "labels" in answer:
        probs = answer["probs"]
        if not answer["labels"]:
            top = max(probs, key=probs.get)
            return f"no label (likeliest: {top} {probs[top]:.2f})"
        return ", ".join(answer["labels"]) + " (" + ", ".join(f"{n} {probs[n]:.2f}" for n in answer["labels"]) + ")"
    line = f"{answer['label']} (confidence {answer['confidence']:.2f})"
    if len(answer.get("top", [])) > 1:
        line += "; then " + ", ".join(f"{n} {p:.2f}" for n, p in answer["top"][1:])
    return line


class Answering:
    """`predict` for both predictors (torch `Predictor`, `OnnxPredictor`), from their own `probabilities` and
    `answers`: one text in, one answer dict out, however the logits were computed."""

    def predict(self, texts: Sequence[str], knowledge: Sequence[str | None] | None = None, batch_size: int = 64,
                top_k: int = 1, progress: bool = False) -> list[dict[str, Any]]:
        """One answer per text: `label` + `confidence` (single-label; `top` with top_k > 1) or `labels`
        (multi-label), and `probs` for every label."""
        if not texts:
            return []
        return self.answers(self.probabilities(texts, knowledge, batch_size, progress), top_k)
