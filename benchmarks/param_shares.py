"""Trainable / total parameters of every pretrained-backbone model config at its real size (the architecture built
from its config with random weights: nothing is downloaded), and what a run stores: the artifact's
`trainable.safetensors` (artifact.weights=trainable: head + LoRA/adapters) and `model.safetensors` (full), fp32.
Each model becomes one record of the results store (benchmarks/store.py) and BENCHMARKS.md is regenerated.
`python benchmarks/param_shares.py`"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from safetensors.torch import save_file, save_model

from make_table import write_markdown
from senti_lit.core.config import CONFIG_DIR, plain
from senti_lit.core.runtime import quiet_known_warnings
from senti_lit.data.labels import LabelSpace
from senti_lit.models.backbone import VocabOnly
from senti_lit.models.builder import build_classifier, parameter_counts
from senti_lit.models.methods import trainable_state_dict
from senti_lit.models.spec import ModelSpec
from store import git_commit, record

MODELS = ["bert_finetune", "bert_probe", "bert_lora", "bert_adapter", "gpt2_full", "gpt2_adapter", "gpt2_lora",
          "minilm", "e5_small", "llm_lora"]


def megabytes(path: Path) -> float:
    return round(path.stat().st_size / 2**20, 1)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    quiet_known_warnings()
    commit = git_commit()
    caption = ("Parameters and artifact sizes per method: real-size architectures from their configs (random "
               "weights), a binary head; sizes of the fp32 safetensors files a run's artifact holds")
    folder = Path(tempfile.mkdtemp(prefix="param_shares_"))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for name in MODELS:
            cfg = compose("train", overrides=[f"model={name}", "paths.output_dir=/tmp"]).model
            spec = ModelSpec({**plain(cfg.backbone), "path": None}, plain(cfg.method), {"head": plain(cfg.head)})
            model = build_classifier(spec, VocabOnly(spec.backbone["config"]["vocab_size"]),
                                     LabelSpace(("negative", "positive")))
            c = parameter_counts(model)
            save_file({k: v.detach().contiguous() for k, v in trainable_state_dict(model).items()},
                      str(folder / "trainable.safetensors"))
            save_model(model, str(folder / "model.safetensors"))
            metrics = {"trainable": c["params/trainable"], "total": c["params/total"],
                       "share (%)": round(100 * c["params/trainable_share"], 2),
                       "trainable.safetensors (MB)": megabytes(folder / "trainable.safetensors"),
                       "model.safetensors (MB)": megabytes(folder / "model.safetensors")}
            print(record("params", name, "python benchmarks/param_shares.py", metrics, caption, commit=commit))
    write_markdown()


if __name__ == "__main__":
    main()
