"""After training, on the validation split: temperature scaling and per-label decision thresholds.

Temperature scaling (Guo et al. 2017) divides the logits by one scalar T fitted by minimising the validation NLL,
which leaves the predicted ranking unchanged and makes the confidences honest. No library of our stack does it
(torchmetrics measures calibration, it does not fit it), so the few lines are here. ECE is torchmetrics'.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Callable, ContextManager, Iterable

import torch
from torchmetrics.functional.classification import binary_calibration_error, multiclass_calibration_error

log = logging.getLogger(__name__)

ECE_BINS = 15


@torch.no_grad()  # not inference_mode: the logits then feed the temperature fit, which needs autograd
def collect_logits(model: torch.nn.Module, batches: Iterable[dict],
                   context: Callable[[], ContextManager] = contextlib.nullcontext
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of every batch, in eval mode, on the model's device (float32 logits, on the CPU);
    `context`: the precision context of training (bf16 autocast ...)."""
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    logits, labels = [], []
    try:
        for batch in batches:
            with context():
                out = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            logits.append(out.float().cpu())
            labels.append(batch["labels"].cpu())
    finally:
        model.train(was_training)
    return torch.cat(logits), torch.cat(labels)


def nll(logits: torch.Tensor, labels: torch.Tensor, multi_label: bool) -> torch.Tensor:
    if multi_label:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
    return torch.nn.functional.cross_entropy(logits, labels)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, multi_label: bool = False) -> float:
    """The T > 0 minimising NLL(logits / T) on held-out data (LBFGS on log T)."""
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nll(logits / log_t.exp(), labels, multi_label)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, multi_label: bool = False) -> float:
    """ECE with 15 equal-width confidence bins: the top-label confidence (single-label), or every (text, label)
    probability as a binary prediction (multi-label)."""
    if multi_label:
        return float(binary_calibration_error(probs.flatten(), labels.flatten().long(), n_bins=ECE_BINS))
    return float(multiclass_calibration_error(probs, labels, num_classes=probs.size(1), n_bins=ECE_BINS))


def tune_thresholds(probs: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Per label, the probability cut that maximises F1 on held-out data (multi-label); a label never positive
    there keeps 0.5. Candidates are the observed probabilities, so the search is exact."""
    thresholds = []
    for j in range(probs.size(1)):
        p, y = probs[:, j], labels[:, j].bool()
        if not bool(y.any()):
            thresholds.append(0.5)
            continue
        order = torch.argsort(p, descending=True)
        hits = torch.cumsum(y[order].float(), 0)  # true positives when cutting after each rank
        predicted = torch.arange(1, len(p) + 1, dtype=torch.float)
        f1 = 2 * hits / (predicted + y.sum())
        best = int(torch.argmax(f1))
        # halfway to the next lower probability: robust to ties and to unseen values near the cut
        below = p[order][best + 1] if best + 1 < len(p) else torch.tensor(0.0)
        thresholds.append(round(float((p[order][best] + below) / 2), 6))
    return thresholds


def calibrate(model, logits: torch.Tensor, labels: torch.Tensor, temperature: bool = True,
              thresholds: bool = True) -> dict:
    """Fit the model's temperature and (multi-label) thresholds on validation logits; returns what was set."""
    multi_label = model.label_space.multi_label
    report: dict = {}
    if temperature and len(labels):
        model.temperature.fill_(fit_temperature(logits, labels, multi_label))
        report["temperature"] = float(model.temperature)
    if thresholds and multi_label and len(labels):
        probs = model.probabilities(logits.to(model.temperature.device)).cpu()
        tuned = tune_thresholds(probs, labels)
        model.thresholds.copy_(torch.tensor(tuned))
        report["thresholds"] = dict(zip(model.label_space.names, tuned))
    if report:
        log.info("calibration on the validation split: %s", report)
    return report
