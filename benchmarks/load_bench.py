"""Steady under load (issue 38): a small fit with the default thread setting (`threads=auto`) against fixed thread
counts, on an idle machine and with busy-loop processes keeping every core busy (started by this script, bounded in
time, stopped at the end).

    python benchmarks/load_bench.py [--busy 2] [--repeats 1]

The fit: `python -m senti_lit.train data.limit_train=1000 trainer.max_epochs=1 model.mlm_warmup.epochs=0` (the
default data and model); the metric is its `time/fit_seconds` (metrics.json: the fit alone, not the start-up).
Target: under load, the default at most 1.5x the best setting's seconds; idle, the default as fast as the best.
Each condition is one record of the store (benchmarks/store.py), with the load average; BENCHMARKS.md is regenerated.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from make_table import write_markdown
from store import git_commit, median, record

ROOT = Path(__file__).resolve().parents[1]
FIT = ["data.limit_train=1000", "trainer.max_epochs=1", "model.mlm_warmup.epochs=0"]
SETTINGS = {"default (threads=auto)": [], "threads=1": ["threads=1"], "threads=2": ["threads=2"]}
BUSY_SECONDS = 1800  # a busy loop's longest life, should this script die without stopping it


def busy_loops(n: int) -> list[subprocess.Popen]:
    """`n` pure-Python loops, each keeping a core busy (as other users' jobs do on a shared machine)."""
    code = f"import time\nend = time.time() + {BUSY_SECONDS}\nwhile time.time() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def fit_seconds(extra: list[str], work: Path) -> float:
    run = work / f"run{len(list(work.glob('run*')))}"
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # auto decides, not the shell
    done = subprocess.run([sys.executable, "-m", "senti_lit.train", *FIT, *extra, f"hydra.run.dir={run}",
                           f"paths.cache_dir={work / 'cache'}"], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the fit failed: {done.stderr[-2000:]}")
    return json.loads((run / "metrics.json").read_text())["time/fit_seconds"]


def measure(repeats: int, work: Path) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(repeats):
        for name, extra in SETTINGS.items():  # alternating: a drift in load hits every setting alike
            times[name].append(fit_seconds(extra, work))
            print(f"  {name}: {times[name][-1]} s", flush=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy-loop processes under load")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="senti_lit_load_bench_"))
    fit_seconds([], work)  # the data cache, so that no timed run tokenizes
    results = {}
    for condition, n in (("idle", 0), (f"{args.busy} busy loops", args.busy)):
        loops = busy_loops(n)
        try:
            print(condition, flush=True)
            results[condition] = (measure(args.repeats, work), os.getloadavg()[0])
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()
    caption = (f"Steady under load: seconds of a small fit (python -m senti_lit.train {' '.join(FIT)}: time/fit_"
               f"seconds) by thread setting, idle and with busy loops on every core ({os.cpu_count()} cores); "
               "goal: the default within 1.5x of the best setting")
    command = "python benchmarks/load_bench.py" + (f" --busy {args.busy}" if args.busy != (os.cpu_count() or 2)
                                                   else "") + (f" --repeats {args.repeats}" if args.repeats > 1
                                                               else "")
    commit = git_commit()
    for condition, (times, load) in results.items():
        best = min(median(v)["median"] for v in times.values())
        metrics = {name: median(v) for name, v in times.items()}
        metrics["default / best"] = round(median(times["default (threads=auto)"])["median"] / best, 2)
        print(record("threads", condition, command, metrics, caption, goals={"default / best": "<= 1.5"},
                     note=f"load average {load:.1f} at the end", commit=commit))
    write_markdown()


if __name__ == "__main__":
    main()
