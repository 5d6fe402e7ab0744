"""Pooling of the backbone's token states and the classification layer on top."""
from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("cls", "mean", "last", "cls_mean")


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """hidden (B, T, H), mask (B, T) -> (B, H) or (B, 2H) for `cls_mean`."""
    if how == "cls":
        return hidden[:, 0]
    if how == "last":  # last non-pad token (right padding): what a causal LM has read everything up to
        last = mask.sum(dim=1).clamp(min=1) - 1
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    if how == "mean":
        return mean
    if how == "cls_mean":
        return torch.cat([hidden[:, 0], mean], dim=-1)
    raise ValueError(f"model.head.pooling must be one of {POOLINGS}, got {how!r}")


class ClassificationHead(nn.Module):
    """pool -> dropout -> linear logits (one per label)."""

    def __init__(self, hidden_size: int, num_labels: int, pooling: str = "cls", dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"model.head.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        width = 2 * hidden_size if pooling == "cls_mean" else hidden_size
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(width, num_labels)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(pool(hidden, mask, self.pooling)))


class OneVsRestHead(nn.Module):
    """One binary classifier per label on the shared pooled text (the 8-label seed's one-vs-rest strategy, in one
    run): each has its own hidden layer and a 2-way output. A label's logit is its classifier's positive-minus-
    negative score, so sigmoid(logit) is exactly that classifier's softmax probability and BCE on it its
    cross-entropy: loss, thresholds, calibration and metrics are the sigmoid head's."""

    def __init__(self, hidden_size: int, num_labels: int, pooling: str = "cls", dropout: float = 0.1,
                 hidden: int | None = None) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"model.head.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        width = 2 * hidden_size if pooling == "cls_mean" else hidden_size
        hidden = hidden or hidden_size
        self.classifiers = nn.ModuleList(
            nn.Sequential(nn.Dropout(dropout), nn.Linear(width, hidden), nn.Tanh(), nn.Dropout(dropout),
                          nn.Linear(hidden, 2))
            for _ in range(num_labels))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = pool(hidden, mask, self.pooling)
        scores = torch.stack([classifier(pooled) for classifier in self.classifiers], dim=1)  # (B, labels, 2)
        return scores[..., 1] - scores[..., 0]


class VerbalizerHead(nn.Module):
    """Classification by a language model's own vocabulary: the class scores are the LM logits of each label's
    word at the answer position: the [MASK] of a cloze template (`position: mask`, BERT), or the last prompt token,
    whose next token is the answer (`position: last`, GPT2). No new weights: the pretrained head does the work.

    token_ids: one vocabulary id per label (the first token of its word); special_ids: tokens the answer position
    skips back over at the end of a sequence (the [SEP] a pair encoding appends) when `skip_trailing_special`; a
    `{text}` template ends where the answer starts (e.g. a chat's assistant tag) and is read as it is.
    """

    def __init__(self, token_ids: list[int], position: str = "mask", mask_token_id: int | None = None,
                 special_ids: list[int] | None = None, skip_trailing_special: bool = True) -> None:
        super().__init__()
        if position not in ("mask", "last"):
            raise ValueError(f"model.verbalizer.position must be 'mask' or 'last', got {position!r}")
        if position == "mask" and mask_token_id is None:
            raise ValueError("a cloze verbalizer needs a tokenizer with a mask token")
        self.position, self.mask_token_id = position, mask_token_id
        self.skip_trailing_special = skip_trailing_special
        self.register_buffer("token_ids", torch.tensor(token_ids, dtype=torch.long), persistent=False)
        self.register_buffer("special_ids", torch.tensor(special_ids or [], dtype=torch.long), persistent=False)

    def answer_positions(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.position == "mask":
            is_mask = input_ids == self.mask_token_id
            if not bool(is_mask.any(dim=1).all()):
                raise ValueError("a text lost its [MASK] (truncated?): the cloze template must follow the text")
            # the last [MASK] of each row: the template's, even if a text holds the string "[MASK]"
            return is_mask.size(1) - 1 - is_mask.flip(1).int().argmax(dim=1)
        last = mask.sum(dim=1).clamp(min=1) - 1
        if not self.skip_trailing_special:
            return last
        rows = torch.arange(input_ids.size(0), device=input_ids.device)
        trailing = torch.isin(input_ids[rows, last], self.special_ids)
        return (last - trailing.long()).clamp(min=0)

    def forward(self, lm_logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(input_ids.size(0), device=input_ids.device)
        return lm_logits[rows, self.answer_positions(input_ids, mask)][:, self.token_ids]
