"""A plain `transformers.Trainer` fine-tuning run (no senti_lit, no Lightning, no Hydra): the speed baseline.

Reads train/test CSVs (`text,label`, label = class id) that benchmarks/speed_bench.py wrote from senti_lit's own
split, so both sides see the same texts. Two ways users run the Trainer:
  --padding max_length              as `run_classification.py` does by default (pad_to_max_length=True), fp32
  --padding dynamic --group-by-length --bf16     the Trainer at its best
Prints one JSON line: train samples/s (train examples x epochs / train wall time), test accuracy and macro-F1.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time

import torch


def read(path: str) -> tuple[list[str], list[int]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [int(r["label"]) for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--model", required=True, help="a model folder, or build://e5_small / pkg://... as senti_lit reads them")
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--padding", choices=["max_length", "dynamic"], default="max_length")
    ap.add_argument("--group-by-length", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--device", default="cpu", help="cpu | cuda (the Trainer picks the GPU itself)")
    a = ap.parse_args()

    from sklearn.metrics import accuracy_score, f1_score
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    set_seed(a.seed)
    train_texts, train_labels = read(a.train)
    test_texts, test_labels = read(a.test)
    from senti_lit.weights.paths import resolve_path  # build://e5_small: the project's own e5 build, as in train

    a.model = resolve_path(a.model)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=max(train_labels) + 1)
    pad = "max_length" if a.padding == "max_length" else False

    def dataset(texts: list[str], labels: list[int]) -> list[dict]:
        enc = tok(texts, truncation=True, max_length=a.max_length, padding=pad)
        return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": labels[i]}
                for i in range(len(texts))]

    collator = default_data_collator if pad else DataCollatorWithPadding(tok)
    args = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="trainer_baseline_"), use_cpu=a.device == "cpu", bf16=a.bf16,
                             seed=a.seed, learning_rate=a.lr, per_device_train_batch_size=a.batch_size,
                             per_device_eval_batch_size=128, num_train_epochs=a.epochs, save_strategy="no",
                             eval_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0,
                             warmup_steps=0.1, weight_decay=0.01,
                             train_sampling_strategy="group_by_length" if a.group_by_length else "random")
    trainer = Trainer(model=model, args=args, train_dataset=dataset(train_texts, train_labels),
                      processing_class=tok, data_collator=collator)
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    out = trainer.predict(dataset(test_texts, test_labels))
    shutil.rmtree(args.output_dir, ignore_errors=True)
    pred = out.predictions.argmax(-1)
    print(json.dumps({"samples_per_s": round(len(train_texts) * a.epochs / wall, 2), "fit_seconds": round(wall, 1),
                      "test/acc": round(float(accuracy_score(out.label_ids, pred)), 4),
                      "test/macro_f1": round(float(f1_score(out.label_ids, pred, average="macro")), 4),
                      "threads": torch.get_num_threads(), "bf16": a.bf16, "padding": a.padding,
                      "group_by_length": a.group_by_length, "train_rows": len(train_texts)}))


if __name__ == "__main__":
    main()
