"""Train only the word-embedding rows the training texts use (`model.embedding_rows: train`).

A batch's gradient reaches only the embedding rows of its own tokens, so under dense AdamW a row that no training
text uses keeps its pretrained value (its gradient and both moments stay zero; only weight decay shrinks it, by
lr x weight_decay a step). Updating the whole table anyway is what made e5_small slow and big: its 250k x 384 word
embedding is 96M of its 118M parameters, and every step paid a 96M-row gradient, two AdamW moments and the update
over all of them (~1.4 GB and most of the optimiser step). Here the rows the training split uses are one small
Parameter (`trained`); the full table stays a frozen tensor that the forward reads for every other token.

The state dict keeps the plain embedding's single `weight` (the trained rows written into it), so checkpoints,
artifacts and exports look exactly like the dense model's, and `restore_embedding` turns the module back into a
plain `nn.Embedding` after fit. torch's own `nn.Embedding(sparse=True)` needs SparseAdam (no fused AdamW, no weight
decay groups) and no library trims a transformers embedding this way: hand-written.
"""
from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


class TrainedRowsEmbedding(nn.Module):
    """An `nn.Embedding` whose `rows` train (a Parameter of their own) while every other row stays frozen."""

    def __init__(self, embedding: nn.Embedding, rows: Any) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = embedding.weight.shape
        self.padding_idx = embedding.padding_idx
        self.weight = nn.Parameter(embedding.weight.detach(), requires_grad=False)  # the key a checkpoint keeps
        rows = torch.as_tensor(rows, dtype=torch.long).unique()
        if self.padding_idx is not None:
            rows = rows[rows != self.padding_idx]  # its gradient is zero in nn.Embedding too
        self.register_buffer("rows", rows, persistent=False)
        slot = torch.full((self.num_embeddings,), -1, dtype=torch.long)
        slot[rows] = torch.arange(len(rows))
        self.register_buffer("slot", slot, persistent=False)
        self.trained = nn.Parameter(self.weight[rows].clone())
        self.register_state_dict_post_hook(_save_as_plain)
        self.register_load_state_dict_pre_hook(_load_from_plain)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        slot = self.slot[ids]
        hit = slot >= 0
        if self.training:
            untrained = ~hit if self.padding_idx is None else ~hit & (ids != self.padding_idx)
            if untrained.any():  # a dense update would move that row: the result would silently differ
                raise RuntimeError(f"token ids {ids[untrained].unique()[:5].tolist()} are not among the embedding "
                                   "rows trained (model.embedding_rows: train takes them from the training split "
                                   "at build time); train them with model.embedding_rows=all")
        frozen = F.embedding(ids, self.weight, self.padding_idx)
        return torch.where(hit.unsqueeze(-1), F.embedding(slot.clamp(min=0), self.trained), frozen)

    def plain(self) -> nn.Embedding:
        """The trained table as a plain `nn.Embedding` (the trained rows written back into the full table)."""
        with torch.no_grad():
            self.weight[self.rows] = self.trained
        out = nn.Embedding(self.num_embeddings, self.embedding_dim, padding_idx=self.padding_idx,
                           device=self.weight.device, dtype=self.weight.dtype)
        out.weight = nn.Parameter(self.weight.detach(), requires_grad=True)
        return out

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, trained rows={len(self.rows)}"


def _save_as_plain(module: TrainedRowsEmbedding, state: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    with torch.no_grad():
        module.weight[module.rows] = module.trained  # in place: the saved `weight` is that tensor
    state.pop(prefix + "trained", None)


def _load_from_plain(module: TrainedRowsEmbedding, state: dict[str, Any], prefix: str, *args: Any) -> None:
    if prefix + "weight" in state and prefix + "trained" not in state:
        state[prefix + "trained"] = state[prefix + "weight"][module.rows.to(state[prefix + "weight"].device)]


def train_used_rows(backbone: nn.Module, token_ids: Any) -> bool:
    """Swap the backbone's trainable input embedding for a `TrainedRowsEmbedding` over the ids in `token_ids` (the
    training split's). Left alone, and False returned, where it would change training: a frozen embedding (LoRA,
    adapters), or one tied to an output layer (a masked or causal LM head reads every row)."""
    embedding = backbone.get_input_embeddings()
    output = backbone.get_output_embeddings() if hasattr(backbone, "get_output_embeddings") else None
    if (type(embedding) is not nn.Embedding or not embedding.weight.requires_grad
            or (output is not None and output.weight is embedding.weight)):
        return False
    wrapped = TrainedRowsEmbedding(embedding, token_ids)
    # gradient checkpointing hooks the input embedding: moved to the new one (a hook left on the old module breaks
    # copying the model, e.g. for weight averaging)
    checkpointing = getattr(backbone, "is_activation_checkpointing", False)
    if checkpointing:
        backbone.disable_input_require_grads()
    backbone.set_input_embeddings(wrapped)
    if checkpointing:
        backbone.enable_input_require_grads()
    log.info("embedding: training the %d of its %d rows the training texts use (model.embedding_rows: train)",
             len(wrapped.rows), wrapped.num_embeddings)
    return True


def restore_embedding(backbone: nn.Module) -> None:
    """After fit: a `TrainedRowsEmbedding` becomes a plain `nn.Embedding` again (artifacts, exports, prediction)."""
    embedding = backbone.get_input_embeddings()
    if isinstance(embedding, TrainedRowsEmbedding):
        backbone.set_input_embeddings(embedding.plain())
