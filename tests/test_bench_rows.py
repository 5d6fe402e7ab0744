"""benchmarks/bench.py: every row's commands compose with the current conf/ tree (a typo in a row's override
otherwise shows up only when a full benchmark reaches it, possibly an hour in)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench import ROWS, pretrain_args, repeats, train_args  # noqa: E402

from senti_lit.config import CONFIG_DIR  # noqa: E402

DATA, E5, PRETRAINED = Path("/bench/data"), Path("/bench/e5"), Path("/bench/pretrained")


def test_row_ids_are_unique():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("mode", ["quick", "full"])
@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_every_run_of_a_row_composes(row, mode):
    runs = repeats(row, mode)
    assert len(runs) == (row.folds or (1 if mode == "quick" else len(row.seeds)))
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        for seed, fold in runs:
            cfg = compose("train", overrides=train_args(row, mode, DATA, E5, PRETRAINED, seed, fold))
            assert cfg.seed == seed
            if any(a.startswith("data.path=") for a in row.args):
                assert cfg.data.path.startswith(str(DATA))
            if row.folds:
                assert cfg.data.split.folds == row.folds and f"data.split.fold={cfg.data.split.fold}" in fold
            if any(a.startswith("model=e5_small") for a in row.args):
                assert cfg.model.backbone.path == str(E5)
            if row.pretrain:
                assert cfg.model.backbone.path == str(PRETRAINED)
        if row.pretrain:
            compose("pretrain", overrides=pretrain_args(row, mode, DATA))
