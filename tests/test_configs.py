"""Every option of every config group composes, and its `_target_`s instantiate."""
from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from helpers.compose import compose_train
from senti_lit.core.config import CONFIG_DIR, plain
from senti_lit.models.spec import check_model_keys
from senti_lit.training.steps import instantiate_group

# the groups train.yaml composes (annotator belongs to annotate.yaml: tests/test_annotate.py; command and mlm are
# blocks other configs include: predict/serve/export and mini_bert/pretrain, composed by tests/test_docs.py)
GROUPS = sorted(p.name for p in Path(CONFIG_DIR).iterdir()
                if p.is_dir() and p.name not in ("hydra", "local", "annotator", "command", "mlm"))
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((Path(CONFIG_DIR) / g).glob("*.yaml"))]


def test_every_group_has_options():
    assert {"data", "model", "trainer", "callbacks", "logger", "paths", "debug", "experiment"} <= set(GROUPS)


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_instantiates(group: str, option: str, tmp_path: Path):
    cfg = compose_train([f"{group}={option}"], tmp_path)
    datamodule = instantiate(cfg.data)
    assert datamodule.source is None and callable(datamodule.source_factory)  # nothing read at compose time
    check_model_keys(plain(cfg.model))  # every model key is a setting the model spec or training reads
    assert isinstance(instantiate(cfg.model.optimizer), functools.partial)
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


def test_unknown_option_fails_in_one_line_listing_the_options(tmp_path: Path):
    result = run_cli("model=no_such_model", cwd=tmp_path)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "model=no_such_model: no such option" in result.stderr and "mini_bert" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_key_fails_in_one_line_with_a_suggestion(tmp_path: Path):
    result = run_cli("model.optimizer.lrr=1", cwd=tmp_path)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "model.optimizer.lrr: no such setting; did you mean `model.optimizer.lr`?" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_model_sets_its_trainer_epochs_unless_the_command_line_does(tmp_path: Path):
    assert compose_train([], tmp_path).trainer.max_epochs == 3  # trainer/model/mini_bert.yaml: 3 after its warm-up
    assert compose_train(["model=e5_small"], tmp_path).trainer.max_epochs == 5  # no trainer/model/e5_small: default
    assert compose_train(["trainer.max_epochs=7"], tmp_path).trainer.max_epochs == 7
    assert compose_train(["experiment=chnsenticorp_mini_bert"], tmp_path).trainer.max_epochs == 5  # experiments win


def test_a_key_nobody_reads_fails(tmp_path: Path):
    """A leftover or misspelt key in a model config is an error, not silently ignored (data, trainer, callbacks and
    loggers are constructor arguments: instantiating them above rejects unknown keys)."""
    cfg = compose_train(["+model.max_epochs=3"], tmp_path)
    with pytest.raises(ValueError, match="model.max_epochs is not a model setting"):
        check_model_keys(plain(cfg.model))
    with pytest.raises(Exception, match="unexpected keyword argument 'no_such_key'"):
        instantiate(compose_train(["+data.no_such_key=1"], tmp_path).data)


def test_a_bad_number_fails_before_any_data_is_read(tmp_path: Path):
    import pytest

    from helpers.compose import compose_train
    from senti_lit.train import train

    cfg = compose_train(["model.optimizer.lr=notanumber", f"data.path={tmp_path / 'no_such_folder'}"], tmp_path)
    with pytest.raises(ValueError, match=r"model\.optimizer\.lr='notanumber': must be a number"):
        train(cfg)
