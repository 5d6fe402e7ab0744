"""Predictor: a trained classifier loaded from its artifact, with the decision rule and calibration it was saved
with; texts are encoded by the artifact's InputSpec, exactly as in training."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from rich.console import Console
from rich.progress import track
from transformers import DataCollatorWithPadding

from senti_lit.core.runtime import cpu_has_native_bf16
from senti_lit.data.encoding import EncodedDataset
from senti_lit.inference import decisions
from senti_lit.inference.artifact import input_spec, load_artifact
from senti_lit.inference.decisions import describe  # noqa: F401 - its former home: `from ...predictor import describe`


def bf16_supported(device: str) -> bool:
    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()


class Predictor(decisions.Answering):
    """Texts in, calibrated probabilities and decisions out (sorted by length into batches: little padding; bf16
    autocast where the hardware has it and `precision` asks for it)."""

    def __init__(self, model, tokenizer, meta: dict[str, Any], device: str = "cpu", precision: str = "32",
                 threshold: float | Sequence[float] | None = None) -> None:
        self.model, self.tokenizer, self.meta = model.to(device).eval(), tokenizer, meta
        self.device = device
        self.names = list(model.label_space.names)
        self.multi_label = model.label_space.multi_label
        if precision not in ("auto", "bf16", "32"):
            raise ValueError(f"precision must be auto, bf16 or 32, got {precision!r}")
        self.autocast = precision == "bf16" or (precision == "auto" and bf16_supported(device))
        self.inputs = input_spec(meta)
        self.collator = DataCollatorWithPadding(tokenizer)
        if threshold is not None:
            self.set_threshold(threshold)

    @classmethod
    def load(cls, folder: str | Path, trust_remote_code: bool = False, **kwargs: Any) -> "Predictor":
        model, tokenizer, meta = load_artifact(folder, trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, meta, **kwargs)

    @property
    def aliases(self) -> dict[str, str]:
        """{other spelling: label name} the model was trained with (evaluate maps datasets' labels through them)."""
        return dict(self.model.label_space.aliases)

    def thresholds_for(self, threshold: float | Sequence[float]) -> torch.Tensor:
        """The decision thresholds `threshold` stands for (binary: P(positive) cut; multi-label: one or one per
        label); a ValueError names what this task accepts."""
        return torch.from_numpy(decisions.thresholds_for(self.names, self.multi_label, threshold))

    def set_threshold(self, threshold: float | Sequence[float]) -> None:
        """Override the artifact's decision thresholds (binary: P(positive) cut; multi-label: one or one per label)."""
        self.model.thresholds = self.thresholds_for(threshold).to(self.model.thresholds.device)

    def encode(self, texts: Sequence[str], knowledge: Sequence[str | None] | None = None) -> EncodedDataset:
        """Token ids of `texts` by the artifact's InputSpec (max_length, prompt, knowledge join), as in training."""
        return self.inputs.encode(self.tokenizer, texts, knowledge=knowledge)

    def truncated(self, texts: Sequence[str], encoded: EncodedDataset,
                  knowledge: Sequence[str | None] | None = None) -> list[bool]:
        """Per text: whether `encode` cut it to the model's max_length (the model saw only its beginning)."""
        return self.inputs.truncated(self.tokenizer, texts, encoded, knowledge)

    @torch.no_grad()
    def logits(self, texts: Sequence[str], knowledge: Sequence[str | None] | None = None, batch_size: int = 64,
               progress: bool = False, encoded: EncodedDataset | None = None) -> torch.Tensor:
        """(len(texts), num_labels) raw logits, before the calibration temperature, in input order (what a student
        learns from in distillation; `encoded`: `encode(texts, knowledge)` already made, e.g. to check truncation)."""
        encoded = self.encode(texts, knowledge) if encoded is None else encoded
        lengths = encoded.lengths()
        order = sorted(range(len(encoded)), key=lengths.__getitem__)
        out = torch.empty(len(encoded), len(self.names))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        console = Console(stderr=True)  # stdout stays for the answers
        bar = track(batches, description="predicting", disable=not (progress and console.is_terminal),
                    transient=True, console=console)
        for rows in bar:
            batch = self.collator([encoded[i] for i in rows])
            with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.autocast):
                logits = self.model(batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device))
            out[rows] = logits.float().cpu()
        return out

    def probabilities(self, texts: Sequence[str], knowledge: Sequence[str | None] | None = None,
                      batch_size: int = 64, progress: bool = False, encoded: EncodedDataset | None = None
                      ) -> torch.Tensor:
        """(len(texts), num_labels) calibrated probabilities, in input order."""
        logits = self.logits(texts, knowledge, batch_size, progress, encoded)
        temperature = float(self.model.temperature)
        return torch.from_numpy(decisions.probabilities(logits.numpy(), temperature, self.multi_label))

    def answers(self, probs: torch.Tensor, top_k: int = 1, thresholds: torch.Tensor | None = None
                ) -> list[dict[str, Any]]:
        """`predict`'s answers from `probabilities`' rows, decided by the model's rule or by `thresholds`
        (`thresholds_for(...)`: one caller's rule, e.g. one server request's, leaving the model's untouched)."""
        thresholds = self.model.thresholds if thresholds is None else thresholds
        decided = decisions.decide(probs.float().cpu().numpy(), thresholds.float().cpu().numpy(), self.multi_label,
                                   self.model.positive_index)
        return decisions.answers(probs.float().cpu().numpy(), decided, self.names, self.multi_label, top_k)
