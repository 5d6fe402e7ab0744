"""Training speed: `senti_lit.train` vs a plain `transformers.Trainer` (benchmarks/trainer_baseline.py) on the same
model, texts, max_length, batch size, epochs, learning rate and warm-up, in one command (same machine, same minutes).

    python benchmarks/speed_bench.py --model e5 --limit-train 1500 --epochs 2
    python benchmarks/speed_bench.py --model mini_bert --epochs 2 --repeat 3

Jobs, each a fresh process, one after another:
  trainer_default      the Trainer as run_classification.py runs it: every text padded to max_length, fp32
  trainer_best         the Trainer at its best as the issue defines it: dynamic padding, group_by_length, bf16
  trainer_best_fp32    the same in fp32 (on a CPU without AMX bf16 slows e5_small: there this is the Trainer's best)
  senti_lit            python -m senti_lit.train: its defaults (dynamic padding, length-grouped batches, fused
                       AdamW; its CPU precision: config.auto_precision, by CPU and model size), without
                       checkpoints, as the Trainer runs here (save_strategy="no")
  senti_lit -length    ablation: data.length_grouped=false
  senti_lit -fused     ablation: model.optimizer.fused=false (torch's foreach AdamW)
  senti_lit -keep_mem  ablation: keep_freed_memory=false (glibc returns big freed blocks to the OS)
  senti_lit -fast_dropout  ablation: fast_dropout=false (torch's per-element bernoulli_ dropout masks)
  senti_lit +bf16      ablation: trainer.precision=bf16-mixed
  senti_lit fp32       ablation: trainer.precision=32-true
  senti_lit +ckpt      ablation: Lightning's default checkpoint at every epoch's end (weights + AdamW state)
  senti_lit -rows      ablation: model.embedding_rows=all (e5: the whole 250k-row embedding updated every step)
"× Trainer at its best" divides by the faster of trainer_best and trainer_best_fp32.
samples/s = training examples x epochs / training wall time (the Trainer's train(), senti_lit's fit: validation
is off on both sides so that only training is timed). Test accuracy on the same test split shows the speed is
not bought with accuracy; the last column says whether it is equal accuracy (±0.5 point of the Trainer's best).
Timings on this machine move by several percent from one minute to the next: --repeat N runs every job N times,
in rounds, and the table shows each job's median run (and every run's samples/s).
Each job becomes one record of the results store (benchmarks/store.py; a table per command in BENCHMARKS.md,
regenerated). --jobs runs a subset, e.g. a schedule long enough for the Trainer to converge without the ablations:

    python benchmarks/speed_bench.py --model e5 --limit-train 1200 --epochs 3 \
        --jobs trainer_default,trainer_best_fp32,senti_lit
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from make_table import write_markdown
from store import e5_model, git_commit, record

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

DATA = {"e5": ["data=chnsenticorp", "data.path={data}/ChnSentiCorp/ChnSentiCorp_htl_all.csv"],
        "mini_bert": []}  # mini_bert: the default job's data (demo)
MODEL = {"e5": ["model=e5_small", "model.backbone.path={e5}"], "mini_bert": ["model.mlm_warmup.epochs=0"]}


SENTI_JOBS = {"senti_lit": [], "senti_lit -length": ["data.length_grouped=false"],
              "senti_lit -fused": ["model.optimizer.fused=false"], "senti_lit -keep_mem": ["keep_freed_memory=false"],
              "senti_lit -fast_dropout": ["fast_dropout=false"], "senti_lit +bf16": ["trainer.precision=bf16-mixed"],
              "senti_lit fp32": ["trainer.precision=32-true"], "senti_lit +ckpt": [],
              "senti_lit -rows": ["model.embedding_rows=all"]}
JOBS = ["trainer_default", "trainer_best", "trainer_best_fp32", *SENTI_JOBS]
# the table's columns (metric names in the store)
SPEED, VS_DEFAULT, VS_BEST = "samples/s", "× Trainer (run_classification style)", "× Trainer at its best"
ACC, F1, GAP = "test acc", "test macro-F1", "acc − Trainer's best acc (points; ±0.5 = equal accuracy)"
# the targets for senti_lit: ≥ 1.5x the run_classification-style Trainer, ≥ 1.5x its best (issue 38), equal accuracy
GOALS = {VS_DEFAULT: ">= 1.5", VS_BEST: ">= 1.5", GAP: ">= -0.5"}


def job_overrides(name: str) -> list[str]:
    """A senti_lit job's own overrides. The Trainer saves nothing (save_strategy="no"); neither does senti_lit,
    except in the +ckpt ablation, which shows what a checkpoint (weights + AdamW state) at every epoch costs."""
    return ([] if name == "senti_lit +ckpt" else ["+trainer.enable_checkpointing=false"]) + SENTI_JOBS[name]


def job_list(text: str) -> list[str]:
    """--jobs: a comma-separated subset of JOBS; the ratios need a trainer_best* and senti_lit (without
    trainer_default the run_classification-style column is left blank)."""
    jobs = [j.strip() for j in text.split(",") if j.strip()]
    unknown = [j for j in jobs if j not in JOBS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown job(s) {unknown}; choose from {JOBS}")
    if "senti_lit" not in jobs or not {"trainer_best", "trainer_best_fp32"} & set(jobs):
        raise argparse.ArgumentTypeError("--jobs needs senti_lit and trainer_best or trainer_best_fp32 (the ratios "
                                         "divide by them)")
    return [j for j in JOBS if j in jobs]


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def common(args: argparse.Namespace) -> list[str]:
    """Settings both sides share, as senti_lit overrides."""
    fill = {"data": args.data, "e5": args.e5}
    return ([a.format(**fill) for a in DATA[args.model] + MODEL[args.model]] +
            [f"data.limit_train={args.limit_train}" if args.limit_train else "data.limit_train=null",
             f"data.max_length={args.max_length}", f"data.batch_size={args.batch_size}",
             f"trainer.max_epochs={args.epochs}", f"model.optimizer.lr={args.lr}", "model.optimizer.weight_decay=0.01",
             "model.scheduler.warmup_ratio=0.1"])


def prepare(args: argparse.Namespace, folder: Path) -> tuple[Path, Path, str]:
    """senti_lit's own split, written as train/test CSVs (label = class id) for the Trainer; the model dir the
    Trainer loads (mini_bert: a fresh model from the config, with the tokenizer senti_lit trains on this split)."""
    from senti_lit.core.config import CONFIG_DIR
    from senti_lit.training.steps import data_for_run, model_for_run

    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=common(args))
    datamodule, tokenizer = data_for_run(cfg)
    space = datamodule.label_space
    paths = []
    for name in ("train", "test"):
        path = folder / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows([ex.text, space.id_of(ex.label)] for ex in datamodule.splits[name])
        paths.append(path)
    if args.model == "e5":
        return paths[0], paths[1], str(args.e5)
    # the same architecture as senti_lit's mini_bert, as a transformers sequence classifier
    from transformers import AutoModelForSequenceClassification

    backbone = model_for_run(cfg, datamodule, tokenizer, warmup=False)[1].backbone
    config = type(backbone.config).from_dict({**backbone.config.to_dict(), "num_labels": space.num_labels})
    model_dir = folder / "mini_bert"
    AutoModelForSequenceClassification.from_config(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return paths[0], paths[1], str(model_dir)


def run(command: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done


def trainer_job(args, train: Path, test: Path, model: str, extra: list[str]) -> dict:
    command = [sys.executable, str(HERE / "trainer_baseline.py"), "--train", str(train), "--test", str(test),
               "--model", model, "--epochs", str(args.epochs), "--max-length", str(args.max_length),
               "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--device", args.device, *extra]
    result = json.loads(run(command).stdout.strip().splitlines()[-1])
    result["command"] = "python benchmarks/trainer_baseline.py " + " ".join(command[2:])
    return result


def senti_job(args, folder: Path, name: str, extra: list[str], round_: int = 0) -> dict:
    run_dir = folder / f"{name.replace(' ', '_')}_{round_}"
    gpu = ["trainer=gpu"] if args.device == "cuda" else []
    overrides = [*common(args), *gpu, "callbacks=none", "+trainer.limit_val_batches=0", "calibrate.temperature=false",
                 "calibrate.thresholds=false", "+trainer.enable_progress_bar=false", *extra]
    run([sys.executable, "-m", "senti_lit.train", *overrides, f"hydra.run.dir={run_dir}"])
    summary = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    train_rows = json.loads((run_dir / "data.json").read_text(encoding="utf-8"))["splits"]["train"]["size"]
    return {"samples_per_s": round(train_rows * args.epochs / summary["time/fit_seconds"], 2),
            "fit_seconds": summary["time/fit_seconds"], "test/acc": round(summary["test/acc"], 4),
            "test/macro_f1": round(summary["test/macro_f1"], 4),
            "command": "python -m senti_lit.train " + " ".join(overrides)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODEL), default="e5")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--e5", type=Path, default=None,
                        help="a multilingual-e5-small folder (default: python -m senti_lit.build_e5's build)")
    parser.add_argument("--limit-train", type=int, default=0, help="train on this many examples (0: all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: senti_lit with trainer=gpu (bf16-mixed), the Trainer on the GPU")
    parser.add_argument("--jobs", type=job_list, default=JOBS, help=f"comma-separated subset of {','.join(JOBS)}")
    parser.add_argument("--repeat", type=positive, default=1,
                        help="run every job this many times, in rounds; the table shows each job's median run")
    args = parser.parse_args()
    # paths as the stored commands write them: relative to the checkout, the e5 build as build://e5_small
    args.data = Path(os.path.relpath(args.data.resolve(), ROOT))
    if args.model == "e5":
        built = e5_model(args.e5)  # built (or checked) before the jobs
        args.e5 = "build://e5_small" if args.e5 is None else os.path.relpath(built, ROOT)
    commit = git_commit()  # before the jobs: the code they start from
    os.chdir(ROOT)  # relative paths (data cache, logs) as for `make bench`
    # under logs/ and named relative to the checkout: the stored commands hold no machine path and run as written
    folder = Path("logs") / "bench" / f"speed_{args.model}"
    folder.mkdir(parents=True, exist_ok=True)
    train, test, model = prepare(args, folder)
    best = ["--padding", "dynamic", "--group-by-length"]
    plan = {"trainer_default": lambda r: trainer_job(args, train, test, model, ["--padding", "max_length"]),
            "trainer_best": lambda r: trainer_job(args, train, test, model, [*best, "--bf16"]),
            "trainer_best_fp32": lambda r: trainer_job(args, train, test, model, best),
            **{name: (lambda r, name=name: senti_job(args, folder, name, job_overrides(name), r))
               for name in SENTI_JOBS}}
    # rounds: every job once per round, so that a slow minute of the machine hits all jobs alike
    runs: dict[str, list[dict]] = {name: [] for name in args.jobs}
    for round_ in range(args.repeat):
        for name in args.jobs:
            runs[name].append(plan[name](round_))
    jobs = {name: median_run(results) for name, results in runs.items()}
    for name, job in jobs.items():
        print(name, {k: v for k, v in job.items() if k != "command"})
    for rec in records(args, jobs):
        record(**rec, commit=commit)
    write_markdown()


def median_run(results: list[dict]) -> dict:
    """The run with the median speed (the slower middle one of an even count), with every run's samples/s."""
    ranked = sorted(results, key=lambda r: r["samples_per_s"])
    return {**ranked[(len(ranked) - 1) // 2], "runs": [r["samples_per_s"] for r in results]}


def invocation(args) -> str:
    """The command that reproduces these jobs (a job name with a space is quoted, so it pastes into a shell)."""
    return (f"python benchmarks/speed_bench.py --model {args.model}"
            f"{f' --limit-train {args.limit_train}' if args.limit_train else ''} --epochs {args.epochs}"
            f"{'' if args.jobs == JOBS else ' --jobs ' + shlex.quote(','.join(args.jobs))}"
            f"{f' --repeat {args.repeat}' if args.repeat > 1 else ''}")


def records(args, jobs: dict[str, dict]) -> list[dict]:
    """One store record per job: its speed (median and every run when repeated), the ratios to the Trainer as
    run_classification.py runs it and at its best (the faster of trainer_best and trainer_best_fp32; without
    trainer_default that ratio is null), accuracy and its gap to the Trainer's best."""
    base = jobs["trainer_default"]["samples_per_s"] if "trainer_default" in jobs else None
    best = max(jobs[name]["samples_per_s"] for name in ("trainer_best", "trainer_best_fp32") if name in jobs)
    best_acc = max(jobs[name]["test/acc"] for name in ("trainer_best", "trainer_best_fp32") if name in jobs)
    examples = f"{args.limit_train} training examples (limit)" if args.limit_train else "all training examples"
    caption = (f"Training speed vs transformers.Trainer: {args.model}, {examples}, {args.epochs} epoch(s), "
               f"max_length {args.max_length}, batch {args.batch_size}, lr {args.lr}, "
               + (f"{os.cpu_count()} CPU cores" if args.device == "cpu" else "one CUDA GPU"))
    out = []
    for name, job in jobs.items():
        speed = job["samples_per_s"]
        metrics = {SPEED: {"median": speed, "runs": job["runs"]} if len(job.get("runs", [])) > 1 else speed,
                   VS_DEFAULT: None if base is None else round(speed / base, 2), VS_BEST: round(speed / best, 2),
                   ACC: job["test/acc"], F1: job["test/macro_f1"], GAP: round(100 * (job["test/acc"] - best_acc), 1)}
        goals = {k: v for k, v in GOALS.items() if metrics[k] is not None} if name == "senti_lit" else None
        out.append({"kind": "train_speed", "id": name, "command": invocation(args), "metrics": metrics,
                    "caption": caption, "runs": {name: job["command"]}, "goals": goals})
    return out


if __name__ == "__main__":
    main()
