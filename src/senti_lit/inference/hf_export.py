"""An artifact as a plain transformers model directory (`python -m senti_lit.export`).

The result loads with `transformers.pipeline("text-classification", model=DIR)` (labels in `id2label`) and gives
senti_lit's calibrated probabilities: LoRA/IA3 are merged into the base weights, the temperature is folded into the
last layer, and the head is rewritten as the architecture's own `*ForSequenceClassification` head:
- `cls` pooling, BERT family: BERT's pooler is tanh(Wh + b); with W = eps*I and the classifier scaled by 1/eps,
  tanh(eps*h)/eps = h - (eps*h)^3/3 + ..., so the logits match to ~1e-6 relative (checked at export);
- `cls` pooling, RoBERTa family: the same in its classification head (dense -> tanh -> out_proj);
- `last` pooling, GPT2 family: `score` has no bias, so the bias is moved into the final layer norm's shift.
What a plain classification model cannot express - label words read off the LM head (cloze, next-token prompt),
bottleneck adapters, prompt tuning's virtual tokens, mean pooling, explanations joined to the text - is refused
with the reason: the senti_lit artifact (`senti_lit.predict`) is then the deployable form.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from senti_lit.core.files import umask_mode, write_json
from senti_lit.inference.artifact import base_config, load_artifact
from senti_lit.models.heads import OneVsRestHead, VerbalizerHead
from senti_lit.models.methods import merge_lora

log = logging.getLogger(__name__)

EPS = 1e-4  # the tanh linear regime: relative error (EPS * |h|)^2 / 3


class NotExportable(ValueError):
    """The artifact's classifier has no plain transformers equivalent; the message says why."""


def check_exportable(model, meta: dict) -> None:
    why = None
    if isinstance(model.head, VerbalizerHead):
        why = "it reads label words off the language-model head (cloze / next-token prompt)"
    elif meta["method"].get("name") == "adapter":
        why = "its bottleneck adapters are senti_lit modules inside each transformer block"
    elif meta["method"].get("name") == "prompt_tuning":
        why = "prompt tuning prepends learned virtual tokens, which transformers models do not have"
    elif isinstance(model.head, OneVsRestHead):
        why = "its one-vs-rest head (a hidden layer per label) is no transformers classification head"
    elif meta["inputs"].get("prompt"):
        why = "it reads a prompt added to each text, which a text-classification pipeline would not add"
    elif meta["inputs"].get("knowledge"):
        why = "it reads an explanation joined to each text, which a text-classification pipeline cannot supply"
    elif model.head.pooling not in ("cls", "last"):
        why = f"its head pools with `{model.head.pooling}`, which no *ForSequenceClassification head does"
    if why:
        raise NotExportable(f"this model cannot be exported as a plain transformers model: {why}. Deploy the "
                            "senti_lit artifact itself: python -m senti_lit.predict artifact=...")


def to_hf(model, meta: dict):
    """A transformers *ForSequenceClassification model computing the artifact's calibrated logits."""
    check_exportable(model, meta)
    backbone = merge_lora(model.backbone)
    config = base_config(backbone).__class__.from_dict(base_config(backbone).to_dict())
    names = list(model.label_space.names)
    config.num_labels, config.id2label = len(names), dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}
    config.problem_type = "multi_label_classification" if model.label_space.multi_label else \
        "single_label_classification"
    config.senti_lit_thresholds = model.thresholds.tolist()  # the decision rule, for whoever serves the model
    hf = AutoModelForSequenceClassification.from_config(config).eval()
    missing, unexpected = hf.base_model.load_state_dict(backbone.state_dict(), strict=False)
    weight = model.head.out.weight.detach() / model.temperature
    bias = model.head.out.bias.detach() / model.temperature
    hidden = weight.size(1)
    with torch.no_grad():
        if model.head.pooling == "cls" and hasattr(hf.base_model, "pooler") and hasattr(hf, "classifier") \
                and hasattr(hf.classifier, "weight"):  # BERT family
            pooler = hf.base_model.pooler
            missing = [k for k in missing if not k.startswith("pooler.")]
            pooler.dense.weight.copy_(torch.eye(hidden) * EPS)
            pooler.dense.bias.zero_()
            hf.classifier.weight.copy_(weight / EPS)
            hf.classifier.bias.copy_(bias)
        elif model.head.pooling == "cls" and hasattr(getattr(hf, "classifier", None), "out_proj"):  # RoBERTa family
            hf.classifier.dense.weight.copy_(torch.eye(hidden) * EPS)
            hf.classifier.dense.bias.zero_()
            hf.classifier.out_proj.weight.copy_(weight / EPS)
            hf.classifier.out_proj.bias.copy_(bias)
        elif model.head.pooling == "last" and hasattr(hf, "score") and hasattr(hf.base_model, "ln_f"):  # GPT2
            hf.score.weight.copy_(weight)
            shift = torch.linalg.lstsq(weight, bias.unsqueeze(1)).solution.squeeze(1)  # weight @ shift = bias
            if not torch.allclose(weight @ shift, bias, atol=1e-5):
                raise NotExportable("the head's bias cannot be moved into the final layer norm (more labels than "
                                    "hidden units?); deploy the senti_lit artifact")
            hf.base_model.ln_f.bias.add_(shift)
        else:
            raise NotExportable(f"no transformers sequence-classification head of {config.model_type} matches "
                                f"`{model.head.pooling}` pooling; deploy the senti_lit artifact")
    if missing or unexpected:
        raise NotExportable(f"the backbone's weights do not fit {type(hf).__name__}: missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]}")
    return hf


@torch.no_grad()
def max_difference(model, hf, tokenizer, texts: list[str], max_length: int) -> float:
    """Largest probability difference between the artifact and the exported model on `texts`."""
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    ours = model.probabilities(model(batch["input_ids"], batch["attention_mask"]))
    logits = hf(**batch).logits.float()
    theirs = logits.sigmoid() if model.label_space.multi_label else logits.softmax(-1)
    return float((ours - theirs).abs().max())


def export_hf(artifact: str | Path, output: str | Path, probe_texts: list[str] | None = None,
              trust_remote_code: bool = False) -> Path:
    model, tokenizer, meta = load_artifact(artifact, trust_remote_code=trust_remote_code)
    hf = to_hf(model, meta)
    texts = probe_texts or ["这家酒店很干净，服务也好", "太差了，再也不来了", "The movie was fine.", "一般"]
    diff = max_difference(model, hf, tokenizer, texts, meta["inputs"]["max_length"])
    if diff > 1e-3:
        raise NotExportable(f"the exported model's probabilities differ from the artifact's by {diff:.2e}")
    output = Path(output)
    if output.exists():
        shutil.rmtree(output)
    hf.save_pretrained(output)
    umask_mode(*Path(output).glob("*.safetensors"))
    tokenizer.model_max_length = meta["inputs"]["max_length"]  # pipeline(..., truncation=True) cuts there
    tokenizer.save_pretrained(output)
    write_json(output / "senti_lit_export.json", {"artifact": str(Path(artifact).resolve()),
                                                  "max_probability_difference": diff,
                                                  "thresholds": model.thresholds.tolist(),
                                                  "temperature_folded_in": float(model.temperature)})
    log.info("exported to %s (max probability difference to the artifact on probe texts: %.1e)", output, diff)
    return output
