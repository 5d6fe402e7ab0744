"""Trainable / total parameters of every pretrained-backbone model config at its real size (the architecture built
from its config with random weights: nothing is downloaded). `python benchmarks/param_shares.py`"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from senti_lit.config import CONFIG_DIR  # noqa: E402
from senti_lit.data.labels import LabelSpace  # noqa: E402
from senti_lit.models.backbone import VocabOnly, build_backbone  # noqa: E402
from senti_lit.models.classifier import SentimentClassifier  # noqa: E402
from senti_lit.models.methods import apply_method  # noqa: E402
from senti_lit.utils import parameter_counts, plain  # noqa: E402

MODELS = ["bert_finetune", "bert_probe", "bert_lora", "bert_adapter", "gpt2_full", "gpt2_adapter", "gpt2_lora",
          "minilm", "llm_lora"]


def main() -> None:
    print("| model | trainable | total | share |\n|---|---|---|---|")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for name in MODELS:
            cfg = compose("train", overrides=[f"model={name}", "paths.output_dir=/tmp"]).model
            settings = {**plain(cfg.backbone), "path": None}
            backbone = build_backbone(VocabOnly(settings["config"]["vocab_size"]), **settings)
            backbone = apply_method(backbone, **plain(cfg.method))
            model = SentimentClassifier(backbone, LabelSpace(("negative", "positive")), optimizer=torch.optim.AdamW,
                                        head=plain(cfg.head))
            c = parameter_counts(model)
            print(f"| `{name}` | {c['params/trainable']:,} | {c['params/total']:,} | "
                  f"{100 * c['params/trainable_share']:.2f}% |")


if __name__ == "__main__":
    main()
