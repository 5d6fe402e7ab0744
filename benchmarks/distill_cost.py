"""The cost side of distillation (issue 27): `senti_lit.predict`'s texts/s (its Predictor, default settings) of a
student artifact vs its teacher's on the same texts, in one process: each side runs twice, alternating, and the
best of its runs (--repeat, 2) counts. Texts: the first N reviews of ChnSentiCorp htl_all (the task both were trained on).
Each side becomes one record of the results store (benchmarks/store.py) and BENCHMARKS.md is regenerated.

    python benchmarks/distill_cost.py --student logs/bench/htl_distill-full-seed42-<time>/artifact \\
        --teacher logs/bench/teacher-htl_e5_lora_all-full/artifact [--texts 2000] [--data ../shared/data]
    python benchmarks/distill_cost.py --untrained logs/bench/distill_cost   # both built untrained from the bench rows

Texts/s depend on the architecture, not the weights: `--untrained DIR` builds the student (the
htl_mini_bert_scratch row's mini_bert) and the teacher (the htl_e5_lora_all row's e5_small + all-linear LoRA r 16)
as artifacts without training them, for a machine with no time to train the teacher.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import torch

from make_table import write_markdown
from senti_lit.core.runtime import quiet_known_warnings
from senti_lit.inference.predictor import Predictor
from store import git_commit, record

ROOT = Path(__file__).resolve().parents[1]



def htl_texts(data: Path, n: int) -> list[str]:
    with (data / "ChnSentiCorp" / "ChnSentiCorp_htl_all.csv").open(encoding="utf-8", newline="") as f:
        texts = [row["review"].strip() for row in csv.DictReader(f) if (row.get("review") or "").strip()]
    return (texts * (n // max(len(texts), 1) + 1))[:n]


def untrained(row_id: str, data: Path, work: Path) -> Path:
    """The artifact of bench row `row_id`'s model as built before training (seed 42)."""
    from bench import ROWS, train_args
    from senti_lit.core.config import compose_config
    from senti_lit.inference.artifact import save_artifact
    from senti_lit.training.steps import data_for_run, model_for_run
    from store import e5_model

    row = next(r for r in ROWS if r.id == row_id)
    e5 = e5_model(None) if "model=e5_small" in row.args else None
    cfg = compose_config("train", train_args(row, "full", data, e5, None, 42, []), work / row_id)
    datamodule, tokenizer = data_for_run(cfg)
    spec, model = model_for_run(cfg, datamodule, tokenizer, work / row_id, warmup=False)
    return save_artifact(work / row_id / "artifact", model.eval(), tokenizer, spec, datamodule.inputs, {}, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", type=Path, help="the distilled run's artifact folder")
    parser.add_argument("--teacher", type=Path, help="its teacher's artifact folder")
    parser.add_argument("--untrained", type=Path, help="build both untrained from the bench rows in this folder")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side, alternating; the best counts")
    args = parser.parse_args()
    commit = git_commit()
    quiet_known_warnings()
    torch.manual_seed(0)
    if args.untrained:
        args.student = untrained("htl_mini_bert_scratch", args.data, args.untrained)
        args.teacher = untrained("htl_e5_lora_all", args.data, args.untrained)
    elif not (args.student and args.teacher):
        parser.error("give --student and --teacher, or --untrained DIR")
    texts = htl_texts(args.data, args.texts)
    predictors = {"student": Predictor.load(args.student), "teacher": Predictor.load(args.teacher)}
    seconds: dict[str, list[float]] = {name: [] for name in predictors}
    answers = {}
    for _ in range(args.repeat):
        for name, predictor in predictors.items():
            start = time.perf_counter()
            answers[name] = predictor.predict(texts)
            seconds[name].append(time.perf_counter() - start)
    rate = {name: len(texts) / min(values) for name, values in seconds.items()}
    agree = sum(a["label"] == b["label"] for a, b in zip(answers["student"], answers["teacher"])) / len(texts)
    caption = (f"Distillation cost: senti_lit.predict (Predictor, defaults: fp32, batch 64) texts/s of the "
               f"{'untrained (architecture only) ' if args.untrained else 'distilled '}student vs its teacher on the same {len(texts)} htl_all reviews, {os.cpu_count()} CPU cores "
               f"(shared); best of {args.repeat} alternating runs")
    sides = f"--untrained {args.untrained}" if args.untrained else f"--student {args.student} --teacher {args.teacher}"
    command = f"python benchmarks/distill_cost.py {sides}" + (
        f" --texts {args.texts}" if args.texts != 2000 else "") + (f" --repeat {args.repeat}" if args.repeat != 2 else "")
    for name, predictor in predictors.items():
        meta = json.loads((getattr(args, name) / "artifact.json").read_text(encoding="utf-8"))
        params = sum(p.numel() for p in predictor.model.parameters())
        metrics = {"texts/s": round(rate[name], 1), "× teacher": round(rate[name] / rate["teacher"], 2),
                   "parameters": params, "test/acc": meta.get("metrics", {}).get("test/acc"),
                   "label agreement with teacher": round(agree, 4)}
        goals = {"× teacher": ">= 10"} if name == "student" else None
        path = meta["backbone"].get("path")  # None: a backbone built from its config (mini_bert)
        model = f"{Path(path).name if path else 'built from config'} ({meta.get('method', {}).get('name', 'full')})"
        print(record("distill_cost", name, command, metrics, caption, goals=goals, commit=commit,
                     fields={"model": model}))
    write_markdown()


if __name__ == "__main__":
    main()
