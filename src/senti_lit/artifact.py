"""`<run>/artifact/`: everything prediction needs, in one directory that loads offline without Hydra or the run.

    artifact.json         labels, decision thresholds, temperature, how texts are encoded (max_length, prompt,
                          knowledge join), classifier/method settings, final metrics, calibration report
    config.yaml           the composed training config (for the record; loading does not need it)
    tokenizer/            the tokenizer the token ids were made with
    backbone/config.json  the backbone's architecture
    model.safetensors     every weight of the classifier (artifact.weights=full), or
    trainable.safetensors only what training changed (head, LoRA/adapters, thresholds, temperature) - the base
                          weights then load from the original backbone path (artifact.weights=trainable)
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, load_model, save_file, save_model
from transformers import AutoConfig, PreTrainedTokenizerBase

import senti_lit
from senti_lit.data.labels import LabelSpace
from senti_lit.data.tokenization import build_tokenizer
from senti_lit.models.backbone import AUTO_CLASSES, build_backbone
from senti_lit.models.classifier import SentimentClassifier
from senti_lit.models.methods import apply_method, load_trainable, trainable_state_dict
from senti_lit.utils import plain, write_json

log = logging.getLogger(__name__)

FORMAT = 1
WEIGHTS = ("full", "trainable")


def base_config(backbone: torch.nn.Module):
    """The transformers config of a backbone, through a peft wrapper if there is one."""
    inner = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
    return inner.config


def data_choice() -> str | None:
    """The `data=` option the run was composed with (None outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("data") if HydraConfig.initialized() else None


def save_artifact(folder: Path, model: SentimentClassifier, tokenizer: PreTrainedTokenizerBase, cfg: DictConfig,
                  inputs: dict[str, Any], metrics: dict[str, Any], calibration: dict[str, Any],
                  weights: str = "full") -> Path:
    """Write the artifact of a trained `model`; `inputs` = {max_length, prompt, knowledge} as in training."""
    if weights not in WEIGHTS:
        raise ValueError(f"artifact.weights must be one of {WEIGHTS}, got {weights!r}")
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder / "tokenizer")
    base_config(model.backbone).save_pretrained(folder / "backbone")
    hparams = {k: v for k, v in dict(model.hparams).items() if k != "labels"}
    names = model.label_space.names
    meta = {
        "format": FORMAT,
        "senti_lit": senti_lit.__version__,
        "labels": model.label_space.to_dict(),
        "classifier": hparams,
        "decision": {
            "thresholds": model.thresholds.tolist(),
            "positive_label": names[model.positive_index] if not model.label_space.multi_label else None,
            "temperature": float(model.temperature),
        },
        "backbone": {"path": cfg.model.backbone.get("path"), "lm_head": cfg.model.backbone.get("lm_head"),
                     "model_kwargs": plain(cfg.model.backbone.get("model_kwargs")) or {}},
        "method": plain(cfg.model.get("method")) or {"name": "full"},
        "inputs": inputs,
        "data": {"name": data_choice(), "path": cfg.data.get("path")},
        "weights": weights,
        "metrics": metrics,
        "calibration": calibration,
    }
    write_json(folder / "artifact.json", meta)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    if weights == "full":
        save_model(model, str(folder / "model.safetensors"))  # handles tied weights (LM heads)
    else:
        state = trainable_state_dict(model)
        state.update({"thresholds": model.thresholds, "temperature": model.temperature})
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(folder / "trainable.safetensors"))
    log.info("artifact: %s", folder)
    return folder


def read_meta(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "artifact.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: not a senti_lit artifact (no artifact.json); training writes one to "
                                "<run dir>/artifact")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: artifact format {meta.get('format')}, this senti_lit reads format {FORMAT}")
    return meta


def load_artifact(folder: str | Path, device: str = "cpu"
                  ) -> tuple[SentimentClassifier, PreTrainedTokenizerBase, dict[str, Any]]:
    """(classifier in eval mode, tokenizer, artifact.json) from an artifact directory."""
    folder = Path(folder)
    meta = read_meta(folder)
    tokenizer = build_tokenizer(path=str(folder / "tokenizer"))
    backbone_meta = meta["backbone"]
    kwargs = dict(backbone_meta.get("model_kwargs") or {})
    kwargs.pop("quantization_config", None)
    if meta["weights"] == "full":  # the architecture only: every weight comes from model.safetensors
        config = AutoConfig.from_pretrained(folder / "backbone",
                                            trust_remote_code=bool(kwargs.get("trust_remote_code", False)))
        backbone = AUTO_CLASSES[backbone_meta.get("lm_head")].from_config(config, **kwargs)
    else:
        backbone = build_backbone(tokenizer, path=backbone_meta["path"], lm_head=backbone_meta.get("lm_head"),
                                  model_kwargs=backbone_meta.get("model_kwargs"))
    backbone = apply_method(backbone, **meta["method"])
    model = SentimentClassifier(backbone, LabelSpace.from_dict(meta["labels"]), optimizer=None,
                                **meta["classifier"])
    if meta["weights"] == "full":
        load_model(model, str(folder / "model.safetensors"), strict=True)
    else:
        state = load_file(str(folder / "trainable.safetensors"))
        model.thresholds.copy_(state.pop("thresholds"))
        model.temperature.copy_(state.pop("temperature"))
        load_trainable(model, state)
    return model.to(device).eval(), tokenizer, meta
