"""The CPU facts behind senti_lit's speed defaults, measured in one process (ratios, not seconds, are the point):

    python benchmarks/cpu_kernels.py [--e5 DIR]   # default: the project's e5_small build (python -m senti_lit.build_e5)

1. fp32 vs bf16 matmuls at transformer shapes (why the default precision on CPU is fp32);
2. torch's foreach AdamW step vs the fused one on multilingual-e5-small's 118M parameters (why fused is default);
3. the most expensive ops of one e5_small training step (torch.profiler), which is where `aten::fill_` of the
   250k x 384 embedding gradient shows up (why keep_freed_memory exists);
4. Lightning's own cost per training step, and what `self.log` of the step loss and a torchmetrics update add to
   it, on a model too small to hide them;
5. dropout: torch's per-element `bernoulli_` mask vs `senti_lit.models.fast_dropout` (16 random bits an element),
   alone and in a mini_bert-sized forward + backward step (why `fast_dropout: true` is the default);
6. the default job's MLM warm-up step on its own training texts: length-grouped whole texts vs packed rows of
   48, 64 and 128 tokens, fp32 vs bf16 autocast (why `model.mlm_warmup.pack` is off and mini_bert trains in fp32
   on an AMX CPU: docs/performance.md).

    python benchmarks/cpu_kernels.py --sections overhead     # one section only

Every measured row becomes one record of the results store (benchmarks/store.py), its command naming its section
(so a run of one section replaces only that section's rows), and BENCHMARKS.md is regenerated.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from make_table import write_markdown
from store import e5_model, git_commit, record

ROOT = Path(__file__).resolve().parents[1]

COMMIT = git_commit()


def keep(section: str, caption: str, id: str, metrics: dict, **extra) -> None:
    """One measured row -> the store (and the terminal)."""
    caption += f" (torch {torch.__version__}, {torch.get_num_threads()} threads)"
    print(record("cpu_kernels", id, f"python benchmarks/cpu_kernels.py --sections {section}", metrics, caption,
                 commit=COMMIT, **extra))


def ms(fn, repeat: int = 10) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e3


def matmuls() -> None:
    for n, k, m in [(4096, 384, 1536), (4096, 768, 3072), (4096, 1024, 4096)]:
        x, w = torch.randn(n, k), torch.randn(m, k)
        xb, wb = x.bfloat16(), w.bfloat16()
        fp32, bf16 = ms(lambda: x @ w.T), ms(lambda: xb @ wb.T)
        keep("matmuls", "fp32 vs bf16 matmuls at transformer shapes", f"{n} x {k} -> {m}",
             {"fp32 ms": round(fp32, 1), "bf16 ms": round(bf16, 1), "bf16 / fp32": round(bf16 / fp32, 2)})


def adamw(model: torch.nn.Module) -> None:
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    for name, kwargs in [("foreach (torch default)", {}), ("fused", {"fused": True})]:
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, **kwargs)
        keep("adamw", "One AdamW step on multilingual-e5-small's 118M parameters", name,
             {"step ms": round(ms(optimizer.step, repeat=3))})


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
    events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)  # microseconds, as the profiler's own table
    caption = ("The most expensive ops by self CPU time (torch.profiler) of one fp32 e5_small training step, "
               "batch 32 x 128 tokens, fused AdamW")
    for rank, e in enumerate(events[:8], 1):  # ranks, not op names, are the rows: the top 8 differ between runs
        self_ms, total_ms = e.self_cpu_time_total / 1e3, e.cpu_time_total / 1e3
        keep("profile", caption, f"#{rank}", {
            "self CPU %": round(100 * e.self_cpu_time_total / total, 2), "self CPU ms": round(self_ms, 3),
            "CPU total %": round(100 * e.cpu_time_total / total, 2), "CPU total ms": round(total_ms, 3),
            "CPU time avg ms": round(total_ms / e.count, 3), "calls": e.count},
            fields={"op": e.key, "input shapes": str(e.input_shapes)})
    keep("profile", caption, "all ops", {"self CPU ms": round(total / 1e3, 3)})


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

    from senti_lit.core.runtime import quiet_known_warnings

    quiet_known_warnings()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Python overhead is what is measured: no intra-op threads to wait on
    data = DataLoader([(torch.randn(32, 8), torch.randint(0, 2, (32,))) for _ in range(steps)], batch_size=None)
    for extra in ("nothing", "log", "metrics", "both"):
        trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
        start = time.perf_counter()
        trainer.fit(Tiny(extra), data)
        keep("overhead", "Lightning's own cost per training step of an 8 -> 2 linear model, plus self.log of the "
             "step loss (log), a torchmetrics update (metrics) or both", extra,
             {"ms/step": round((time.perf_counter() - start) / steps * 1e3, 2)})
    torch.set_num_threads(threads)


def dropout_masks() -> None:
    import torch.nn.functional as F
    from transformers import BertConfig, BertModel

    from senti_lit.models.fast_dropout import cpu_fast_dropout, fast_dropout

    x = torch.randn(32, 96, 128)
    caption = "One dropout, p 0.2 of a 32 x 96 x 128 tensor"
    for name, fn in (("torch F.dropout (bernoulli_ mask)", F.dropout), ("fast_dropout", fast_dropout)):
        keep("dropout", caption, name, {"ms": round(ms(lambda: fn(x, 0.2), 50), 2)})
    config = BertConfig(vocab_size=8000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=512, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.1)
    model = BertModel(config, add_pooling_layer=False).train()
    ids, mask = torch.randint(5, 8000, (32, 96)), torch.ones(32, 96, dtype=torch.long)
    mask[:16, 48:] = 0  # half the texts are half as long: padding, as in a real batch

    def step() -> None:
        model(input_ids=ids, attention_mask=mask).last_hidden_state.mean().backward()

    caption = "mini_bert forward + backward, batch 32 x 96 tokens, two alternating rounds"
    for round_ in (1, 2):  # twice, alternating, so that drift of the machine shows
        keep("dropout", caption, f"torch dropout, round {round_}", {"ms": round(ms(step, 30), 1)})
        with cpu_fast_dropout(model):
            keep("dropout", caption, f"fast_dropout, round {round_}", {"ms": round(ms(step, 30), 1)})


def mlm_steps(steps: int = 40, skip: int = 10) -> None:
    """The default job's MLM warm-up step (forward, backward, fused AdamW; fast dropout on, as in the job) on the
    demo training texts, by batching and precision. Real tokens per second: packed rows have no padding, so the
    rate, not the step time, compares the batchings."""
    from senti_lit.core.config import compose_config
    from senti_lit.core.runtime import quiet_known_warnings
    from senti_lit.models.fast_dropout import cpu_fast_dropout
    from senti_lit.training.mlm import MaskedLM, mlm_collator
    from senti_lit.training.steps import data_for_run, model_for_run

    quiet_known_warnings()
    cfg = compose_config("train", ["model.mlm_warmup.epochs=0"], ROOT / "logs" / "bench" / "cpu_kernels_mlm")
    datamodule, tokenizer = data_for_run(cfg)
    _, classifier = model_for_run(cfg, datamodule, tokenizer, warmup=False)
    module = MaskedLM(classifier.backbone).train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, fused=True)
    collator = mlm_collator(tokenizer, cfg.model.mlm_warmup.mask_prob)
    loaders = {"length-grouped whole texts, batch 64 (the default)":
               datamodule.unlabelled_train_loader(64, collator)}
    for block, batch in ((48, 64), (64, 48), (128, 24)):
        loaders[f"packed rows of {block} tokens, batch {batch}"] = datamodule.packed_train_loader(
            batch, block, collator, 0)
    caption = ("The default job's MLM warm-up step (mini_bert, demo training texts; forward, backward, fused AdamW, "
               f"fast dropout), {steps - skip} steps after {skip} unmeasured, by batching and precision")
    with cpu_fast_dropout(module):
        for name, loader in loaders.items():
            batches = [batch for batch, _ in zip(loader, range(steps))]
            for precision in ("fp32", "bf16 autocast"):
                seconds, tokens = 0.0, 0
                for i, batch in enumerate(batches):
                    start = time.perf_counter()
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision != "fp32"):
                        loss = module.loss(batch)
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                    if i >= skip:
                        seconds += time.perf_counter() - start
                        tokens += int(batch["attention_mask"].sum())
                keep("mlm", caption, f"{name}, {precision}",
                     {"ms a step": round(1000 * seconds / (steps - skip), 1), "real tokens/s": round(tokens / seconds)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--e5", type=Path, default=None,
                        help="a multilingual-e5-small folder (default: python -m senti_lit.build_e5's build)")
    parser.add_argument("--sections", default="matmuls,adamw,profile,overhead,dropout,mlm")
    args = parser.parse_args()
    sections = args.sections.split(",")
    if "matmuls" in sections:
        matmuls()
    if "adamw" in sections or "profile" in sections:
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        model = AutoModelForSequenceClassification.from_pretrained(e5_model(args.e5), num_labels=2)
        if "adamw" in sections:
            adamw(model)
        if "profile" in sections:
            profile_step(model)
    if "dropout" in sections:
        dropout_masks()
    if "overhead" in sections:
        step_overhead()
    if "mlm" in sections:
        mlm_steps()
    write_markdown()


if __name__ == "__main__":
    main()
