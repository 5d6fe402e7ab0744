"""Backbones: a pretrained encoder/decoder from a Hub id or local dir, or a fresh one built from a config."""
from __future__ import annotations

import logging
from typing import Any

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from senti_lit.weights.paths import resolve_path

log = logging.getLogger(__name__)

# model.backbone.lm_head -> the transformers auto class that builds the backbone
AUTO_CLASSES = {None: AutoModel, "masked": AutoModelForMaskedLM, "causal": AutoModelForCausalLM}


def align_special_tokens(config: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> None:
    """The model's pad/bos/eos ids must be the tokenizer's: uer's Chinese GPT2 uses a BERT tokenizer ([CLS]/[SEP],
    [PAD] = 0) while its config keeps GPT2's 50256, outside its 21128-token vocabulary. Fixed in the config's dict,
    before a config object exists (building one with the bad ids logs a warning)."""
    config["pad_token_id"] = tokenizer.pad_token_id
    vocab = config.get("vocab_size") or len(tokenizer)
    for name, candidates in (("bos_token_id", ("bos_token_id", "cls_token_id")),
                             ("eos_token_id", ("eos_token_id", "sep_token_id"))):
        current = config.get(name)
        ids = current if isinstance(current, list) else [current]  # Llama 3 lists several eos ids
        if current is not None and all(isinstance(i, int) and 0 <= i < vocab for i in ids):
            continue
        config[name] = first_id(tokenizer, *candidates)


def four_bit_config():
    """bitsandbytes 4-bit NF4 with bf16 compute; it needs a CUDA GPU and the bitsandbytes package."""
    import torch
    from transformers import BitsAndBytesConfig

    if not torch.cuda.is_available():
        raise ValueError("model.backbone.load_in_4bit=true needs a CUDA GPU (bitsandbytes); this machine has none: "
                         "set it to false")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ValueError("model.backbone.load_in_4bit=true needs bitsandbytes: pip install bitsandbytes") from None
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)


def first_id(tokenizer: PreTrainedTokenizerBase, *names: str) -> int | None:
    """The first of the tokenizer's special token ids `names` that it has."""
    return next((i for i in (getattr(tokenizer, n, None) for n in names) if i is not None), None)


def load_pretrained(auto, path: str, config, model_kwargs: dict[str, Any]) -> PreTrainedModel:
    """`auto.from_pretrained` with its load report turned into our log: checkpoint weights this backbone does not
    use (BERT's pooler, an LM head) are expected and logged at info; weights the checkpoint lacks are not, and are
    logged as a warning naming them."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model, info = auto.from_pretrained(path, config=config, output_loading_info=True, **model_kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    unused, missing = sorted(info.get("unexpected_keys", [])), sorted(info.get("missing_keys", []))
    if unused:
        log.info("backbone: %d weights of %s not used by %s (e.g. %s)", len(unused), path, type(model).__name__,
                 ", ".join(unused[:3]))
    if missing:
        log.warning("backbone: %d weights of %s are not in %s and start random: %s", len(missing),
                    type(model).__name__, path, ", ".join(missing[:5]))
    return model


def build_backbone(
    tokenizer: PreTrainedTokenizerBase,
    path: str | None = None,
    model_type: str = "bert",
    config: dict[str, Any] | None = None,
    model_kwargs: dict[str, Any] | None = None,
    gradient_checkpointing: bool = False,
    lm_head: str | None = None,
    load_in_4bit: bool = False,
    weights: bool = True,
) -> PreTrainedModel:
    """`path` (Hub id, local dir or pkg://) loads pretrained weights; otherwise `model_type` + `config` build one
    from scratch (vocabulary size and special token ids from `tokenizer` unless `config` sets them).

    `gradient_checkpointing` trades compute for memory on backbones that support it. `lm_head` (masked | causal)
    keeps the language-model head, for classifiers that read label words off the vocabulary (verbalizers).
    `load_in_4bit` loads pretrained weights 4-bit quantized (bitsandbytes, CUDA only), for LLMs with LoRA.
    `weights=False` builds `path`'s architecture with fresh weights (an artifact then loads its own).
    """
    model_kwargs = dict(model_kwargs or {})
    auto = AUTO_CLASSES.get(lm_head)
    if auto is None:
        raise ValueError(f"model.backbone.lm_head must be null, masked or causal, got {lm_head!r}")
    if path:
        path = resolve_path(path)
        remote = bool(model_kwargs.get("trust_remote_code", False))
        settings, _ = PretrainedConfig.get_config_dict(path, trust_remote_code=remote)
        align_special_tokens(settings, tokenizer)
        if remote or settings.get("model_type") is None:  # remote-code configs are built by their own class
            model_config = AutoConfig.from_pretrained(path, trust_remote_code=remote, **{
                k: settings[k] for k in ("pad_token_id", "bos_token_id", "eos_token_id")})
        else:
            model_config = AutoConfig.for_model(**settings)
        if not weights:
            return auto.from_config(model_config, **model_kwargs)
        if load_in_4bit:
            model_kwargs["quantization_config"] = four_bit_config()
        model = load_pretrained(auto, path, model_config, model_kwargs)
        model.train()  # from_pretrained returns eval mode; Lightning switches modes per stage from train mode
    else:
        settings = {"vocab_size": len(tokenizer), **dict(config or {})}
        model_config = AutoConfig.for_model(model_type, **settings, pad_token_id=tokenizer.pad_token_id,
                                            bos_token_id=first_id(tokenizer, "bos_token_id", "cls_token_id"),
                                            eos_token_id=first_id(tokenizer, "eos_token_id", "sep_token_id"))
        model = auto.from_config(model_config, **model_kwargs)
        log.info("backbone: %s from scratch, %.2fM parameters", model_type, model.num_parameters() / 1e6)
    if gradient_checkpointing:
        if not model.supports_gradient_checkpointing:
            raise ValueError(f"{type(model).__name__} does not support gradient checkpointing; set "
                             "model.backbone.gradient_checkpointing=false")
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False  # a key/value cache is useless in training and conflicts with checkpointing
    return model


class VocabOnly:
    """A stand-in tokenizer with only a size and special ids: enough for `build_backbone` to build a real-size
    architecture from a config without its tokenizer (parameter counts, tests)."""

    pad_token_id, bos_token_id, eos_token_id, cls_token_id, sep_token_id = 0, None, None, 101, 102

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size
