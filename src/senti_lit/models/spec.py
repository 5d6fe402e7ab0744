"""ModelSpec: a classifier as plain values (backbone, method, head/verbalizer/loss/decision settings), resolved
from the `model` config once; `models.builder.build_classifier` turns it into a model, in training and again
from an artifact (which stores the spec)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from senti_lit.data.cleaning import label_histogram
from senti_lit.data.examples import Example
from senti_lit.data.labels import LabelSpace

log = logging.getLogger(__name__)

# model config keys that are SentimentClassifier settings (stored in the artifact)
CLASSIFIER_KEYS = ("scheduler", "head", "label_smoothing", "token_dropout", "loss", "verbalizer", "threshold",
                   "positive_label", "multilabel", "head_lr")
# model config keys read by training only: the tokenizer and prompt (they make the InputSpec), the MLM warm-up,
# the optimiser, torch.compile
TRAINING_KEYS = ("tokenizer", "prompt", "chat", "mlm_warmup", "optimizer", "compile", "embedding_rows")
# what an artifact needs to rebuild the backbone (its weights, or its architecture, come from the artifact)
BACKBONE_KEYS = ("path", "lm_head", "model_kwargs")


@dataclass
class ModelSpec:
    backbone: dict[str, Any]  # models.backbone.build_backbone's arguments
    method: dict[str, Any] = field(default_factory=lambda: {"name": "full"})  # models.methods.apply_method's
    classifier: dict[str, Any] = field(default_factory=dict)  # SentimentClassifier's settings

    def to_dict(self) -> dict[str, Any]:
        """What an artifact stores (artifact.json's `backbone`, `method`, `classifier`)."""
        backbone = {k: self.backbone.get(k) for k in BACKBONE_KEYS}
        backbone["model_kwargs"] = backbone["model_kwargs"] or {}
        return {"backbone": backbone, "method": self.method, "classifier": self.classifier}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelSpec":
        return cls(dict(values["backbone"]), dict(values.get("method") or {"name": "full"}),
                   dict(values.get("classifier") or {}))


def model_spec(model: Mapping[str, Any], label_space: LabelSpace, train: Sequence[Example], tokenizer: Any,
               prompt_is_template: bool) -> ModelSpec:
    """The spec of `model` (the plain `model` config) for this task: `loss.class_weights: balanced` becomes weights
    from the `train` split, the verbalizer's label words become token ids of `tokenizer`. Unknown keys fail."""
    check_model_keys(model)
    classifier = {k: model[k] for k in CLASSIFIER_KEYS if k in model}
    loss = dict(classifier.get("loss") or {})
    if loss.get("class_weights") == "balanced":
        loss["class_weights"] = balanced_weights(label_space, train)
        log.info("class weights (balanced on the training split): %s", loss["class_weights"])
    if loss:
        classifier["loss"] = loss
    if classifier.get("verbalizer"):
        classifier["verbalizer"] = {**verbalizer_ids(tokenizer, label_space, **classifier["verbalizer"]),
                                    # a pair encoding appends [SEP] after the prompt; a template ends at the answer
                                    "skip_trailing_special": not prompt_is_template}
    return ModelSpec(dict(model["backbone"]), dict(model.get("method") or {"name": "full"}), classifier)


def check_model_keys(model: Mapping[str, Any]) -> None:
    """Every key of a `model` config is read by someone: a misspelt or leftover key fails instead of being ignored."""
    unknown = sorted(set(model) - {"backbone", "method", *CLASSIFIER_KEYS, *TRAINING_KEYS})
    if unknown:
        raise ValueError(f"model.{unknown[0]} is not a model setting (unknown: {unknown}); model settings are "
                         f"backbone, method, {', '.join(CLASSIFIER_KEYS + TRAINING_KEYS)}")


def verbalizer_ids(tokenizer, label_space: LabelSpace, words: Mapping[str, str], position: str = "mask") -> dict:
    """The vocabulary id of each label's word (its first token), in label order, for VerbalizerHead."""
    missing = [name for name in label_space.names if name not in words]
    if missing:
        raise ValueError(f"model.verbalizer.words has no word for {missing}; add one per label")
    ids = []
    for name in label_space.names:
        tokens = tokenizer(words[name], add_special_tokens=False)["input_ids"]
        if not tokens or tokens[0] == tokenizer.unk_token_id:
            raise ValueError(f"model.verbalizer.words: {words[name]!r} ({name}) is not in the tokenizer's vocabulary")
        if len(tokens) > 1:
            log.info("verbalizer: %r (%s) is %d tokens; its first token scores the label", words[name], name,
                     len(tokens))
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"model.verbalizer.words: two labels share a first token ({dict(zip(label_space.names, ids))})")
    return {"token_ids": ids, "position": position, "mask_token_id": tokenizer.mask_token_id,
            "special_ids": list(tokenizer.all_special_ids)}


def balanced_weights(label_space: LabelSpace, train: Sequence[Example]) -> list[float]:
    """Inverse label frequency on the training split, mean 1 (multi-label: negatives / positives per label)."""
    counts = label_histogram(train)
    names, n = label_space.names, len(train)
    if label_space.multi_label:
        return [round((n - counts.get(l, 0)) / max(counts.get(l, 0), 1), 4) for l in names]
    return [round(n / (len(names) * max(counts.get(l, 0), 1)), 4) for l in names]

