"""Hydra composition against conf/, as the command line composes it, and the tiny from-scratch model."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from senti_lit.core.config import compose_config

# A model small enough to train in seconds: same code path as mini_bert, tiny dimensions.
TINY_MODEL = [
    "model.tokenizer.train.vocab_size=300",
    "model.backbone.config.hidden_size=32",
    "model.backbone.config.num_hidden_layers=1",
    "model.backbone.config.num_attention_heads=2",
    "model.backbone.config.intermediate_size=64",
    "model.backbone.config.max_position_embeddings=64",
    "model.mlm_warmup.epochs=1",
    "model.mlm_warmup.batch_size=16",
    "trainer.log_every_n_steps=5",
    "model.optimizer.lr=3e-3",
    "data.max_length=32",
    "data.batch_size=16",
    "trainer.accelerator=cpu",
]


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    return compose_config("train", overrides, output_dir)
