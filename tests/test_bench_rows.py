"""benchmarks/bench.py: every row's commands compose with the current conf/ tree (a typo in a row's override
otherwise shows up only when a full benchmark reaches it, possibly an hour in)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench import ROWS, pretrain_args, repeats, train_args  # noqa: E402
from senti_lit.core.config import CONFIG_DIR  # noqa: E402

DATA, E5, PRETRAINED = Path("/bench/data"), Path("/bench/e5"), Path("/bench/pretrained")
TEACHER = Path("/bench/teacher/artifact")


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
            cfg = compose("train", overrides=train_args(row, mode, DATA, E5, PRETRAINED, seed, fold, TEACHER))
            assert cfg.seed == seed
            if any(a.startswith("data.path=") for a in row.args):
                assert cfg.data.path.startswith(str(DATA))
            if row.folds:
                assert cfg.data.split.folds == row.folds and f"data.split.fold={cfg.data.split.fold}" in fold
            if any(a.startswith("model=e5_small") for a in row.args):
                assert cfg.model.backbone.path == str(E5)
            if row.pretrain:
                assert cfg.model.backbone.path == str(PRETRAINED)
            if row.teacher:
                assert cfg.distill.teacher == str(TEACHER)
                assert next(r for r in ROWS if r.id == row.teacher).seeds  # names a row
        if row.pretrain:
            compose("pretrain", overrides=pretrain_args(row, mode, DATA))


def test_a_rows_runs_become_one_record_with_every_seed_and_a_failed_one_left_out(tmp_path, monkeypatch):
    """run_row with senti_lit.train faked (seed 1 fails): the record bench.py appends to the store."""
    import json
    import subprocess

    import bench

    def fake_run(command, **kwargs):
        seed = next(a for a in command if a.startswith("seed="))
        run_dir = Path(next(a for a in command if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text(json.dumps({"test/acc": 0.8, "test/macro_f1": 0.7}))
        return subprocess.CompletedProcess(command, 1 if seed == "seed=1" else 0, "", "boom")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)  # the module's: git too, so its commit is given
    monkeypatch.setattr(bench, "git_commit", lambda: "abc1234")
    row = next(r for r in ROWS if r.id == "demo")
    store = tmp_path / "results.jsonl"
    rec = bench.run_row(row, "full", DATA, E5, "2026-01-01T00:00:00Z", tmp_path / "runs", store)
    assert json.loads(store.read_text(encoding="utf-8")) == rec
    assert rec["kind"] == "accuracy" and rec["command"] == "python benchmarks/bench.py --mode full"
    assert rec["commit"] == "abc1234" and rec["id"] == "demo"
    assert rec["metrics"]["test/acc"]["per_seed"] == {"42": 0.8, "1": None, "2": 0.8}
    assert rec["metrics"]["test/acc"]["mean"] == 0.8 and rec["fields"]["seeds"] == "42,1,2 (1 failed)"
    assert list(rec["runs"]) == ["42", "1", "2"] and "seed=1" in rec["runs"]["1"]
    assert rec["goals"] == bench.GOALS[row.target] and rec["caption"] == bench.CAPTIONS["full"]
    # what else used the cores, and which CPU: a score or a time is read against both
    load = os.getloadavg()[0]
    low, high = (float(x) for x in rec["note"].split(" after its runs")[0].removeprefix("load average ").split("-"))
    assert low <= high and abs(high - load) < 5 and rec["note"].endswith(bench.cpu_name())
    assert bench.cpu_name().startswith(f"{os.cpu_count()} cores of ")


def test_distilled_rows_share_one_pretraining_and_one_teacher_run(tmp_path, monkeypatch):
    """Two rows with the same pretrain recipe and teacher row, run one after the other (as two invocations would):
    the pretraining and the teacher's training run once, the second row reuses both and records their seconds."""
    import json
    import subprocess

    import bench

    calls = []

    def fake_run(command, **kwargs):
        calls.append(command[2])
        run_dir = Path(next(a for a in command if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        if command[2] == "senti_lit.pretrain":
            (run_dir / "pretrained").mkdir(parents=True)
        else:
            (run_dir / "artifact").mkdir(parents=True)
            (run_dir / "artifact" / "artifact.json").write_text("{}")
            (run_dir / "metrics.json").write_text(json.dumps({"test/acc": 0.9, "test/macro_f1": 0.9,
                                                              "teacher/test/acc": 0.92}))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    monkeypatch.setattr(bench, "git_commit", lambda: "abc1234")
    (tmp_path / "data" / "ChnSentiCorp").mkdir(parents=True)
    (tmp_path / "data" / "ChnSentiCorp" / "baidu_chnsenticorp_train.tsv").write_text("好\tpositive\n差\tnegative\n")
    store, runs = tmp_path / "results.jsonl", tmp_path / "runs"
    recs = [bench.run_row(next(r for r in ROWS if r.id == rid), "quick", tmp_path / "data", E5, "t", runs, store)
            for rid in ("htl_distill", "htl_distill_pool")]
    assert calls == ["senti_lit.pretrain", "senti_lit.train", "senti_lit.train", "senti_lit.train"]
    teacher = runs / "teacher-htl_e5_lora_all-quick" / "artifact"
    for rec in recs:
        command = rec["runs"]["42"]
        assert command.count(" && ") == 2 and f"distill.teacher={teacher}" in command
        assert "senti_lit.pretrain" in command and "model=e5_small" in command
        assert rec["metrics"]["teacher/test/acc"]["mean"] == 0.92
        assert "teacher_seconds" in rec["metrics"] and "pretrain_seconds" in rec["metrics"]
    assert (runs / "pool" / "baidu_chnsenticorp_texts.txt").read_text(encoding="utf-8") == "好\n差\n"


def test_stored_commands_name_no_path_of_the_machine_they_ran_on(tmp_path, monkeypatch):
    """bench.py's commands as stored: the checkout's folders relative to the repository root (where the runs start),
    the benchmark data as ../shared/data, e5 as build://e5_small (built first, once): another checkout runs them as
    written (issue 38, item 5: a stored command held model.backbone.path=None)."""
    import bench

    assert bench.portable(bench.ROOT / "logs" / "bench") == Path("logs/bench")
    assert bench.portable(bench.ROOT.parent / "shared" / "data") == Path("../shared/data")
    assert bench.portable(tmp_path / "data") == tmp_path / "data"  # outside the checkout's folder: as given
    calls, built = [], []
    monkeypatch.setattr(bench, "run_row", lambda row, mode, data, e5, batch, runs, *a: calls.append(
        (row.id, data, e5, runs, train_args(row, mode, data, e5, None, 42, []))))
    monkeypatch.setattr(bench, "e5_model", lambda folder: built.append(folder))
    monkeypatch.setattr(bench, "write_markdown", lambda *a: None)
    monkeypatch.chdir(tmp_path)  # restored after the test; bench.main moves to the repository root
    (tmp_path / "data").mkdir()
    monkeypatch.setattr(sys, "argv", ["bench.py", "--rows", "demo_e5_lora_all,demo", "--data", str(tmp_path / "data")])
    bench.main()
    assert built == [None]  # the e5 build, before any row
    (demo_row, *_), (teacher_row, data, e5, runs, args) = calls  # in ROWS' order
    assert (teacher_row, demo_row, runs, e5) == ("demo_e5_lora_all", "demo", Path("logs/bench"), "build://e5_small")
    assert "model.backbone.path=build://e5_small" in args and "model.backbone.path=None" not in args
    assert Path.cwd() == bench.ROOT
