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

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from transformers import PreTrainedTokenizerBase

import senti_lit
from senti_lit.core.files import atomic_write, read_json, umask_mode, write_json
from senti_lit.core.runtime import notice
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


def base_model(backbone: torch.nn.Module) -> torch.nn.Module:
    """The transformers model of a backbone, through a peft wrapper if there is one."""
    return backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone


def base_config(backbone: torch.nn.Module):
    """The transformers config of a backbone, through a peft wrapper if there is one."""
    return base_model(backbone).config


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
        atomic_write(folder / "config.yaml", lambda f: f.write(config_yaml.encode("utf-8")))
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
    meta = read_json(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path}: artifact format {found}, this senti_lit reads format {FORMAT}")
    return meta


def load_artifact(folder: str | Path, device: str = "cpu", trust_remote_code: bool = False
                  ) -> tuple[TextClassifier, PreTrainedTokenizerBase, dict[str, Any]]:
    """(classifier in eval mode, tokenizer, artifact.json) from an artifact directory. Code shipped with a model
    runs only when the caller passes `trust_remote_code=True`, never because the artifact's files ask for it."""
    folder = Path(folder)
    meta = read_meta(folder)
    check_files(folder)
    if trust_remote_code:
        warn_remote_code(folder)
    spec = ModelSpec.from_dict(meta)
    try:
        tokenizer = build_tokenizer(path=str(folder / "tokenizer"), trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - whatever the loader raises about a damaged tokenizer, named
        raise ValueError(f"{folder / 'tokenizer'}: the tokenizer cannot be loaded ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else ''}); copy the artifact folder again") from None
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


def check_files(folder: Path) -> None:
    """Before loading: every JSON file of the artifact parses (an error names the file, not "Expecting value: line 1
    column 1"), and links that lead out of the folder are named on stderr. Such links are followed (an artifact may
    share its weights or tokenizer with another folder to save space), never silently: docs/prediction.md."""
    for path in sorted(folder.rglob("*.json")):
        read_json(path)
    root = folder.resolve()
    outside = [(p, p.resolve()) for p in sorted(folder.rglob("*"))
               if p.is_symlink() and not p.resolve().is_relative_to(root)]
    if outside:
        notice(f"{folder}: {len(outside)} file(s) are links to outside the artifact, read from there: "
               + ", ".join(f"{p.relative_to(folder)} -> {target}" for p, target in outside[:5]))


def warn_remote_code(folder: Path) -> None:
    """trust_remote_code=true: say which code may run, on stderr whatever the logging level (predict and serve
    silence the log)."""
    scripts = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.py"))
    maps = set()
    for path in folder.rglob("*config.json"):
        auto_map = read_json(path).get("auto_map") if isinstance(read_json(path), dict) else None
        for value in (auto_map or {}).values() if isinstance(auto_map, dict) else []:
            maps |= {str(v) for v in (value if isinstance(value, list) else [value]) if v}
    named = ", ".join(scripts[:10]) or "none in the folder"
    notice(f"trust_remote_code=true: Python code shipped with the model may run now: {named}"
           + (f"; auto_map classes {', '.join(sorted(maps))[:300]}" if maps else "")
           + ". Load only artifacts you trust.")


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
