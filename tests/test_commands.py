"""The command modules as a user starts them (`python -m senti_lit.<cmd>`): a user error is one line, not a
traceback; `--help` and Tab completion import no torch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_a_user_error_is_one_message_not_a_traceback(tmp_path: Path):
    import os

    args = [sys.executable, "-m", "senti_lit.train", "data=csv", f"data.path={tmp_path / 'no_such.csv'}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 1
    assert "error: " in result.stderr and "no_such.csv: no such file or folder" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3
    assert not (tmp_path / "run").exists()  # a run that never started training leaves no folder beside real runs
    full = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1 and "Traceback" in full.stderr


HEAVY = ("torch", "lightning", "transformers", "torchmetrics", "peft")


def test_help_and_tab_completion_import_no_torch():
    """Start-up: `--help` and each Tab of completion compose configs only, so no command module may import torch,
    transformers or Lightning at the top (they cost seconds; `python benchmarks/startup_bench.py` times them)."""
    commands = ["train", "predict", "evaluate", "export", "pretrain", "augment", "annotate", "report", "serve",
                "build_e5"]
    code = (f"import sys\nfor c in {commands}: __import__('senti_lit.' + c)\n"
            f"print(sorted(m for m in {HEAVY} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_each_commands_help_shows_its_own_options():
    """`predict --help` lists predict's options, not the training groups; `train --help` the groups a user picks,
    not the building blocks (data/base, model/family, trainer/model) nor another command's (annotator)."""
    def help_of(command: str) -> str:
        result = subprocess.run([sys.executable, "-m", f"senti_lit.{command}", "--help"], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    predict = help_of("predict")
    assert predict.startswith("python -m senti_lit.predict artifact=") and "\ntop_k: 1\n" in predict
    assert "Config groups" not in predict and "model:" not in predict and "trainer" not in predict
    train = help_of("train")
    groups = train.split("== Config groups (group=option) ==")[1].split("==")[0]
    assert [line.split(":")[0] for line in groups.strip().splitlines()] == [
        "data", "model", "trainer", "callbacks", "logger", "experiment", "hparams_search", "debug"]
    assert "mini_bert" in groups and "\nseed: 42\n" in train and "Powered by Hydra" not in train


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The error line of a failed command, checked to be the only thing it says about the failure."""
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def train_cli(tmp_path: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "senti_lit.train", f"hydra.run.dir={tmp_path / 'run'}",
                           *overrides], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_a_damaged_or_pickled_checkpoint_is_one_line(tmp_path: Path):
    """resume= a truncated checkpoint, or one holding pickled objects (refused: they could run code): one line that
    names the file, no traceback."""
    import torch

    from helpers.compose import TINY_MODEL
    from helpers.data import write_reviews

    data = write_reviews(tmp_path / "data", n_per_label=40)
    damaged = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, damaged)
    damaged.write_bytes(damaged.read_bytes()[:-200])
    line = one_line_error(train_cli(tmp_path, f"resume={damaged}", f"data.path={data}", *TINY_MODEL))
    assert f"{damaged} is damaged" in line
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "payload": Path("/")}, pickled)  # a pickled object, in a valid archive
    line = one_line_error(train_cli(tmp_path, f"resume={pickled}", f"data.path={data}", *TINY_MODEL,
                                    "trainer.max_epochs=1", "model.mlm_warmup.epochs=0"))
    assert f"{pickled}: this checkpoint holds pickled Python objects" in line


@pytest.mark.slow
def test_an_empty_model_folder_fails_before_the_data_in_one_line(tmp_path: Path):
    import time

    empty = tmp_path / "empty_model"
    empty.mkdir()
    start = time.monotonic()
    line = one_line_error(train_cli(tmp_path, f"model.backbone.path={empty}"))
    assert f"model.backbone.path={empty}: this folder holds no config.json (it is empty)" in line
    assert time.monotonic() - start < 60  # before the data (the default data alone takes longer to read and encode)


@pytest.mark.slow
def test_each_failed_sweep_job_is_one_line(tmp_path: Path):
    args = ["-m", "data=csv", f"data.path={tmp_path / 'missing.csv'}", "seed=1,2",
            f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = subprocess.run([sys.executable, "-m", "senti_lit.train", *args], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    failed = [line for line in (result.stdout + result.stderr).splitlines() if "job failed: " in line]
    assert len(failed) == 2 and all("missing.csv" in line for line in failed), result.stdout[-2000:]
    assert "2 of 2 jobs failed" in result.stderr


def test_a_file_system_error_names_its_file_and_the_fix():
    from senti_lit.core.runtime import user_error_text

    error = PermissionError(13, "Permission denied", "/data/reviews.csv")
    assert user_error_text(error) == ("/data/reviews.csv: permission denied; check the permissions of it (and of its "
                                      "folder), or choose another path")
    assert user_error_text(ValueError("plain")) == "plain"


@pytest.mark.parametrize("argv,expected", [
    (["trainer.max_epoch=1"], "trainer.max_epoch: no such setting; did you mean `trainer.max_epochs`?"),
    (["model=bert_lorra"], "model=bert_lorra: no such option; did you mean `model=bert_lora`?"),
    (["-m", "seed=1,2", "model.optimizer.lrr=1e-3"], "did you mean `model.optimizer.lr`?"),
])
def test_a_typo_is_one_line_with_a_did_you_mean(argv: list[str], expected: str, tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "senti_lit.train", *argv], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    assert expected in result.stderr and not list(tmp_path.iterdir())  # no run folder for a failed start


def test_trainer_arguments_and_label_aliases_need_no_plus():
    """Any `lightning.Trainer` argument as `trainer.<arg>=…`, and label aliases in the documented form, compose."""
    from senti_lit.core.command_line import check_command_line, trainer_arguments
    from senti_lit.core.config import compose_config

    assert {"fast_dev_run", "limit_val_batches", "max_steps", "val_check_interval"} <= set(trainer_arguments())
    argv = check_command_line("train", ["trainer.fast_dev_run=true", "trainer.limit_val_batches=5",
                                        "data=csv", "data.aliases={0:negative,1:positive}", "data.aliases.2=neutral",
                                        "seed=3"])
    assert argv[:2] == ["++trainer.fast_dev_run=true", "++trainer.limit_val_batches=5"] and argv[-1] == "seed=3"
    cfg = compose_config("train", argv)
    assert cfg.trainer.fast_dev_run is True and cfg.trainer.limit_val_batches == 5
    # the data module reads the keys as text, as labels are read from files
    assert {str(k): v for k, v in cfg.data.aliases.items()} == {"0": "negative", "1": "positive", "2": "neutral"}


def test_a_missing_data_file_or_column_is_found_before_lightning_is_imported(tmp_path: Path):
    """The cheap data checks run first: the error comes without `import lightning` (the seconds a data error
    used to cost)."""
    rows = tmp_path / "rows.csv"
    rows.write_text("review,label\n好,1\n", encoding="utf-8")
    htl = tmp_path / "chnsenticorp"
    htl.mkdir()
    (htl / "ChnSentiCorp_htl_all.csv").write_text("label,review\n1,很干净\n0,太吵了\n2,还行\n1,不错\n",
                                                  encoding="utf-8")
    code = f"""
import sys
from senti_lit.core.config import compose_config
from senti_lit.core.errors import DataError
from senti_lit.data.precheck import check_data_source
for path, column, expected in [({str(tmp_path / 'missing.csv')!r}, "text", "missing.csv"),
                               ({str(rows)!r}, "text", "text")]:
    cfg = compose_config("train", ["data=csv", "data.path=" + path, "data.source.text_column=" + column])
    try:
        check_data_source(cfg.data)
    except DataError as e:
        assert expected in str(e), e
    else:
        raise SystemExit("no error for " + path)
check_data_source(compose_config("train", ["data=csv", "data.path={rows}", "data.source.text_column=review"]).data)
# a named binary dataset whose label column holds a third value: the row, before any heavy import
try:
    check_data_source(compose_config("train", ["data=chnsenticorp", "data.path={htl}"]).data)
except DataError as e:
    assert str(e).startswith("{htl / 'ChnSentiCorp_htl_all.csv'}:4: unknown label '2'"), e
else:
    raise SystemExit("no error for the label 2")
assert "lightning" not in sys.modules and "torch" not in sys.modules, "heavy imports before the data check"
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
