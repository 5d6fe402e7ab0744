"""Tiny models: a random BertModel, and tiny 'pretrained' BERT/GPT2 snapshots saved to a local dir (built from the
review fixtures' characters), with the overrides and classifier builder that load them as users do
(`model.backbone.path=DIR`)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, BertConfig, BertModel

from helpers.compose import compose_train
from senti_lit.data.tokenization import train_tokenizer
from senti_lit.training.steps import data_for_run, model_for_run


def tiny_bert() -> BertModel:
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=100)
    return BertModel(cfg, add_pooling_layer=False)


TINY = {"bert": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=64),
        "gpt2": dict(n_embd=32, n_layer=2, n_head=2, n_positions=512)}  # room for few-shot chat prompts
CONFIGS = {"bert_finetune": "bert", "bert_probe": "bert", "bert_lora": "bert", "bert_adapter": "bert",
           "bert_cloze": "bert", "gpt2_adapter": "gpt2", "gpt2_lora": "gpt2", "gpt2_full": "gpt2", "gpt2_prompt": "gpt2"}
# the tiny tokenizer is learned from the review fixtures: label words from their characters
TINY_WORDS = ["model.verbalizer.words.negative='差'", "model.verbalizer.words.positive='好'"]  # quoted: Hydra's grammar


def tiny_pretrained(folder: Path, model_type: str, reviews: Path) -> Path:
    """A tiny 'pretrained' model + tokenizer in a local dir, like a Hub snapshot (saved with its LM head, as Hub
    checkpoints are). GPT2 gets the Chinese GPT2's quirks: a BERT-style tokenizer and bos/eos ids (50256) outside
    its vocabulary."""
    texts = [line for name in ("pos.txt", "neg.txt") for line in (reviews / name).read_text("utf-8").splitlines()]
    tokenizer = train_tokenizer(texts, vocab_size=300)
    tokenizer.save_pretrained(folder)
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                  bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                                  **TINY[model_type])
    torch.manual_seed(0)
    with_head = AutoModelForMaskedLM if model_type == "bert" else AutoModelForCausalLM
    with_head.from_config(config).save_pretrained(folder)
    if model_type == "gpt2":
        saved = json.loads((folder / "config.json").read_text())
        saved.update(bos_token_id=50256, eos_token_id=50256)
        saved.pop("pad_token_id", None)
        (folder / "config.json").write_text(json.dumps(saved))
    return folder


def overrides(name: str, local_models: dict[str, Path], *extra: str) -> list[str]:
    """Model config `name` on the tiny local model of its type (the `local_models` fixture) and its reviews."""
    words = TINY_WORDS if name in ("bert_cloze", "gpt2_prompt") else []
    return [f"model={name}", f"model.backbone.path={local_models[CONFIGS.get(name, 'bert')]}", *words,
            f"data.path={local_models['reviews']}", "data.max_length=32", "data.batch_size=8",
            "trainer.accelerator=cpu", "trainer.log_every_n_steps=1", *extra]


def classifier(name: str, local_models: dict[str, Path], tmp_path: Path, *extra: str):
    """The untrained classifier of model config `name` on its tiny local model, and its prepared data module."""
    cfg = compose_train(overrides(name, local_models, *extra), tmp_path)
    datamodule, tokenizer = data_for_run(cfg)
    torch.manual_seed(0)
    return model_for_run(cfg, datamodule, tokenizer, tmp_path)[1], datamodule
