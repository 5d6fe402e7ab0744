"""benchmarks/store.py and make_table.py: the results store and the BENCHMARKS.md generator, on crafted records (the
benchmarks themselves never run in the test suite)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from make_table import cell, load_reasons, render, write_markdown  # noqa: E402
from store import git_commit, load, median, per_seed, record  # noqa: E402


def rec(id: str = "demo", date: str = "2026-01-01T00:00:00Z", acc: float = 0.8, commit: str = "abc1234",
        **extra) -> dict:
    return {"kind": "accuracy", "caption": "Accuracy, full runs", "id": id, "command": "python benchmarks/bench.py",
            "commit": commit, "date": date, "metrics": {"test/acc": per_seed({"42": acc})}, **extra}


def store(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return folder


def row(text: str, id: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {id} |"))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A throwaway git repository with src/ and docs/."""
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "docs").mkdir()
    git(repo, "init", "-q")
    (repo / "src" / "model.py").write_text("x = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    return repo


def test_the_newest_record_of_a_row_is_shown_and_the_older_ones_listed(tmp_path: Path):
    records = [rec(date="2026-01-01T00:00:00Z", acc=0.50, commit="old0001"),
               rec(date="2026-02-01T00:00:00Z", acc=0.90, commit="new0002"),
               rec(id="other", date="2026-01-15T00:00:00Z", acc=0.70)]
    text = render(load(store(tmp_path / "results", records)), tmp_path)
    assert "| 0.9000 |" in row(text, "demo") and "new0002" in row(text, "demo")
    assert "- demo: test/acc 0.5000 at old0001 (2026-01-01)" in text
    assert text.count("### Accuracy, full runs") == 1 and text.index("| demo |") < text.index("| other |")


def test_a_different_command_is_another_table_and_another_row(tmp_path: Path):
    records = [rec(acc=0.5), {**rec(acc=0.6), "command": "python benchmarks/bench.py --mode quick"}]
    text = render(records, tmp_path)
    assert "`python benchmarks/bench.py`" in text and "`python benchmarks/bench.py --mode quick`" in text
    assert "Older records" not in text


def test_seeds_mean_std_failed_runs_medians_and_pipes():
    assert cell(per_seed({"42": 0.8, "1": 0.9, "2": None})) == "0.8500 ± 0.0707"  # a failed seed is left out
    assert cell(per_seed({"42": 490.26, "1": 480.0})) == "485 ± 7"  # seconds: whole
    assert cell(per_seed({"42": None})) == "failed" and cell(None) == "—" and cell(1234567) == "1,234,567"
    assert cell(median([700.0, 760.0, 720.0, 900.0])) == "720.0 (median of 700.0, 760.0, 720.0, 900.0)"
    text = render([rec(fields={"dataset": "a|b"}, runs={"42": "python -m senti_lit.train x='a|b'"})], Path("/"))
    assert "| a\\|b |" in row(text, "demo") and "- demo, 42: `python -m senti_lit.train x='a|b'`" in text


def test_goals_are_checked_against_the_mean():
    met = rec(acc=0.9, goals={"test/acc": ">= 0.86"})
    missed = rec(id="short", acc=0.8593, goals={"test/acc": ">= 0.86", "wall_seconds": "<= 600"},
                 metrics={"test/acc": per_seed({"42": 0.8593}), "wall_seconds": per_seed({"42": 490.0})})
    text = render([met, missed, rec(id="report")], Path("/"))
    assert "| met |" in row(text, "demo") and "**not met**: test/acc >= 0.86 |" in row(text, "short")
    assert row(text, "report").count("|  |") >= 1 and "met" not in row(text, "report")


def test_a_goal_relative_to_another_metric():
    """cecps8_distill's target: the student's macro-F1 within 3 points of its teacher's (both means)."""
    goal = {"test/macro_f1": ">= teacher/test/macro_f1 - 0.03"}
    def distilled(id: str, student: float, teacher: float | None) -> dict:
        metrics = {"test/macro_f1": per_seed({"42": student})}
        if teacher is not None:
            metrics["teacher/test/macro_f1"] = per_seed({"42": teacher})
        return rec(id, goals=goal, metrics=metrics)

    text = render([distilled("close", 0.52, 0.545), distilled("far", 0.51, 0.545), distilled("alone", 0.6, None)],
                  Path("/"))
    assert "| met |" in row(text, "close")
    assert "**not met**: test/macro_f1 >= teacher/test/macro_f1 - 0.03 |" in row(text, "far")
    assert "**not met**" in row(text, "alone")  # no teacher metric: not met, never an error


def test_a_row_whose_code_changed_since_its_commit_is_marked(repo: Path):
    first = git(repo, "rev-parse", "--short", "HEAD")
    (repo / "docs" / "notes.md").write_text("words\n")  # outside src/ and conf/: does not touch results
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "docs")
    docs = git(repo, "rev-parse", "--short", "HEAD")
    text = render([rec("at_first", commit=first), rec("at_docs", commit=docs)], repo)
    assert row(text, "at_first").endswith(f"| {first} | 2026-01-01 |")  # nothing under src/ changed since
    (repo / "src" / "model.py").write_text("x = 2\n")
    git(repo, "commit", "-qam", "code")
    text = render([rec("at_first", commit=first), rec("at_docs", commit=f"{docs}-dirty")], repo)
    assert f"| ⚠ code changed since {first} |" in row(text, "at_first")
    assert f"| ⚠ code changed since {docs}-dirty |" in row(text, "at_docs")


