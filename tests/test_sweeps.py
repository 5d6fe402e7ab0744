"""Sweeps: a failing job does not end a multirun, the sweep report, Optuna with a resumable sqlite study, and the
parallel and SLURM launchers."""
from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from helpers.compose import TINY_MODEL
from senti_lit.core.config import CONFIG_DIR
from senti_lit.inference.predictor import Predictor


def run_cli(tmp_path: Path, *args: str, module: str = "senti_lit.train") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)


def sweep_dir(logs: Path) -> Path:
    sweeps = list((logs / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1
    return sweeps[0]


@pytest.mark.slow  # a multirun in a subprocess
def test_failed_job_is_reported_and_the_sweep_goes_on(reviews_dir: Path, tmp_path: Path):
    logs = tmp_path / "logs"
    result = run_cli(tmp_path, "-m", "seed=1,2", "model.optimizer.weight_decay=0.01,-1", f"data.path={reviews_dir}",
                     *TINY_MODEL, "debug=fdr", f"paths.log_dir={logs}", f"paths.cache_dir={tmp_path / 'cache'}")
    # every job ran and the report is written, and the command says that two failed
    assert result.returncode == 1, result.stderr[-3000:]
    assert "2 of 4 jobs failed: job" in result.stderr and "Invalid weight_decay" in result.stderr
    assert "Warning" not in result.stderr + result.stdout
    sweep = sweep_dir(logs)
    assert (sweep / "report.md").is_file()
    with (sweep / "jobs.csv").open() as f:
        jobs = list(csv.DictReader(f))
    assert sorted(j["status"] for j in jobs) == ["failed", "failed", "ok", "ok"]
    assert all("Invalid weight_decay" in j["error"] for j in jobs if j["status"] == "failed")
    with (sweep / "configurations.csv").open() as f:
        groups = {g["configuration"]: g for g in csv.DictReader(f)}
    assert {k: (g["jobs"], g["ok"]) for k, g in groups.items()} == {
        "model.optimizer.weight_decay=0.01": ("2", "2"), "model.optimizer.weight_decay=-1": ("2", "0")}
    # the configuration's mean ± std is over what its two jobs wrote to their metrics.json
    written = [json.loads((sweep / j["job"] / "metrics.json").read_text())["test/acc"] for j in jobs
               if j["status"] == "ok"]
    assert len(written) == 2 and not any((sweep / j["job"] / "metrics.json").exists() for j in jobs
                                         if j["status"] == "failed")
    # numbers as numbers: mean and std columns
    assert float(groups["model.optimizer.weight_decay=0.01"]["test/acc"]) == pytest.approx(statistics.mean(written))
    assert float(groups["model.optimizer.weight_decay=0.01"]["test/acc std"]) == pytest.approx(
        statistics.stdev(written))
    report = (sweep / "report.md").read_text()
    assert f"{statistics.mean(written):.4f} ± {statistics.stdev(written):.4f}" in report
    # the report's header: the dataset and the overrides every job shares (hidden from the job rows)
    assert "data: csv" in report or "data: demo" in report
    assert f"shared by every job: data.path={reviews_dir}" in report
    assert "| model.optimizer.weight_decay=0.01 | 2 | 2 |" in (sweep / "report.md").read_text()
    again = run_cli(tmp_path, str(sweep), module="senti_lit.report")  # the same report on demand
    assert again.returncode == 0 and "configurations" in again.stdout


@pytest.mark.slow  # a training subprocess
def test_a_single_run_failure_still_fails_loudly(reviews_dir: Path, tmp_path: Path):
    result = run_cli(tmp_path, f"data.path={reviews_dir}", *TINY_MODEL, "model.optimizer.weight_decay=-1",
                     "debug=fdr", f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}")
    assert result.returncode != 0 and "Invalid weight_decay" in result.stderr


@pytest.mark.slow  # two Optuna multiruns in subprocesses
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.MovedIn20Warning")  # optuna 2 (pinned by the plugin) in this process
def test_optuna_study_persists_and_resumes(reviews_dir: Path, tmp_path: Path):
    args = ["hparams_search=mini_bert_optuna", "hydra.sweeper.n_trials=2", f"data.path={reviews_dir}", *TINY_MODEL,
            "debug=fdr", f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    for _ in range(2):  # the second command continues the same study
        result = run_cli(tmp_path, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    import optuna

    study = optuna.load_study(study_name="train_mini_bert", storage=f"sqlite:///{tmp_path / 'logs' / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    # every trial's value is what its job wrote: the best validation accuracy in its metrics.json
    written = [json.loads(p.read_text())["best/val/acc"]
               for p in (tmp_path / "logs" / "train" / "multiruns").glob("*/*/metrics.json")]
    assert len(written) == 4
    assert sorted(t.value for t in study.trials) == sorted(written)
    assert study.best_value == max(written)


@pytest.mark.slow  # a parallel multirun in a subprocess
def test_parallel_launcher_runs_jobs_and_slurm_composes(reviews_dir: Path, tmp_path: Path):
    logs = tmp_path / "logs"
    result = run_cli(tmp_path, "-m", "hydra/launcher=parallel", "seed=1,2", f"data.path={reviews_dir}", *TINY_MODEL,
                     "debug=fdr", f"paths.log_dir={logs}", f"paths.cache_dir={tmp_path / 'cache'}")
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = sweep_dir(logs)
    with (sweep / "jobs.csv").open() as f:
        jobs = list(csv.DictReader(f))
    assert [j["status"] for j in jobs] == ["ok", "ok"]
    for job in jobs:  # each job's files are written and load: its metrics as reported, its artifact predicts
        metrics = json.loads((sweep / job["job"] / "metrics.json").read_text())
        assert float(job["test/acc"]) == metrics["test/acc"]
        answer = Predictor.load(sweep / job["job"] / "artifact").predict(["很好，推荐"])[0]
        assert answer["label"] in ("negative", "positive")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.gpus_per_node == 1


def test_report_groups_the_folds_of_a_cross_validation_like_seeds():
    from senti_lit.training.sweep_report import group, with_spread

    rows = [{"overrides": f"data=ocemotion data.split.folds=5 data.split.fold={k}", "status": "ok", "best": acc,
             "test/acc": acc} for k, acc in enumerate([0.5, 0.6, 0.7])]
    rows.append({"overrides": "data=ocemotion seed=2", "status": "ok", "best": 0.9, "test/acc": 0.9})
    groups = {g["configuration"]: g for g in group(rows)}
    assert groups["data=ocemotion data.split.folds=5"]["jobs"] == 3
    assert groups["data=ocemotion data.split.folds=5"]["test/acc"] == pytest.approx(0.6)
    assert groups["data=ocemotion data.split.folds=5"]["test/acc std"] == pytest.approx(0.1)
    shown = {g["configuration"]: g for g in with_spread(group(rows))}
    assert shown["data=ocemotion data.split.folds=5"]["test/acc"] == "0.6000 ± 0.1000"
    assert shown["data=ocemotion"]["test/acc"] == 0.9 and "test/acc std" not in shown["data=ocemotion"]
    assert groups["data=ocemotion"]["jobs"] == 1


def test_a_piped_sweep_report_is_readable(tmp_path: Path):
    """No cell cut at 80 columns, no empty column, no "± 0.0000" for a single run, seconds as whole numbers."""
    import io
    import json

    from rich.console import Console

    from senti_lit.training.sweep_report import write_report

    sweep = tmp_path / "sweep"
    long = "model.optimizer.lr=0.0003 model.head.dropout=0.25 data.max_length=256"
    for job, (overrides, acc) in enumerate([(f"seed=1 {long}", 0.81), ("seed=1 model.optimizer.lr=0.001", 0.79)]):
        folder = sweep / str(job)
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides.split()))
        (folder / "metrics.json").write_text(json.dumps({"test/acc": acc, "best/val/acc": acc,
                                                         "time/total_seconds": 24.5}))
    out = io.StringIO()
    write_report(sweep, Console(file=out, width=80))
    text = out.getvalue()
    assert long in text and "…" not in text  # the whole overrides, however wide
    assert "± 0.0000" not in text and "| 0.8100 |" in text
    assert "| 24 |" in text or "| 25 |" in text  # seconds, whole
    assert "error" not in text  # a column empty in every row is left out
