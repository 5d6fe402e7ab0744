"""`<run>/artifact/`: everything prediction needs, in one directory that loads offline without Hydra or the run.

    artifact.json         labels, decision thresholds, temperature, the InputSpec (`inputs`: max_length, prompt,
                          knowledge join), the ModelSpec (`backbone`, `method`, `classifier`), final metrics,
                          calibration report
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from transformers import PreTrainedTokenizerBase

import senti_lit
from senti_lit.core.files import umask_mode, write_json
from senti_lit.data.inputs import InputSpec
from senti_lit.data.labels import LabelSpace
from senti_lit.data.tokenization import build_tokenizer
from senti_lit.models.builder import build_classifier
from senti_lit.models.methods import load_trainable, trainable_state_dict
from senti_lit.models.network import ClassifierNet, TextClassifier
from senti_lit.models.spec import ModelSpec

log = logging.getLogger(__name__)

FORMAT = 1
WEIGHTS = ("full", "trainable")


def base_config(backbone: torch.nn.Module):
    """The transformers config of a backbone, through a peft wrapper if there is one."""
    inner = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
    return inner.config


def save_artifact(folder: Path, model: ClassifierNet, tokenizer: PreTrainedTokenizerBase, spec: ModelSpec,
                  inputs: InputSpec, metrics: Mapping[str, Any], calibration: Mapping[str, Any],
                  weights: str = "full", data: Mapping[str, Any] | None = None, config_yaml: str | None = None) -> Path:
    """Write the artifact of a trained `model`, built from `spec`, whose texts were encoded by `inputs`. `data`
    ({name, path}) and `config_yaml` (the run's composed config) are kept for the record."""
    if weights not in WEIGHTS:
        raise ValueError(f"artifact.weights must be one of {WEIGHTS}, got {weights!r}")
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder / "tokenizer")
    base_config(model.backbone).save_pretrained(folder / "backbone")
    names = model.label_space.names
    meta = {
        "format": FORMAT,
        "senti_lit": senti_lit.__version__,
        "labels": model.label_space.to_dict(),
        **spec.to_dict(),
        "decision": {
            "thresholds": model.thresholds.tolist(),
            "positive_label": names[model.positive_index] if not model.label_space.multi_label else None,
            "temperature": float(model.temperature),
        },
        "inputs": inputs.to_dict(),
        "data": dict(data or {}),
        "weights": weights,
        "metrics": dict(metrics),
        "calibration": dict(calibration),
    }
    write_json(folder / "artifact.json", meta)
    if config_yaml is not None:
        (folder / "config.yaml").write_text(config_yaml, encoding="utf-8")
    if weights == "full":
        save_model(model, str(folder / "model.safetensors"))  # handles tied weights (LM heads)
        umask_mode(folder / "model.safetensors")
    else:
        state = trainable_state_dict(model)
        state.update({"thresholds": model.thresholds, "temperature": model.temperature})
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(folder / "trainable.safetensors"))
        umask_mode(folder / "trainable.safetensors")
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


def load_artifact(folder: str | Path, device: str = "cpu", trust_remote_code: bool = False
                  ) -> tuple[TextClassifier, PreTrainedTokenizerBase, dict[str, Any]]:
    """(classifier in eval mode, tokenizer, artifact.json) from an artifact directory. Code shipped with a model
    runs only when the caller passes `trust_remote_code=True`, never because the artifact's files ask for it."""
    folder = Path(folder)
    meta = read_meta(folder)
    if trust_remote_code:
        log.warning("trust_remote_code=true: Python files shipped in %s may run now; load only artifacts you trust",
                    folder)
    spec = ModelSpec.from_dict(meta)
    tokenizer = build_tokenizer(path=str(folder / "tokenizer"), trust_remote_code=trust_remote_code)
    kwargs = dict(spec.backbone.get("model_kwargs") or {})
    kwargs.pop("quantization_config", None)
    kwargs["trust_remote_code"] = trust_remote_code
    if not trust_remote_code:
        kwargs.pop("trust_remote_code")
    labels = LabelSpace.from_dict(meta["labels"])
    if meta["weights"] == "full":  # the architecture only: every weight comes from model.safetensors
        model = build_classifier(spec, tokenizer, labels, path=str(folder / "backbone"), weights=False,
                                 model_kwargs=kwargs)
        with named_file(folder / "model.safetensors"):
            missing, unexpected = load_model(model, str(folder / "model.safetensors"), strict=False)
        # the training module's loss weights (class weights) are saved with it: the network has no use for them
        unexpected = [k for k in unexpected if not k.startswith("loss_fn.")]
        if missing or unexpected:
            raise ValueError(f"{folder / 'model.safetensors'}: the weights do not fit the model artifact.json "
                             f"describes (missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}): "
                             "copy the whole artifact folder again, or train again")
    else:
        model = build_classifier(spec, tokenizer, labels, model_kwargs=kwargs)
        with named_file(folder / "trainable.safetensors"):
            state = load_file(str(folder / "trainable.safetensors"))
        model.thresholds.copy_(state.pop("thresholds"))
        model.temperature.copy_(state.pop("temperature"))
        load_trainable(model, state)
    return model.to(device).eval(), tokenizer, meta


@contextmanager
def named_file(path: Path) -> Iterator[None]:
    """Errors reading a weights file name the file (safetensors' own say only "invalid header" or the like)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the artifact is incomplete (copy the whole folder, or train again)")
    try:
        yield
    except Exception as e:
        raise ValueError(f"{path}: cannot load these weights ({type(e).__name__}: {e}); the file is truncated, "
                         "damaged or from another model: copy it again, or train again") from e


def input_spec(meta: Mapping[str, Any]) -> InputSpec:
    """The artifact's InputSpec: how its texts become model input."""
    return InputSpec.from_dict(meta["inputs"])
