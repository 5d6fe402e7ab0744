"""The CPU facts behind senti_lit's speed defaults, measured in one process (ratios, not seconds, are the point):

    python benchmarks/cpu_kernels.py [--e5 data/models/e5_small]

1. fp32 vs bf16 matmuls at transformer shapes (why the default precision on CPU is fp32);
2. torch's foreach AdamW step vs the fused one on multilingual-e5-small's 118M parameters (why fused is default);
3. the most expensive ops of one e5_small training step (torch.profiler), which is where `aten::fill_` of the
   250k x 384 embedding gradient shows up (why keep_freed_memory exists).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def ms(fn, repeat: int = 10) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e3


def matmuls() -> None:
    print("| tokens x in -> out | fp32 ms | bf16 ms | bf16 / fp32 |\n|---|---|---|---|")
    for n, k, m in [(4096, 384, 1536), (4096, 768, 3072), (4096, 1024, 4096)]:
        x, w = torch.randn(n, k), torch.randn(m, k)
        xb, wb = x.bfloat16(), w.bfloat16()
        fp32, bf16 = ms(lambda: x @ w.T), ms(lambda: xb @ wb.T)
        print(f"| {n} x {k} -> {m} | {fp32:.1f} | {bf16:.1f} | {bf16 / fp32:.2f} |")


def adamw(model: torch.nn.Module) -> None:
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    print("\n| AdamW | step ms |\n|---|---|")
    for name, kwargs in [("foreach (torch default)", {}), ("fused", {"fused": True})]:
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, **kwargs)
        print(f"| {name} | {ms(optimizer.step, repeat=3):.0f} |")


def profile_step(model: torch.nn.Module) -> None:
    from torch.profiler import ProfilerActivity, profile

    model.train()
    ids = torch.randint(5, 1000, (32, 128))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)

    def step() -> None:
        model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.zeros(32, dtype=torch.long)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    print("\none fp32 training step, batch 32 x 128 tokens, fused AdamW:")
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=8,
                                                            max_name_column_width=28, max_shapes_column_width=50))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--e5", type=Path, default=ROOT / "data" / "models" / "e5_small")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    matmuls()
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model = AutoModelForSequenceClassification.from_pretrained(args.e5, num_labels=2)
    adamw(model)
    profile_step(model)


if __name__ == "__main__":
    main()
