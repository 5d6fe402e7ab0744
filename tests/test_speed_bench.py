"""benchmarks/speed_bench.py: its job selection and the records it stores (the timed jobs themselves never run in the
tests)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from hydra import compose, initialize_config_dir  # noqa: E402

from make_table import cell  # noqa: E402
from senti_lit.core.config import CONFIG_DIR  # noqa: E402
from speed_bench import (  # noqa: E402
    GAP,
    JOBS,
    SENTI_JOBS,
    SPEED,
    VS_BEST,
    VS_DEFAULT,
    job_list,
    job_overrides,
    median_run,
    positive,
    records,
)


def test_jobs_subset_keeps_the_canonical_order_and_refuses_what_the_ratios_lack():
    assert job_list("senti_lit, trainer_best_fp32,trainer_default") == ["trainer_default", "trainer_best_fp32",
                                                                      "senti_lit"]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown job"):
        job_list("trainer_default,senti_lit,trainer_best,senti_lit -typo")
    with pytest.raises(argparse.ArgumentTypeError, match="needs senti_lit and trainer_best"):
        job_list("trainer_default,senti_lit")
    with pytest.raises(argparse.ArgumentTypeError, match="needs senti_lit"):
        job_list("trainer_default,trainer_best")


def settings(jobs: dict, **kw) -> argparse.Namespace:
    """speed_bench's parsed arguments for these jobs (`kw` overrides)."""
    return argparse.Namespace(**{"model": "e5", "device": "cpu", "epochs": 3, "max_length": 128, "batch_size": 32, "lr": 5e-5,
                                 "limit_train": 1200, "jobs": list(jobs), "repeat": 1} | kw)


def by_id(jobs: dict, args: argparse.Namespace) -> dict[str, dict]:
    return {r["id"]: r for r in records(args, jobs)}


def test_records_ratios_and_accuracy_gap_against_the_trainers_best():
    def job(speed: float, acc: float, command: str) -> dict:
        return {"samples_per_s": speed, "test/acc": acc, "test/macro_f1": acc - 0.01, "command": command}

    jobs = {"trainer_default": job(5.0, 0.880, "python benchmarks/trainer_baseline.py --padding max_length"),
            "trainer_best_fp32": job(8.0, 0.890, "python benchmarks/trainer_baseline.py --padding dynamic"),
            "senti_lit": job(10.0, 0.893, "python -m senti_lit.train data.limit_train=1200 x=1")}
    recs = by_id(jobs, settings(jobs))
    senti = recs["senti_lit"]
    assert senti["command"].endswith("--jobs trainer_default,trainer_best_fp32,senti_lit") and list(jobs) != JOBS
    assert senti["metrics"][VS_DEFAULT] == 2.00 and senti["metrics"][VS_BEST] == 1.25  # × run_classification, × best
    assert senti["metrics"][GAP] == 0.3  # within ±0.5 point: equal accuracy
    assert recs["trainer_default"]["metrics"][GAP] == -1.0
    assert senti["runs"] == {"senti_lit": "python -m senti_lit.train data.limit_train=1200 x=1"}
    assert set(senti["goals"]) == {VS_DEFAULT, VS_BEST, GAP} and recs["trainer_default"]["goals"] is None
    assert {r["kind"] for r in recs.values()} == {"train_speed"} and len({r["caption"] for r in recs.values()}) == 1


def test_caption_says_all_examples_when_no_limit_is_set():
    job = {"samples_per_s": 5.0, "test/acc": 0.8, "test/macro_f1": 0.79, "command": "python x"}
    jobs = {"trainer_default": job, "trainer_best_fp32": job, "senti_lit": job}
    rec = records(settings(jobs, model="mini_bert", epochs=2, limit_train=0), jobs)[0]
    assert "mini_bert, all training examples, 2 epoch(s)" in rec["caption"] and "--limit-train" not in rec["command"]


@pytest.mark.parametrize("name", sorted(SENTI_JOBS))
def test_senti_lit_jobs_save_no_checkpoint_like_the_trainer_except_the_ckpt_ablation(name: str):
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["callbacks=none", *job_overrides(name)])
    # the Trainer runs with save_strategy="no"; Lightning checkpoints every epoch unless told not to
    assert cfg.trainer.get("enable_checkpointing", True) is (name == "senti_lit +ckpt")


def test_without_trainer_default_the_run_classification_ratio_is_null():
    jobs = {name: {"samples_per_s": speed, "test/acc": 0.9, "test/macro_f1": 0.88, "command": "python x"}
            for name, speed in (("trainer_best_fp32", 8.0), ("senti_lit", 9.0))}
    jobs["senti_lit +ckpt"] = {**jobs["senti_lit"], "samples_per_s": 8.4}
    assert list(jobs) == job_list("senti_lit +ckpt,trainer_best_fp32,senti_lit")
    senti = by_id(jobs, settings(jobs))["senti_lit"]
    assert senti["metrics"][VS_DEFAULT] is None and senti["metrics"][VS_BEST] == 1.12
    assert VS_DEFAULT not in senti["goals"]  # no goal on a ratio that was not measured
    # a job name with a space is quoted, so the stored command can be pasted into a shell
    assert "--jobs 'trainer_best_fp32,senti_lit,senti_lit +ckpt'" in senti["command"]


def test_repeated_jobs_report_their_median_run_and_every_run():
    def run(speed: float, acc: float) -> dict:
        return {"samples_per_s": speed, "test/acc": acc, "test/macro_f1": acc, "command": "python x"}

    jobs = {"trainer_best_fp32": median_run([run(600.0, 0.70), run(640.0, 0.70), run(580.0, 0.70)]),
            "senti_lit": median_run([run(700.0, 0.72), run(760.0, 0.73), run(720.0, 0.71), run(900.0, 0.72)])}
    assert jobs["trainer_best_fp32"]["samples_per_s"] == 600.0 and jobs["trainer_best_fp32"]["runs"] == [600, 640, 580]
    assert jobs["senti_lit"]["samples_per_s"] == 720.0 and jobs["senti_lit"]["test/acc"] == 0.71  # that run's acc
    senti = by_id(jobs, settings(jobs, model="mini_bert", epochs=2, limit_train=0, repeat=4))["senti_lit"]
    assert cell(senti["metrics"][SPEED]) == "720.0 (median of 700.0, 760.0, 720.0, 900.0)"
    assert senti["metrics"][VS_BEST] == 1.20 and senti["command"].endswith("--repeat 4")
    assert positive("3") == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="whole number >= 1"):
            positive(bad)
