"""Fine-tuning methods, independent of the backbone: which weights train and what is added (`model/method`).

full | frozen (probe: only the head trains) | adapter (hand-written bottleneck, `models/adapter.py`) | and every
method peft has: lora | ia3 | prompt_tuning (any peft config type, through `peft_type`).
"""
from __future__ import annotations

import logging
from typing import Any

from torch import nn
from transformers import PreTrainedModel

from senti_lit.models.adapter import add_adapters

log = logging.getLogger(__name__)

# Conv1D layers (GPT2) store weights transposed: LoRA must know (peft warns and misbehaves otherwise).
CONV1D_MODELS = {"gpt2"}


def freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad = False


def apply_method(backbone: PreTrainedModel, name: str = "full", **options: Any) -> nn.Module:
    """The backbone prepared for fine-tuning by method `name` (the head is always trained)."""
    if name == "full":
        return backbone
    if name == "frozen":
        freeze(backbone)
        return backbone
    if name == "adapter":
        train_layer_norm = options.pop("train_layer_norm", False)
        freeze(backbone)
        add_adapters(backbone, **options)
        if train_layer_norm:
            for module in backbone.modules():
                if isinstance(module, nn.LayerNorm):
                    for p in module.parameters():
                        p.requires_grad = True
        return backbone
    return peft_wrap(backbone, name, **options)


def peft_wrap(backbone: PreTrainedModel, name: str, **options: Any) -> nn.Module:
    import peft

    configs = {"lora": peft.LoraConfig, "ia3": peft.IA3Config, "prompt_tuning": peft.PromptTuningConfig}
    if name not in configs:
        raise ValueError(f"model.method.name must be full, frozen, adapter or one of {sorted(configs)}, got {name!r}")
    options = dict(options)
    if name in ("lora", "ia3") and backbone.config.model_type in CONV1D_MODELS:
        options.setdefault("fan_in_fan_out", True)
    config = configs[name](task_type=peft.TaskType.FEATURE_EXTRACTION, **options)
    return peft.get_peft_model(backbone, config)


def merge_lora(backbone: nn.Module) -> nn.Module:
    """LoRA (or IA3) weights folded into the base weights: a plain transformers model, as fast as the original,
    with the same outputs. Anything else is returned unchanged."""
    import peft

    if isinstance(backbone, peft.PeftModel) and hasattr(backbone, "merge_and_unload"):
        return backbone.merge_and_unload()
    return backbone


def trainable_state_dict(model: nn.Module) -> dict[str, Any]:
    """Only what training changed: the head and the method's weights (LoRA matrices, adapters, prompts), or
    everything for full fine-tuning. With the same base weights, `load_trainable` restores the model."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: nn.Module, state: dict[str, Any]) -> None:
    """Load a `trainable_state_dict` into a model built the same way; every saved tensor must find its place."""
    own = dict(model.named_parameters())
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise KeyError(f"{len(unknown)} saved weights have no place in this model (built differently?): "
                       f"{unknown[:3]}")
    missing = sorted(name for name, p in own.items() if p.requires_grad and name not in state)
    if missing:
        raise KeyError(f"{len(missing)} trainable weights of this model are not in the saved ones: {missing[:3]}")
    model.load_state_dict(state, strict=False)
