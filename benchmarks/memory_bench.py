"""Peak memory of the default training job: `python -m senti_lit.train` run as a subprocess, the resident memory
(RSS) of its whole process tree (the job and any DataLoader workers it forks, summed) sampled every 0.1 s.

    python benchmarks/memory_bench.py --mode short                     # model.mlm_warmup.epochs=2 trainer.max_epochs=1
    python benchmarks/memory_bench.py --mode full                      # the default job (`make train`)
    python benchmarks/memory_bench.py --mode short --tree before=@f557db5 --tree after=. --together
    python benchmarks/memory_bench.py --mode e5 --tree before=@63e9766 --tree after=. \
        --variant "low memory=keep_freed_memory=false model.backbone.gradient_checkpointing=true"

--tree LABEL=DIR runs the source tree in DIR (its src/ on PYTHONPATH), so one command measures before and after;
--tree LABEL=@COMMIT unpacks that commit of this repository (`git archive`) into the work folder and runs it (the
stored command then holds no path of this machine); the default is this checkout. --seeds runs each tree at each
seed (the rows then hold the mean and every seed's value). --together starts the trees' jobs at the same time, so that on a shared machine they run under the
same load and their speeds compare as a ratio (they also slow each other down: compare them to each other, not to
another command's). Every job reads and tokenizes the data afresh (a cache folder of its own), as on a fresh clone.

Per job: peak RSS (MB), wall seconds, the MLM warm-up's steps/s (mlm_warmup.json) and fine-tuning's training
samples/s (training examples x epochs / the fit's seconds, validation included). Each job becomes one record of the
results store (benchmarks/store.py) and BENCHMARKS.md is regenerated.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from make_table import write_markdown
from store import git_commit, per_seed, record

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

MODES = {"short": ["model.mlm_warmup.epochs=2", "trainer.max_epochs=1"], "full": [],
         # issue 38's e5_small case: a 200-text, 1-epoch full fine-tune (evaluation cut to 2 batches: memory peaks
         # in training steps)
         "e5": ["model=e5_small", "data.limit_train=200", "trainer.max_epochs=1", "+trainer.limit_val_batches=2",
                "+trainer.limit_test_batches=2"]}
E5_GOAL_MB = 3072  # the target for an e5_small full fine-tune: under 3 GB
GOAL_MB = 1536  # the target for the default job: under 1.5 GB peak RSS


def tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """Summed RSS of a process and its descendants, and how many processes that is."""
    procs = [proc, *proc.children(recursive=True)]
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # ended between listing and reading
            pass
    return total, len(procs)


def run_job(tree: Path, overrides: list[str], work: Path, interval: float = 0.1) -> dict:
    """One training job in a fresh process; its peak RSS (process tree), wall time and speeds."""
    run_dir = work / "run"
    command = [sys.executable, "-m", "senti_lit.train", *overrides, f"hydra.run.dir={run_dir}",
               f"paths.cache_dir={work / 'cache'}"]
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    start = time.perf_counter()
    with open(work / "log.txt", "wb") as log:
        child = subprocess.Popen(command, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
        proc = psutil.Process(child.pid)
        peak, most = 0, 1
        while child.poll() is None:
            try:
                rss, n = tree_rss(proc)
            except psutil.Error:
                break
            peak, most = max(peak, rss), max(most, n)
            time.sleep(interval)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed (rc {child.returncode}); see {work / 'log.txt'}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    data = json.loads((run_dir / "data.json").read_text())
    cfg_epochs = [a for a in overrides if a.startswith("trainer.max_epochs=")]
    epochs = int(cfg_epochs[-1].split("=")[1]) if cfg_epochs else 3  # trainer/model/mini_bert.yaml
    train_examples = data["splits"]["train"]["size"]
    mlm = json.loads((run_dir / "mlm_warmup.json").read_text()) if (run_dir / "mlm_warmup.json").is_file() else {}
    return {"peak RSS (MB)": round(peak / 2**20), "processes": most, "wall seconds": round(wall, 1),
            "MLM steps/s": round(mlm["steps"] / mlm["seconds"], 3) if mlm.get("seconds") else None,
            "fine-tune samples/s": round(train_examples * epochs / metrics["time/fit_seconds"], 1),
            "test/acc": round(metrics["test/acc"], 4)}


def unpack(commit: str, work: Path) -> Path:
    """This repository's `commit` as a source tree in `work` (git archive: the tracked files only)."""
    target = work / f"tree_{commit}"
    if not (target / "src").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def tree_commit(tree: Path) -> str:
    return git_commit(tree) if (tree / ".git").exists() else tree.name.rsplit("_", 1)[-1]


