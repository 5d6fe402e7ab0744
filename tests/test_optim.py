"""Fused AdamW is the default optimiser; gradient clipping must still apply to it in every precision."""
from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from helpers.compose import compose_config, compose_train
from helpers.models import tiny_bert
from senti_lit.data.labels import LabelSpace
from senti_lit.training.module import SentimentClassifier

CLIP = 1e-3


class ClippedNorms(L.Callback):
    """Records the gradients the optimiser stepped with (after clipping): they are still in place when the next
    step's closure zeroes them."""

    def __init__(self) -> None:
        self.norms: list[float] = []
        self.fused: list[bool] = []

    def on_before_zero_grad(self, trainer: L.Trainer, module: L.LightningModule, optimizer) -> None:
        self.fused.append(bool(optimizer.defaults.get("fused")))
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if grads:
            self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())


def batches(n: int = 3) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    data = [{"input_ids": torch.randint(5, 100, (4, 12), generator=g), "attention_mask": torch.ones(4, 12,
             dtype=torch.long), "labels": torch.tensor([0, 1, 0, 1])} for _ in range(n)]
    return DataLoader(data, batch_size=None)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_fused_adamw_trains_with_clipped_gradients(precision):
    model = SentimentClassifier(tiny_bert(), LabelSpace(("neg", "pos")),
                                optimizer=partial(torch.optim.AdamW, lr=1e-2, fused=True))
    spy = ClippedNorms()
    trainer = L.Trainer(accelerator="cpu", precision=precision, gradient_clip_val=CLIP, max_steps=4, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[spy])
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit(model, batches(4), batches(1))
    assert set(spy.fused) == {True}
    assert len(spy.norms) == 3 and all(n <= CLIP * 1.01 for n in spy.norms), spy.norms
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # it did step


RSS_AFTER_FREE = """
import sys, torch
from senti_lit.core.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
x = torch.ones(64 * 2**20)  # 256 MB
del x
pages = int(open("/proc/self/statm").read().split()[1])
print(applied, pages * 4096 // 2**20)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_keep_freed_memory_keeps_a_big_freed_block_mapped():
    def rss_after_free(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", RSS_AFTER_FREE, mode], capture_output=True, text=True, check=True)
        applied, mb = out.stdout.split()
        return applied, int(mb)

    (applied, kept), (_, returned) = rss_after_free("keep"), rss_after_free("default")
    assert applied == "True"
    assert kept - returned > 200, (kept, returned)  # the 256 MB block stayed resident for the next step to reuse


RSS_GROWTH_OVER_SHAPES = """
import sys, torch
from senti_lit.core.runtime import keep_freed_memory, limit_onednn_cache
keep_freed_memory()  # as the default job does
if sys.argv[1] == "limit":
    limit_onednn_cache()
ffn = torch.nn.Sequential(torch.nn.Linear(128, 512), torch.nn.GELU())  # mini_bert's feed-forward (oneDNN's GELU)
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 // 2**20
ffn(torch.randn(16, 8, 128)).sum().backward()
start = rss_mb()
for length in range(2, 130, 2):  # dynamic padding: a batch length of its own per batch
    ffn(torch.randn(16, length, 128, requires_grad=True)).sum().backward()
print(rss_mb() - start)
"""


def this_senti_lit_env() -> dict[str, str]:
    """The environment for a subprocess that imports the senti_lit under test, with oneDNN's cache unset."""
    import senti_lit

    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    return {**env, "PYTHONPATH": os.pathsep.join([str(Path(senti_lit.__file__).parents[1]),
                                                  *filter(None, [os.environ.get("PYTHONPATH")])])}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/statm")
def test_batches_of_new_lengths_do_not_grow_memory():
    """oneDNN cached a GELU primitive per input shape (1024 of them), each pinning about its input's size: with a new
    batch length every batch the default job grew to 4.2 GB. Here 64 lengths grew RSS by ~160 MB with oneDNN's
    default cache (~570 MB for batches of 32 x 1..128 tokens), by ~40 MB with the limited one."""
    out = subprocess.run([sys.executable, "-c", RSS_GROWTH_OVER_SHAPES, "limit"], capture_output=True, text=True,
                         check=True, env=this_senti_lit_env())
    assert int(out.stdout) < 100, out.stdout


def test_auto_precision_is_fp32_on_cpu_and_bf16_on_cuda(monkeypatch):
    from senti_lit.core.config import auto_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert auto_precision("cpu") == auto_precision("auto") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert auto_precision("auto") == auto_precision("gpu") == "bf16-mixed"
    assert auto_precision("cpu") == "32-true"  # an explicit CPU run on a GPU machine
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert auto_precision("gpu") == "32-true"  # V100/T4: trainer=gpu_fp16 is the fast choice there
    assert auto_precision("auto", 128) == "32-true"  # the small-model rule is about CPUs: such a GPU stays fp32


