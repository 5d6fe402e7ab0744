"""`senti_lit.pretrain`: MLM on a data config's texts or a text file -> a directory `train` fine-tunes."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModel

from senti_lit.pretrain import pretrain
from senti_lit.train import train

from conftest import TINY_MODEL, compose_config, compose_train

TINY_BACKBONE = [o for o in TINY_MODEL if o.startswith(("model.tokenizer", "model.backbone", "data.", "trainer."))]


def compose_pretrain(overrides: list[str], out: Path):
    return compose_config("pretrain", overrides, out)


def test_pretrain_then_fine_tune(reviews_dir: Path, tmp_path: Path):
    cfg = compose_pretrain([f"data.path={reviews_dir}", *TINY_BACKBONE, "mlm.epochs=6", "mlm.lr=5e-3", "mlm.batch_size=32",
                            "trainer.log_every_n_steps=1"], tmp_path / "pre")
    folder = pretrain(cfg)
    report = json.loads((tmp_path / "pre" / "pretrain.json").read_text())
    assert report["texts"] == 240  # the train split only: val/test stay unseen
    losses = report["mlm_loss_per_epoch"]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.3, losses  # it learns
    saved = AutoModel.from_pretrained(folder)

    run = compose_train([f"data.path={reviews_dir}", *TINY_MODEL, "model.mlm_warmup.epochs=0", "debug=fdr",
                         f"model.backbone.path={folder}"], tmp_path / "fine")
    assert run.model.tokenizer.path == str(folder)  # the pretrained tokenizer comes with it
    summary = train(run)
    assert 0.0 <= summary["test/acc"] <= 1.0
    tokenizer = json.loads((tmp_path / "fine" / "tokenizer" / "tokenizer.json").read_text())
    assert tokenizer["model"]["vocab"] == json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    from senti_lit.data.tokenization import build_tokenizer
    from senti_lit.models.backbone import build_backbone

    loaded = build_backbone(build_tokenizer(**run.model.tokenizer), **run.model.backbone)  # what train() built on
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), saved.state_dict().values()))


def test_pretrain_on_a_text_file(tmp_path: Path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["今天天气很好", "", "今天天气很好", *(f"第{i}句话没有标签" for i in range(60))]) + "\n",
                      encoding="utf-8")
    cfg = compose_pretrain([f"text_file={corpus}", *TINY_BACKBONE, "mlm.epochs=1", "trainer.log_every_n_steps=1"],
                           tmp_path / "pre")
    pretrain(cfg)
    assert json.loads((tmp_path / "pre" / "pretrain.json").read_text())["texts"] == 61  # blank + repeat skipped