def test_a_row_not_rerun_since_its_code_changed_says_why_or_that_no_reason_is_recorded(repo: Path, tmp_path: Path):
    first = git(repo, "rev-parse", "--short", "HEAD")
    (repo / "src" / "model.py").write_text("x = 2\n")
    git(repo, "commit", "-qam", "code")
    now = git(repo, "rev-parse", "--short", "HEAD")
    records = [rec("slow", commit=first), rec("other", commit=first), rec("fresh", commit=now)]
    reasons = [{"command": "python benchmarks/bench.py", "rows": ["slow"], "why": "3 hours a run"},
               {"command": "python benchmarks/elsewhere.py", "why": "another table"}]
    text = render(records, repo, reasons)
    block = text.split("Not re-run since the code changed:\n\n")[1].split("\n\n")[0].splitlines()
    assert block == ["- slow: 3 hours a run", "- other: no reason recorded (benchmarks/not_rerun.json)"]
    assert "Not re-run" not in render([rec("fresh", commit=now)], repo, reasons)  # nothing stale: no block
    assert "- slow, other: for every row" in render(records, repo, [
        {"command": "python benchmarks/bench.py", "why": "for every row"}])  # no "rows": the whole table
    bad = tmp_path / "not_rerun.json"
    bad.write_text('[{"command": "python benchmarks/bench.py", "because": "x"}]', encoding="utf-8")
    with pytest.raises(ValueError, match=r"not_rerun\.json: entry 0: needs \"command\" and \"why\""):
        load_reasons(bad)


def test_the_real_reasons_name_commands_and_rows_of_the_store():
    records = load(BENCHMARKS / "results")
    commands = {r["command"] for r in records}
    for entry in load_reasons():
        assert entry["command"] in commands, entry["command"]
        ids = {r["id"] for r in records if r["command"] == entry["command"]}
        assert set(entry.get("rows", [])) <= ids, (entry["command"], set(entry["rows"]) - ids)


def test_a_commit_this_clone_does_not_have_is_said_not_a_crash(repo: Path, tmp_path: Path):
    text = render([rec("gone", commit="0123abc"), rec("unknown", commit="unknown")], repo)
    assert "| 0123abc (commit not in this clone) |" in row(text, "gone")
    assert "(commit not in this clone)" in row(text, "unknown")
    no_git = tmp_path / "plain"
    no_git.mkdir()
    assert "(commit not in this clone)" in row(render([rec()], no_git), "demo")


def test_a_malformed_line_is_an_error_naming_file_and_line(tmp_path: Path):
    folder = store(tmp_path / "results", [rec()])
    with (folder / "results.jsonl").open("a", encoding="utf-8") as f:
        f.write("\n{not json\n")
    with pytest.raises(ValueError, match=r"results\.jsonl:3: not JSON"):
        load(folder)
    store(folder, [rec(), {"kind": "accuracy", "id": "x", "colour": "red"}])
    with pytest.raises(ValueError, match=r"results\.jsonl:2: missing keys \['caption', 'command'.*unknown keys "
                                         r"\['colour'\]"):
        load(folder)


def test_record_appends_with_commit_and_date_and_the_page_is_regenerated_identically(tmp_path: Path, repo: Path):
    path = tmp_path / "results" / "results.jsonl"
    record("params", "bert_lora", "python benchmarks/param_shares.py", {"trainable": 296450}, "Parameters",
           store=path)
    (line,) = load(path.parent)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line["date"]) and line["commit"]
    write_markdown(path.parent, tmp_path / "B.md", repo)
    first = (tmp_path / "B.md").read_text(encoding="utf-8")
    write_markdown(path.parent, tmp_path / "B.md", repo)
    assert (tmp_path / "B.md").read_text(encoding="utf-8") == first
    assert first.startswith("# Benchmarks\n\ngenerated by `python benchmarks/make_table.py`")
    assert "## params\n\n### Parameters\n\n`python benchmarks/param_shares.py`" in first


def test_git_commit_says_dirty_when_src_has_uncommitted_changes(repo: Path):
    assert not git_commit(repo).endswith("-dirty")
    (repo / "docs" / "x.md").write_text("y\n")
    assert not git_commit(repo).endswith("-dirty")  # only src/ and conf/ count
    (repo / "src" / "model.py").write_text("x = 3\n")
    assert git_commit(repo).endswith("-dirty")


def test_the_generator_names_no_result_file_and_the_real_store_loads():
    source = (BENCHMARKS / "make_table.py").read_text(encoding="utf-8")
    assert not re.search(r"_results|\.txt|speed_|predict_|param_|NOTES", source)
    kinds = {r["kind"] for r in load(BENCHMARKS / "results")}
    assert {"accuracy", "train_speed", "predict_speed", "data", "params", "cpu_kernels"} <= kinds