@pytest.mark.parametrize("native", [True, False])
def test_small_models_train_in_bf16_only_on_cpus_that_have_it(monkeypatch, tmp_path, native):
    """mini_bert (hidden 128) trains in bf16, which speeds it up; e5_small does not (bf16 slows its matmuls), nor a
    wider from-scratch model; a CPU without native bf16 would emulate it, slowly: fp32. Checked through the composed
    trainer config."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    mini = compose_train(["model=mini_bert"], tmp_path)
    assert mini.trainer.precision == ("bf16-mixed" if native else "32-true")
    wide = compose_train(["model=mini_bert", "model.backbone.config.hidden_size=512"], tmp_path)
    assert wide.trainer.precision == "32-true"
    assert compose_train(["model=e5_small"], tmp_path).trainer.precision == "32-true"
    assert compose_train(["model=mini_bert", "trainer.precision=32-true"], tmp_path).trainer.precision == "32-true"


def test_on_a_cpu_with_amx_pretrained_models_train_in_bf16_and_small_ones_in_fp32(monkeypatch, tmp_path):
    """AMX tiles make bf16 matmuls several times faster than fp32 (benchmarks/cpu_kernels.py): e5_small and the
    pretrained models train in bf16-mixed there; mini_bert's small matmuls run faster in fp32 (the opposite of an
    avx512_bf16 CPU without AMX); an explicit precision still wins."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    for model in ("e5_small", "bert_finetune", "gpt2_lora", "minilm"):
        assert compose_train([f"model={model}"], tmp_path).trainer.precision == "bf16-mixed", model
    assert compose_train(["model=mini_bert"], tmp_path).trainer.precision == "32-true"
    wide = compose_train(["model=mini_bert", "model.backbone.config.hidden_size=512"], tmp_path)
    assert wide.trainer.precision == "bf16-mixed"
    assert compose_train(["model=e5_small", "trainer.precision=32-true"], tmp_path).trainer.precision == "32-true"
    assert compose_train(["model=mini_bert", "trainer.precision=bf16-mixed"], tmp_path).trainer.precision == "bf16-mixed"


def test_configs_without_a_model_resolve_precision(monkeypatch, tmp_path):
    """augment.yaml composes the trainer group without a model: no hidden size, fp32 (without AMX)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert compose_config("augment", [], tmp_path).trainer.precision == "32-true"
    assert compose_config("pretrain", [], tmp_path).trainer.precision == "bf16-mixed"  # its model is mini_bert


def test_fp16_with_clipping_builds_an_unfused_optimizer():
    """Under a grad scaler a fused optimiser unscales inside its step, too late for clipping: fall back."""
    from types import SimpleNamespace

    from senti_lit.training.optim import can_fuse

    scaled = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=object()), gradient_clip_val=1.0)
    assert not can_fuse(scaled)
    assert can_fuse(SimpleNamespace(precision_plugin=SimpleNamespace(scaler=object()), gradient_clip_val=None))
    assert can_fuse(SimpleNamespace(precision_plugin=SimpleNamespace(scaler=None), gradient_clip_val=1.0))


def test_head_lr_puts_the_head_in_its_own_groups():
    model = SentimentClassifier(tiny_bert(), LabelSpace(("neg", "pos")), head_lr=1e-2,
                                optimizer=partial(torch.optim.AdamW, lr=1e-4, weight_decay=0.01, fused=True))
    trainer = L.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, batches(3), batches(1))
    groups = {g["name"]: g for g in trainer.optimizers[0].param_groups}
    assert set(groups) == {"decay", "no_decay", "head_decay", "head_no_decay"}
    head = {id(p) for p in model.head.parameters()}
    assert {id(p) for n in ("head_decay", "head_no_decay") for p in groups[n]["params"]} == head
    assert not head & {id(p) for n in ("decay", "no_decay") for p in groups[n]["params"]}
    # the warm-up/decay schedule scales both rates alike
    assert groups["head_decay"]["lr"] == pytest.approx(100 * groups["decay"]["lr"])
    assert groups["head_no_decay"]["weight_decay"] == 0.0 and groups["head_decay"]["weight_decay"] == 0.01


def test_without_head_lr_one_rate_for_all():
    model = SentimentClassifier(tiny_bert(), LabelSpace(("neg", "pos")), optimizer=partial(torch.optim.AdamW, lr=1e-4))
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, batches(1), batches(1))
    assert [g["name"] for g in trainer.optimizers[0].param_groups] == ["decay", "no_decay"]
    assert sum(len(g["params"]) for g in trainer.optimizers[0].param_groups) == len(list(model.parameters()))
