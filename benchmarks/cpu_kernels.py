"""The CPU facts behind senti_lit's speed defaults, measured in one process (ratios, not seconds, are the point):

    python benchmarks/cpu_kernels.py [--e5 data/models/e5_small]

1. fp32 vs bf16 matmuls at transformer shapes (why the default precision on CPU is fp32);
2. torch's foreach AdamW step vs the fused one on multilingual-e5-small's 118M parameters (why fused is default);
3. the most expensive ops of one e5_small training step (torch.profiler), which is where `aten::fill_` of the
   250k x 384 embedding gradient shows up (why keep_freed_memory exists);
4. Lightning's own cost per training step, and what `self.log` of the step loss and a torchmetrics update add to
   it, on a model too small to hide them;
5. dropout: torch's per-element `bernoulli_` mask vs `senti_lit.models.fast_dropout` (16 random bits an element),
   alone and in a mini_bert-sized forward + backward step (why `fast_dropout: true` is the default).

    python benchmarks/cpu_kernels.py --sections overhead     # one section only
"""
from __future__ import annotations

import argparse
import logging
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


def step_overhead(steps: int = 400) -> None:
    import lightning as L
    import torchmetrics
    from torch.utils.data import DataLoader

    class Tiny(L.LightningModule):
        def __init__(self, extra: str) -> None:
            super().__init__()
            self.extra, self.linear = extra, torch.nn.Linear(8, 2)
            self.metrics = torchmetrics.MetricCollection({
                "acc": torchmetrics.classification.MulticlassAccuracy(2),
                "f1": torchmetrics.classification.MulticlassF1Score(2, average="macro")})

        def training_step(self, batch, batch_idx):
            x, y = batch
            logits = self.linear(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            if self.extra in ("log", "both"):  # as SentimentClassifier logs train/loss
                self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=y.size(0), prog_bar=True)
            if self.extra in ("metrics", "both"):
                self.metrics.update(logits.argmax(-1), y)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    from senti_lit.runtime import quiet_known_warnings

    quiet_known_warnings()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Python overhead is what is measured: no intra-op threads to wait on
    data = DataLoader([(torch.randn(32, 8), torch.randint(0, 2, (32,))) for _ in range(steps)], batch_size=None)
    print("\n| Lightning step of an 8 -> 2 linear model, plus | ms/step |\n|---|---|")
    for extra in ("nothing", "log", "metrics", "both"):
        trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
        start = time.perf_counter()
        trainer.fit(Tiny(extra), data)
        print(f"| {extra} | {(time.perf_counter() - start) / steps * 1e3:.2f} |")
    torch.set_num_threads(threads)


def dropout_masks() -> None:
    import torch.nn.functional as F
    from transformers import BertConfig, BertModel

    from senti_lit.models.fast_dropout import cpu_fast_dropout, fast_dropout

    x = torch.randn(32, 96, 128)
    print("\n| dropout p 0.2 of a 32 x 96 x 128 tensor | ms |\n|---|---|")
    print(f"| torch F.dropout (bernoulli_ mask) | {ms(lambda: F.dropout(x, 0.2), 50):.2f} |")
    print(f"| fast_dropout | {ms(lambda: fast_dropout(x, 0.2), 50):.2f} |")
    config = BertConfig(vocab_size=8000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=512, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.1)
    model = BertModel(config, add_pooling_layer=False).train()
    ids, mask = torch.randint(5, 8000, (32, 96)), torch.ones(32, 96, dtype=torch.long)
    mask[:16, 48:] = 0  # half the texts are half as long: padding, as in a real batch

    def step() -> None:
        model(input_ids=ids, attention_mask=mask).last_hidden_state.mean().backward()

    print("\n| mini_bert forward + backward, batch 32 x 96 tokens | ms |\n|---|---|")
    for _ in range(2):  # twice, alternating, so that drift of the machine shows
        print(f"| torch dropout | {ms(step, 30):.1f} |")
        with cpu_fast_dropout(model):
            print(f"| fast_dropout | {ms(step, 30):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--e5", type=Path, default=ROOT / "data" / "models" / "e5_small")
    parser.add_argument("--sections", default="matmuls,adamw,profile,overhead,dropout")
    args = parser.parse_args()
    sections = args.sections.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    if "matmuls" in sections:
        matmuls()
    if "adamw" in sections or "profile" in sections:
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        model = AutoModelForSequenceClassification.from_pretrained(args.e5, num_labels=2)
        if "adamw" in sections:
            adamw(model)
        if "profile" in sections:
            profile_step(model)
    if "dropout" in sections:
        dropout_masks()
    if "overhead" in sections:
        step_overhead()


if __name__ == "__main__":
    main()
