"""The body of `POST /predict` and the limits it is checked against.

FastAPI validates the body against `PredictRequest` in the HTTP process, before the request is queued for the model:
LitServe batches requests and a request that failed inside a worker would fail its whole batch, so nothing that a
client can get wrong may reach the worker. Errors are pydantic errors; `app.py` answers them 422 (413 for the
size limits, whose error type is `LIMIT`).

The limits belong to one server (its config and its model's task), but the request object must pickle by reference
into LitServe's worker queue, so they are a class attribute set by `configure` before the HTTP processes fork.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from senti_lit.data.cleaning import is_blank, lone_surrogate

LIMIT = "request_too_large"  # the pydantic error type of max_texts / max_chars: answered 413, not 422


@dataclass(frozen=True)
class Limits:
    """max_texts: texts per request. max_chars: characters per request (texts and knowledge together). Texts longer
    than the model's `max_length` tokens are not refused: they are truncated as in training, and the answer says so."""

    max_texts: int = 256
    max_chars: int = 200_000
    max_length: int = 128      # the model's, from the artifact: reported, not enforced here
    labels: tuple[str, ...] = ()
    multi_label: bool = False
    knowledge: bool = False    # the model reads an explanation per text (knowledge-augmented)

    @classmethod
    def for_artifact(cls, meta: Mapping[str, Any], max_texts: int, max_chars: int) -> "Limits":
        if max_texts < 1 or max_chars < 1:
            raise ValueError(f"max_texts={max_texts} and max_chars={max_chars} must be at least 1")
        return cls(max_texts=int(max_texts), max_chars=int(max_chars), max_length=int(meta["inputs"]["max_length"]),
                   labels=tuple(meta["labels"]["names"]), multi_label=bool(meta["labels"].get("multi_label")),
                   knowledge=bool(meta["inputs"].get("knowledge")))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k in ("max_texts", "max_chars", "max_length")}


