"""resume=auto: a run killed with SIGKILL mid-epoch, re-run with the same command, ends with the metrics of an
uninterrupted run; checkpoints are written atomically, last.ckpt links to the best one instead of copying it, and a
damaged one is refused by name."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from helpers.compose import TINY_MODEL, compose_train
from senti_lit.core.config import resume_run_dir
from senti_lit.train import train
from senti_lit.training.resume import AtomicCheckpointIO, resume_checkpoint

TESTS = Path(__file__).parent  # on the subprocess's path: its callback is helpers.kill_once.KillOnce


def run_train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "senti_lit.train", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.mark.slow  # four training subprocesses, one SIGKILLed: ~110 s
def test_sigkill_mid_epoch_then_same_command_resumes_to_the_same_metrics(reviews_dir: Path, tmp_path: Path):
    # 240 train examples / 16 = 15 steps per epoch; the kill lands in epoch 2 (step 20), after epoch 1's last.ckpt
    def command(logs: Path, marker: Path) -> list[str]:
        return [f"data.path={reviews_dir}", *TINY_MODEL, "trainer.max_epochs=3", "model.mlm_warmup.epochs=0",
                "callbacks.early_stopping=null",
                "callbacks.rich_progress_bar=null", f"paths.cache_dir={tmp_path / 'cache'}",
                f"paths.log_dir={logs}", "resume=auto", "logger=many",
                "+callbacks.kill._target_=helpers.kill_once.KillOnce", "+callbacks.kill.step=20",
                f"+callbacks.kill.marker={marker}"]

    reference_marker = tmp_path / "reference.marker"
    reference_marker.write_text("never kill the reference run\n")
    reference = run_train(command(tmp_path / "reference", reference_marker), tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]

    interrupted = command(tmp_path / "logs", tmp_path / "kill.marker")
    killed = run_train(interrupted, tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    [run] = (tmp_path / "logs" / "train" / "runs").iterdir()
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "metrics.json").exists()

    resumed = run_train(interrupted, tmp_path)  # the very same command
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Warning" not in resumed.stderr + resumed.stdout
    assert [p.name for p in (tmp_path / "logs" / "train" / "runs").iterdir()] == [run.name]  # same directory
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["resumed_from"] == str(run / "checkpoints" / "last.ckpt")
    [expected_dir] = (tmp_path / "reference" / "train" / "runs").iterdir()
    expected = json.loads((expected_dir / "metrics.json").read_text())
    # the reference learned the fixture (3 epochs: test/acc 0.90 at seed 42, 0.90-0.97 over seeds 1-5, bf16 or
    # fp32; 0.43-0.57 with the labels shuffled or lr=0), so equal metrics mean a resumed run that learned too
    assert expected["test/acc"] >= 0.8, expected
    for key in [k for k in expected if k.startswith(("test/", "best/"))]:
        assert summary[key] == expected[key], key
    # one TensorBoard folder continued; the CSV log of the first part kept beside the new one
    [board] = (run / "tensorboard").iterdir()  # named by the overrides, which resume= does not change
    assert board.name.startswith("fit,") and "resume" not in board.name
    assert sorted(p.name for p in (run / "csv").iterdir()) == ["fit", "fit-part1"]

    again = run_train(interrupted, tmp_path)  # finished: a new run, since only unfinished runs are continued
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list((tmp_path / "logs" / "train" / "runs").iterdir())) == 2


def test_atomic_checkpoint_keeps_the_previous_file_when_a_write_dies(tmp_path: Path, monkeypatch):
    target = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, target)

    def dies_half_way(obj, f, *args, **kwargs):  # noqa: ARG001
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # the process is stopped in the middle of the write

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True)["step"] == 1  # the complete previous checkpoint
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]  # the temporary file is gone
    assert resume_checkpoint("auto", tmp_path) == target


def test_damaged_checkpoint_is_refused_by_name(tmp_path: Path):
    target = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.ones(1000)}, target)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"last\.ckpt is damaged.*delete it"):  # a user error: one line
        resume_checkpoint("auto", tmp_path)
    assert resume_checkpoint(None, tmp_path) is None
    assert resume_checkpoint("auto", tmp_path / "elsewhere") is None
    with pytest.raises(FileNotFoundError, match="resume=.*no such checkpoint"):
        resume_checkpoint(str(tmp_path / "missing.ckpt"), tmp_path)


def test_resume_auto_picks_the_newest_unfinished_run_of_the_same_overrides(tmp_path: Path):
    def make_run(name: str, overrides: list[str], last: bool = True, finished: bool = False, mtime: int = 0) -> Path:
        run = tmp_path / name
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        if last:
            (run / "checkpoints").mkdir()
            (run / "checkpoints" / "last.ckpt").write_bytes(b"")
            os.utime(run / "checkpoints" / "last.ckpt", (mtime, mtime))
        if finished:
            (run / "metrics.json").write_text("{}")
        return run

    make_run("old", ["seed=1", "resume=auto"], mtime=100)
    newest = make_run("newer", ["resume=auto", "seed=1"], mtime=200)
    make_run("finished", ["seed=1", "resume=auto"], finished=True, mtime=300)
    make_run("no_checkpoint", ["seed=1", "resume=auto"], last=False)
    make_run("other", ["seed=2", "resume=auto"], mtime=400)
    root = OmegaConf.create({"resume": "auto", "hydra": {"overrides": {"task": ["seed=1", "resume=auto"]}}})
    assert resume_run_dir(str(tmp_path), "fresh", _root_=root) == str(newest)
    root.hydra.overrides.task = ["seed=1"]  # `resume=` is not part of what a run is
    root.resume = None
    assert resume_run_dir(str(tmp_path), "fresh", _root_=root) == f"{tmp_path}/fresh"  # resume off: always fresh
    root.resume = "auto"
    root.hydra.overrides.task = ["seed=3", "resume=auto"]
    assert resume_run_dir(str(tmp_path), "fresh", _root_=root) == f"{tmp_path}/fresh"


def test_resume_auto_keeps_a_finished_job(tmp_path: Path):
    # a sweep re-run with hydra.sweep.dir=<sweep> resume=auto: finished jobs return their metrics untouched
    (tmp_path / "metrics.json").write_text(json.dumps({"test/acc": 0.75, "best/val/acc": 0.8}))
    cfg = compose_train(["resume=auto", "data.path=/nonexistent"], tmp_path)  # would fail if it read any data
    assert train(cfg) == {"test/acc": 0.75, "best/val/acc": 0.8}


def test_last_checkpoint_is_no_second_copy_of_the_best(tmp_path: Path, reviews_dir: Path):
    """A 1-epoch run: its best checkpoint is its last; last.ckpt links to it instead of repeating its weights."""
    import torch

    from helpers.compose import TINY_MODEL, compose_train
    from senti_lit.train import train

    cfg = compose_train([f"data.path={reviews_dir}", *TINY_MODEL, "model.mlm_warmup.epochs=0", "trainer.max_epochs=1",
                         "callbacks.rich_progress_bar=null"], tmp_path / "run")
    summary = train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.is_symlink() and last.resolve() == Path(summary["best_checkpoint"]).resolve()
    assert torch.load(last, weights_only=True)["global_step"] > 0  # a resume reads it like a file
