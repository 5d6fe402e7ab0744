"""benchmarks/make_table.py: the BENCHMARKS.md generator on a small results CSV (the benchmarks themselves never
run in the test suite)."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from make_table import COLUMNS, read_results, render, write_markdown  # noqa: E402


def result(batch: str, row: str, seed: int, acc: float | None, wall: float = 60.0) -> dict[str, str]:
    return {"batch": batch, "commit": "abc123", "mode": "full", "row": row, "dataset": "demo", "model": "mini_bert",
            "seed": str(seed), "metrics": json.dumps({"test/acc": acc}), "wall_seconds": str(wall),
            "target": "acc ≥ 0.86", "command": f"python -m senti_lit.train seed={seed} data.x='a|b'"}


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_newest_batch_mean_and_std_over_seeds(tmp_path: Path):
    rows = [result("2026-01-01T00:00:00Z", "demo", 42, 0.50),  # an older batch: not shown
            result("2026-02-01T00:00:00Z", "demo", 42, 0.80, 100), result("2026-02-01T00:00:00Z", "demo", 1, 0.90, 200),
            result("2026-01-15T00:00:00Z", "other", 42, 0.70)]
    table = render(read_results(write(tmp_path / "r.csv", rows)))
    lines = [l for l in table.splitlines() if l.startswith("| demo") or l.startswith("| other")]
    assert len(lines) == 2
    assert "test/acc 0.8500 ± 0.0707" in lines[0] and "| 42,1 |" in lines[0] and "| 150 |" in lines[0]
    assert "a\\|b" in lines[0]  # a pipe in a command does not break the table
    assert "test/acc 0.7000 |" in lines[1]  # one seed: no std


def test_failed_jobs_and_notes(tmp_path: Path):
    rows = [result("b1", "demo", 42, None), result("b1", "demo", 1, 0.9)]
    (tmp_path / "NOTES.md").write_text("## Notes\nnot met: X\n", encoding="utf-8")
    (tmp_path / "predict_results.md").write_text("| predictor | texts/s |\n", encoding="utf-8")
    write_markdown(write(tmp_path / "r.csv", rows), tmp_path / "B.md", tmp_path / "NOTES.md", tmp_path)
    text = (tmp_path / "B.md").read_text(encoding="utf-8")
    assert "## Batch prediction vs transformers.pipeline\n\n| predictor | texts/s |" in text
    assert "Training speed" not in text  # sections without a results file are left out
    assert "| 42,1 (1 failed) |" in text and "test/acc 0.9000 |" in text  # the failed seed is not averaged in
    assert text.rstrip().endswith("not met: X")


def test_a_results_file_without_the_columns_is_refused(tmp_path: Path):
    (tmp_path / "bad.csv").write_text("row,acc\ndemo,0.9\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.csv: columns .*'batch'.* missing"):
        read_results(tmp_path / "bad.csv")


def test_full_and_quick_runs_of_a_row_are_both_shown_full_first(tmp_path: Path):
    quick = {**result("2026-03-01T00:00:00Z", "demo", 42, 0.70), "mode": "quick"}
    rows = [result("2026-01-01T00:00:00Z", "other", 42, 0.60), quick, result("2026-02-01T00:00:00Z", "demo", 42, 0.80),
            {**result("2026-01-01T00:00:00Z", "demo", 42, 0.10), "mode": "quick"}]  # older quick batch: hidden
    lines = [l for l in render(read_results(write(tmp_path / "r.csv", rows))).splitlines() if l.startswith("| ")][1:]
    assert [(l.split(" | ")[0], l.split(" | ")[3]) for l in lines] == [("| other", "full"), ("| demo", "full"),
                                                                       ("| demo", "quick")]
    assert "test/acc 0.8000" in lines[1] and "test/acc 0.7000" in lines[2]


def test_a_duration_the_seeds_share_is_shown_in_seconds_without_std(tmp_path: Path):
    rows = [{**result("b1", "htl", seed, acc), "metrics": json.dumps({"test/acc": acc, "pretrain_seconds": 585.3})}
            for seed, acc in [(42, 0.8), (1, 0.9)]]
    line = next(l for l in render(read_results(write(tmp_path / "r.csv", rows))).splitlines() if l.startswith("| htl"))
    assert "test/acc 0.8500 ± 0.0707; pretrain_seconds 585 |" in line