def combine(runs: list[dict], seeds: list[int] | None) -> dict:
    """One job's metrics, or with seeds each metric's mean ± std over them (peak RSS: the largest)."""
    if not seeds:
        return runs[0]
    out = {k: per_seed({str(s): r[k] for s, r in zip(seeds, runs)}) for k in runs[0] if k != "peak RSS (MB)"}
    return {"peak RSS (MB)": max(r["peak RSS (MB)"] for r in runs), **out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=sorted(MODES), default="short")
    parser.add_argument("--tree", action="append", default=[],
                        help="LABEL=DIR: a source tree to run (default: this checkout, labelled by its commit)")
    parser.add_argument("--together", action="store_true", help="run the trees' jobs at the same time")
    parser.add_argument("--work", default=None)
    parser.add_argument("--note", default=None, help="a remark stored with the rows (e.g. the machine's load)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="run each tree at each of these seeds")
    parser.add_argument("--variant", action="append", default=[],
                        help="LABEL=OVERRIDES: also run this checkout with these space-separated overrides")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="senti_lit_memory_bench_"))
    specs = dict(t.split("=", 1) for t in args.tree) or {git_commit(): str(ROOT)}
    trees = {label: unpack(d[1:], work) if d.startswith("@") else Path(d).resolve() for label, d in specs.items()}
    variants = dict(v.split("=", 1) for v in args.variant)
    extra = {label: shlex.split(v) for label, v in variants.items()}
    trees.update({label: ROOT for label in variants})
    overrides = MODES[args.mode]
    results: dict[str, dict] = {}
    loads: list[float] = []

    def one(label: str) -> None:
        per_seed = []
        for seed in args.seeds or [None]:
            folder = work / label / f"seed{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            per_seed.append(run_job(trees[label], [*overrides, *extra.get(label, []),
                                                   *([f"seed={seed}"] if seed is not None else [])], folder))
            loads.append(os.getloadavg()[0])
            print(f"{label} seed {seed}: {per_seed[-1]}", flush=True)
        results[label] = combine(per_seed, args.seeds)

    if args.together:
        threads = [threading.Thread(target=one, args=(label,)) for label in trees]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for label in trees:
            one(label)
    if len(results) < len(trees):
        raise SystemExit("a job failed")
    train_cmd = shlex.join(["python", "-m", "senti_lit.train", *overrides])
    caption = (f"Peak RSS of the default job's process tree ({train_cmd}), sampled every 0.1 s; fresh data cache; "
               f"{os.cpu_count()} CPU cores" + (", the trees' jobs run at the same time (same load)"
                                                 if args.together and len(trees) > 1 else ""))
    command = shlex.join(["python", "benchmarks/memory_bench.py", "--mode", args.mode,
                          *[f"--tree={label}={'.' if trees[label] == ROOT else d}" for label, d in specs.items()
                            if args.tree], *(["--together"] if args.together else []),
                          *(["--seeds", *map(str, args.seeds)] if args.seeds else []),
                          *[f"--variant={label}={v}" for label, v in variants.items()]])
    note = "; ".join(filter(None, [args.note, f"load average {min(loads):.1f}-{max(loads):.1f} after the jobs"]))
    goals = {"peak RSS (MB)": f"<= {GOAL_MB}"} if args.mode == "full" else None
    if args.mode == "e5":
        goals = {"peak RSS (MB)": f"<= {E5_GOAL_MB}"}
        caption = caption.replace("the default job's", "an e5_small full fine-tune's")
    if args.mode == "full" and args.seeds:  # issue 38: the default job in 5 minutes at no loss of accuracy
        goals = {**goals, "wall seconds": "<= 300", "test/acc": ">= 0.86"}
    for label, metrics in results.items():
        fields = {"mode": args.mode, "tree": label, **({"overrides": variants[label]} if label in variants else {})}
        record("memory", label, command, metrics, caption, fields=fields,
               goals=goals, note=note, commit=git_commit() if trees[label] == ROOT else
               (specs[label][1:] if specs[label].startswith("@") else tree_commit(trees[label])))
    write_markdown()


if __name__ == "__main__":
    main()
