"""Every option of every config group composes, and its `_target_`s instantiate."""
from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from senti_lit.config import CONFIG_DIR
from senti_lit.train import BUILD_KEYS, instantiate_group

from helpers.compose import compose_train

# the groups train.yaml composes (annotator belongs to annotate.yaml: tests/test_annotate.py)
GROUPS = sorted(p.name for p in Path(CONFIG_DIR).iterdir() if p.is_dir() and p.name not in ("hydra", "local",
                                                                                           "annotator"))
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((Path(CONFIG_DIR) / g).glob("*.yaml"))]


def test_every_group_has_options():
    assert {"data", "model", "trainer", "callbacks", "logger", "paths", "debug", "experiment"} <= set(GROUPS)


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_instantiates(group: str, option: str, tmp_path: Path):
    cfg = compose_train([f"{group}={option}"], tmp_path)
    datamodule = instantiate(cfg.data)
    assert datamodule.source is None and callable(datamodule.source_factory)  # nothing read at compose time
    module_cfg = {k: v for k, v in cfg.model.items() if k not in BUILD_KEYS}
    factory = instantiate(module_cfg, _partial_=True)
    assert isinstance(factory, functools.partial)
    instantiate_group(cfg.callbacks)
    loggers = instantiate_group(cfg.logger)
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():  # composes; cannot be built here
        assert cfg.trainer.precision in ("bf16-mixed", "16-mixed")
    else:
        trainer = instantiate(cfg.trainer, callbacks=instantiate_group(cfg.callbacks), logger=loggers)
        assert trainer.max_epochs >= 1 or trainer.fast_dev_run
    assert cfg.optimized_metric.endswith(cfg.monitor.metric)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "senti_lit.train", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_unknown_option_fails_with_hydra_message(tmp_path: Path):
    result = run_cli("model=no_such_model", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'model/no_such_model'" in result.stderr
    assert "Available options" in result.stderr and "mini_bert" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_key_fails_with_hydra_message(tmp_path: Path):
    result = run_cli("model.optimizer.lrr=1", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not override 'model.optimizer.lrr'" in result.stderr
    assert "Traceback" not in result.stderr


def test_model_config_sets_the_trainer_epochs_unless_the_command_line_does(tmp_path: Path):
    assert compose_train([], tmp_path).trainer.max_epochs == 3  # mini_bert's recipe: 3 epochs after its MLM warm-up
    assert compose_train(["model=e5_small"], tmp_path).trainer.max_epochs == 5  # no model.max_epochs: the trainer's
    assert compose_train(["trainer.max_epochs=7"], tmp_path).trainer.max_epochs == 7
    assert compose_train(["experiment=chnsenticorp_mini_bert"], tmp_path).trainer.max_epochs == 5  # experiments win
