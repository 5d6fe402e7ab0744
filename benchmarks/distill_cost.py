"""The cost side of distillation (issue 27): `senti_lit.predict`'s texts/s (its Predictor, default settings) of a
student artifact vs its teacher's on the same texts, in one process: each side runs twice, alternating, and the
best of its two runs counts. Texts: the first N reviews of ChnSentiCorp htl_all (the task both were trained on).
Each side becomes one record of the results store (benchmarks/store.py) and BENCHMARKS.md is regenerated.

    python benchmarks/distill_cost.py --student logs/bench/htl_distill-full-seed42-<time>/artifact \\
        --teacher logs/bench/teacher-htl_e5_lora_all-full/artifact [--texts 2000] [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from make_table import write_markdown  # noqa: E402
from senti_lit.inference.predictor import Predictor  # noqa: E402
from senti_lit.runtime import quiet_known_warnings  # noqa: E402
from store import git_commit, record  # noqa: E402


def htl_texts(data: Path, n: int) -> list[str]:
    with (data / "ChnSentiCorp" / "ChnSentiCorp_htl_all.csv").open(encoding="utf-8", newline="") as f:
        texts = [row["review"].strip() for row in csv.DictReader(f) if (row.get("review") or "").strip()]
    return (texts * (n // max(len(texts), 1) + 1))[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", type=Path, required=True, help="the distilled run's artifact folder")
    parser.add_argument("--teacher", type=Path, required=True, help="its teacher's artifact folder")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    commit = git_commit()
    quiet_known_warnings()
    torch.manual_seed(0)
    texts = htl_texts(args.data, args.texts)
    predictors = {"student": Predictor.load(args.student), "teacher": Predictor.load(args.teacher)}
    seconds: dict[str, list[float]] = {name: [] for name in predictors}
    answers = {}
    for _ in range(2):
        for name, predictor in predictors.items():
            start = time.perf_counter()
            answers[name] = predictor.predict(texts)
            seconds[name].append(time.perf_counter() - start)
    rate = {name: len(texts) / min(values) for name, values in seconds.items()}
    agree = sum(a["label"] == b["label"] for a, b in zip(answers["student"], answers["teacher"])) / len(texts)
    caption = (f"Distillation cost: senti_lit.predict (Predictor, defaults: fp32, batch 64) texts/s of the distilled "
               f"student vs its teacher on the same {len(texts)} htl_all reviews, {os.cpu_count()} CPU cores "
               "(shared); best of 2 alternating runs")
    command = f"python benchmarks/distill_cost.py --student {args.student} --teacher {args.teacher}"
    for name, predictor in predictors.items():
        meta = json.loads((getattr(args, name) / "artifact.json").read_text(encoding="utf-8"))
        params = sum(p.numel() for p in predictor.model.parameters())
        metrics = {"texts/s": round(rate[name], 1), "× teacher": round(rate[name] / rate["teacher"], 2),
                   "parameters": params, "test/acc": meta.get("metrics", {}).get("test/acc"),
                   "label agreement with teacher": round(agree, 4)}
        goals = {"× teacher": ">= 10"} if name == "student" else None
        model = f"{Path(str(meta['backbone']['path'])).name} ({meta.get('method', {}).get('name', 'full')})"
        print(record("distill_cost", name, command, metrics, caption, goals=goals, commit=commit,
                     fields={"model": model}))
    write_markdown()


if __name__ == "__main__":
    main()
