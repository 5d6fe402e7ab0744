"""Hydra composition against conf/, as the command line composes it, and the tiny from-scratch model."""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from senti_lit.core.config import CONFIG_DIR

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


def compose_config(name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Config `name` (train, pretrain) as `python -m senti_lit.<name> <overrides>` composes it, writing to
    `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(name, overrides=[*overrides, f"paths.output_dir={output_dir}", f"paths.log_dir={output_dir}",
                                       f"paths.cache_dir={output_dir}/cache"])
    GlobalHydra.instance().clear()
    return cfg


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    return compose_config("train", overrides, output_dir)