def invalid(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


class PredictRequest(BaseModel):
    """One text (`text`) or several (`texts`); optional `knowledge` (knowledge-augmented models only), `top_k`
    (single-label: also the runners-up) and `threshold` (this request's decision rule)."""

    # unknown fields are an error (a misspelt `threshhold` must not be ignored); no silent type coercion ("3" -> 3)
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"text": "这家酒店很干净"}, {"texts": ["The room was clean.", "服务太差了"], "top_k": 2}]})

    limits: ClassVar[Limits] = Limits()

    text: str | None = Field(None, description="one text; the answer is one prediction")
    texts: list[str] | None = Field(None, description="several texts; the answer is {\"predictions\": [...]}")
    knowledge: str | list[str | None] | None = Field(
        None, description="knowledge-augmented models: an explanation per text (a string with `text`, a list with "
                          "`texts`)")
    top_k: int = Field(1, ge=1, description="single-label tasks: also return the next likeliest labels")
    threshold: float | list[float] | None = Field(
        None, description="binary: the P(positive) cut; multi-label: one cut, or one per label; default: the "
                          "artifact's calibrated rule")

    @classmethod
    def configure(cls, limits: Limits) -> None:
        cls.limits = limits

    @property
    def items(self) -> list[str]:
        """The request's texts, one or many."""
        return [self.text] if self.text is not None else list(self.texts or [])

    @property
    def explanations(self) -> list[str | None] | None:
        if self.knowledge is None:
            return None
        return [self.knowledge] if isinstance(self.knowledge, str) else list(self.knowledge)

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        """Checks whose cost does not grow with a hostile body, before pydantic validates field by field (which
        would make, and the answer would list, one error per unknown key or per non-text item): unknown keys, the
        number of texts, and each item's type, each reported once."""
        if not isinstance(data, dict):
            return data  # pydantic's own error: not an object
        unknown = [k for k in data if k not in cls.model_fields]
        if unknown:
            shown = ", ".join(repr(k)[:40] for k in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5
                                                                     else "")
            fields = "field" if len(unknown) == 1 else "fields"
            raise invalid("unknown_fields", f"unknown {fields} {shown} (the fields are {', '.join(cls.model_fields)})")
        texts = data.get("texts")
        if isinstance(texts, list):
            if len(texts) > cls.limits.max_texts:
                raise invalid(LIMIT, f"{len(texts)} texts in one request; this server takes at most "
                                     f"max_texts={cls.limits.max_texts}: split them over several requests")
            wrong = [i for i, t in enumerate(texts) if not isinstance(t, str)]
            if wrong:
                more = f" (and {len(wrong) - 1} more item{'s' if len(wrong) > 2 else ''})" if len(wrong) > 1 else ""
                raise invalid("text_type", f"texts[{wrong[0]}] is not a string but {type(texts[wrong[0]]).__name__}"
                                           + more)
        return data

    @model_validator(mode="after")
    def _check(self) -> "PredictRequest":
        limits = self.limits
        if (self.text is None) == (self.texts is None):
            raise invalid("text_or_texts", "give either \"text\": \"...\" or \"texts\": [\"...\", ...], not both "
                                           "and not neither")
        texts = self.items
        if not texts:
            raise invalid("no_texts", "\"texts\" is empty: give at least one text")
        if len(texts) > limits.max_texts:
            raise invalid(LIMIT, f"{len(texts)} texts in one request; this server takes at most "
                                 f"max_texts={limits.max_texts}: split them over several requests")
        for i, text in enumerate(texts):
            where = "\"text\"" if self.text is not None else f"texts[{i}]"
            if lone_surrogate(text) is not None:
                raise invalid("not_text", f"{where} holds a lone UTF-16 surrogate (a \\ud800-style escape without "
                                          f"its pair) at character {lone_surrogate(text)}: not text")
            if is_blank(text):
                raise invalid("empty_text", f"{where} is empty or only whitespace, control or zero-width characters: "
                                            "nothing to classify")
        for i, explanation in enumerate(self.explanations or []):
            if explanation is not None and lone_surrogate(explanation) is not None:
                raise invalid("not_text", f"knowledge[{i}] holds a lone UTF-16 surrogate: not text")
        self._check_knowledge(texts)
        chars = sum(map(len, texts)) + sum(len(k or "") for k in self.explanations or [])
        if chars > limits.max_chars:
            raise invalid(LIMIT, f"{chars} characters in one request; this server takes at most "
                                 f"max_chars={limits.max_chars}: split them over several requests")
        self._check_threshold()
        return self

    def _check_knowledge(self, texts: list[str]) -> None:
        if self.knowledge is None:
            return
        if not self.limits.knowledge:
            raise invalid("knowledge_unused", "this model reads no knowledge: leave \"knowledge\" out")
        if self.text is not None and not isinstance(self.knowledge, str):
            raise invalid("knowledge_shape", "with \"text\", \"knowledge\" is one string")
        if self.texts is not None and (isinstance(self.knowledge, str) or len(self.knowledge) != len(texts)):
            raise invalid("knowledge_shape", f"with \"texts\", \"knowledge\" is a list of {len(texts)} strings "
                                             "(or nulls), one per text")

    def _check_threshold(self) -> None:
        value, labels = self.threshold, self.limits.labels
        if value is None:
            return
        if self.limits.multi_label:
            values = [value] if isinstance(value, (int, float)) else value
            if isinstance(value, list) and len(values) != len(labels):
                raise invalid("threshold", f"\"threshold\": one number, or {len(labels)} (one per label "
                                           f"{list(labels)}); got {len(values)}")
            if not all(0.0 <= v <= 1.0 for v in values):
                raise invalid("threshold", "\"threshold\" values are probabilities, from 0 to 1")
        elif len(labels) != 2:
            raise invalid("threshold", f"this task predicts the likeliest of {len(labels)} labels: it takes no "
                                       "\"threshold\" (thresholds are for binary and multi-label tasks)")
        elif not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
            raise invalid("threshold", "binary task: \"threshold\" is one number between 0 and 1 (the P(positive) "
                                       "cut)")
