"""`python -m senti_lit.predict artifact=<run>/artifact`: an interactive loop, one `text=`, or a batch file.

    python -m senti_lit.predict artifact=logs/train/runs/<time>/artifact                 # type texts; q quits
    python -m senti_lit.predict artifact=... text="这家酒店很干净"                          # one answer
    python -m senti_lit.predict artifact=... input=reviews.csv output=preds.jsonl        # every row, all labels

Texts are encoded exactly as in training (the artifact's max_length, prompt, knowledge join), sorted by length
into batches (little padding) and run under bf16 autocast where the CPU/GPU supports it.
"""
from __future__ import annotations

import csv
import json
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import hydra
import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import track
from transformers import DataCollatorWithPadding

from senti_lit.artifact import load_artifact
from senti_lit.config import CONFIG_DIR, cpu_has_native_bf16
from senti_lit.data.encoding import encode
from senti_lit.data.knowledge import join_inputs, mask, word_pattern
from senti_lit.data.sources import DataError
from senti_lit.utils import plain, quiet_known_warnings

log = logging.getLogger(__name__)

QUIT = {"q", "quit", "exit"}


def bf16_supported(device: str) -> bool:
    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()


class Predictor:
    """A trained classifier from an artifact, with the decision rule and calibration it was saved with."""

    def __init__(self, model, tokenizer, meta: dict[str, Any], device: str = "cpu", precision: str = "32",
                 threshold: float | Sequence[float] | None = None) -> None:
        self.model, self.tokenizer, self.meta = model.to(device).eval(), tokenizer, meta
        self.device = device
        self.names = list(model.label_space.names)
        self.multi_label = model.label_space.multi_label
        if precision not in ("auto", "bf16", "32"):
            raise ValueError(f"precision must be auto, bf16 or 32, got {precision!r}")
        self.autocast = precision == "bf16" or (precision == "auto" and bf16_supported(device))
        self.inputs = meta["inputs"]
        knowledge = self.inputs.get("knowledge")
        self.knowledge_pattern = word_pattern(knowledge["mask_words"]) if knowledge else None
        self.collator = DataCollatorWithPadding(tokenizer)
        if threshold is not None:
            self.set_threshold(threshold)

    @classmethod
    def load(cls, folder: str | Path, **kwargs: Any) -> "Predictor":
        model, tokenizer, meta = load_artifact(folder)
        return cls(model, tokenizer, meta, **kwargs)

    def set_threshold(self, threshold: float | Sequence[float]) -> None:
        """Override the artifact's decision thresholds (binary: P(positive) cut; multi-label: one or one per label)."""
        from senti_lit.models.classifier import decision_thresholds

        values = plain(threshold)
        if self.multi_label or isinstance(values, (int, float)):
            new = decision_thresholds(self.model.label_space, values)
        else:
            raise ValueError(f"threshold={values}: give one number for a binary task")
        self.model.thresholds = new.to(self.model.thresholds.device)

    @torch.no_grad()
    def probabilities(self, texts: Sequence[str], knowledge: Sequence[str] | None = None, batch_size: int = 64,
                      progress: bool = False) -> torch.Tensor:
        """(len(texts), num_labels) calibrated probabilities, in input order."""
        spec = self.inputs.get("knowledge")
        if spec:
            explanations = [mask(k or "", self.knowledge_pattern)[0] for k in (knowledge or [""] * len(texts))]
            texts, pairs = join_inputs(list(texts), explanations, spec["join"], spec["template"])
        else:
            pairs = None
        encoded = encode(self.tokenizer, list(texts), None, self.inputs["max_length"], self.inputs.get("prompt"),
                         pairs)
        order = sorted(range(len(encoded)), key=lambda i: encoded.offsets[i + 1] - encoded.offsets[i])
        out = torch.empty(len(encoded), len(self.names))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        console = Console(stderr=True)  # stdout stays for the answers
        bar = track(batches, description="predicting", disable=not (progress and console.is_terminal),
                    transient=True, console=console)
        for rows in bar:
            batch = self.collator([encoded[i] for i in rows])
            with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.autocast):
                logits = self.model(batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device))
            out[rows] = self.model.probabilities(logits.float()).cpu()
        return out

    def predict(self, texts: Sequence[str], knowledge: Sequence[str] | None = None, batch_size: int = 64,
                top_k: int = 1, progress: bool = False) -> list[dict[str, Any]]:
        """One answer per text: `label` + `confidence` (single-label; `top` with top_k > 1) or `labels`
        (multi-label), and `probs` for every label."""
        if not texts:
            return []
        probs = self.probabilities(texts, knowledge, batch_size, progress)
        decided = self.model.decide(probs.to(self.model.thresholds.device)).cpu()
        answers = []
        for p, d in zip(probs.tolist(), decided.tolist()):
            answer: dict[str, Any] = {"probs": {n: round(v, 6) for n, v in zip(self.names, p)}}
            if self.multi_label:
                answer["labels"] = [n for n, on in zip(self.names, d) if on]
            else:
                answer["label"], answer["confidence"] = self.names[d], round(p[d], 6)
                if top_k > 1:
                    ranked = sorted(zip(self.names, p), key=lambda x: -x[1])[:top_k]
                    answer["top"] = [[n, round(v, 6)] for n, v in ranked]
            answers.append(answer)
        return answers


def describe(answer: dict[str, Any]) -> str:
    """The answer as a line: `positive (confidence 0.98)`, with the runners-up or every label that is on."""
    if "labels" in answer:
        probs = answer["probs"]
        if not answer["labels"]:
            top = max(probs, key=probs.get)
            return f"no label (likeliest: {top} {probs[top]:.2f})"
        return ", ".join(answer["labels"]) + " (" + ", ".join(f"{n} {probs[n]:.2f}" for n in answer["labels"]) + ")"
    line = f"{answer['label']} (confidence {answer['confidence']:.2f})"
    if len(answer.get("top", [])) > 1:
        line += "; then " + ", ".join(f"{n} {p:.2f}" for n, p in answer["top"][1:])
    return line


# -- batch input ------------------------------------------------------------------------------------------------
@dataclass
class Rows:
    """Readable rows of an input file (line number, text, knowledge) and the skipped ones with their reason."""
    rows: list[tuple[int, str, str | None]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def read_input(path: Path, text_column: str = "text") -> Rows:
    """.txt: a text per line; .csv/.tsv: a header with `text_column` (and optionally `knowledge`); .jsonl: objects
    with `text` (and optionally `knowledge`). Empty or malformed rows are skipped and reported by line."""
    if not path.is_file():
        raise DataError(f"input={path}: file not found")
    suffix, result = path.suffix.lower(), Rows()
    lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    if suffix in (".csv", ".tsv"):
        yield_rows = _table_rows(path, lines, text_column, "\t" if suffix == ".tsv" else ",")
    elif suffix == ".jsonl":
        yield_rows = _jsonl_rows(lines)
    elif suffix == ".txt":
        yield_rows = ((n, line.rstrip("\r\n"), None) for n, line in enumerate(lines, start=1))
    else:
        raise DataError(f"input={path}: unknown format {suffix!r}; use .txt (a text per line), .csv/.tsv (a "
                        f"'{text_column}' column) or .jsonl ({{\"text\": ...}} per line)")
    for number, text, knowledge in yield_rows:
        if isinstance(text, Exception):
            result.skipped.append((number, str(text)))
        elif not text.strip():
            result.skipped.append((number, "empty text"))
        else:
            result.rows.append((number, text, knowledge))
    return result


def _jsonl_rows(lines: list[str]) -> Iterator[tuple[int, Any, str | None]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            yield number, "", None
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            yield number, ValueError(f"not JSON ({e.msg})"), None
            continue
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            yield number, ValueError("expected an object with a string 'text'"), None
            continue
        yield number, row["text"], row.get("knowledge")


def _table_rows(path: Path, lines: list[str], column: str, delimiter: str) -> Iterator[tuple[int, Any, str | None]]:
    reader = csv.reader(lines, delimiter=delimiter)
    header = next(reader, [])
    if column not in header:
        raise DataError(f"input={path}: no '{column}' column in the header {header}; set text_column=<its name>")
    at, knowledge_at = header.index(column), header.index("knowledge") if "knowledge" in header else None
    end = reader.line_num
    for fields in reader:
        start, end = end + 1, reader.line_num
        number = start
        if end > start and any("\n" in f for f in fields):  # never merge rows silently
            yield number, ValueError(f"a quoted field runs from line {start} to {end} (an unclosed quote?)"), None
            continue
        if len(fields) != len(header):
            yield number, ValueError(f"{len(fields)} fields, the header has {len(header)}"), None
            continue
        yield number, fields[at], fields[knowledge_at] if knowledge_at is not None else None


def predict_file(predictor: Predictor, source: Path, target: Path, text_column: str, batch_size: int,
                 top_k: int) -> Rows:
    rows = read_input(source, text_column)
    knowledge = [k for _, _, k in rows.rows] if any(k is not None for _, _, k in rows.rows) else None
    answers = predictor.predict([t for _, t, _ in rows.rows], knowledge, batch_size, top_k, progress=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as f:
        for (number, text, _), answer in zip(rows.rows, answers):
            f.write(json.dumps({"line": number, "text": text, **answer}, ensure_ascii=False) + "\n")
    print(f"{len(rows.rows)} texts predicted -> {target}")
    if rows.skipped:
        print(f"{source}: skipped {len(rows.skipped)} rows: "
              + "; ".join(f"line {n}: {why}" for n, why in rows.skipped[:20])
              + (" ..." if len(rows.skipped) > 20 else ""), file=sys.stderr)
    return rows


def repl(predictor: Predictor, top_k: int) -> None:
    """Read texts from stdin until q/quit/exit or end of input; blank lines are ignored."""
    print(f"senti_lit: labels {', '.join(predictor.names)}. Type a text (q to quit).")
    while True:
        try:
            line = input("> " if sys.stdin.isatty() else "")
        except (EOFError, KeyboardInterrupt):
            print()
            return
        text = line.strip()
        if not text:
            continue
        if text.lower() in QUIT:
            return
        print(describe(predictor.predict([text], top_k=top_k)[0]))


FREE_TEXT_KEYS = ("text", "input", "output", "artifact")


def quote_free_text(argv: list[str]) -> list[str]:
    """`text=这家酒店很好` as typed: Hydra's override grammar rejects unquoted non-ASCII, spaces and commas, so
    the values of the free-text keys are quoted for it (an already quoted value is left alone)."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in FREE_TEXT_KEYS and not (len(value) > 1 and value[0] == value[-1] and value[0] in "'\""):
            # Hydra reads backslashes literally except before a quote or the closing quote
            value = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value).replace("'", "\\'")
            arg = f"{key}='{value}'"
        out.append(arg)
    return out


def main() -> None:
    sys.argv = [sys.argv[0], *quote_free_text(sys.argv[1:])]
    run()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def run(cfg: DictConfig) -> None:
    quiet_known_warnings()
    predictor = Predictor.load(cfg.artifact, device=cfg.device, precision=str(cfg.precision),
                               threshold=cfg.threshold)
    if cfg.input:
        source = Path(cfg.input)
        target = Path(cfg.output) if cfg.output else source.with_suffix(".predictions.jsonl")
        predict_file(predictor, source, target, cfg.text_column, cfg.batch_size, cfg.top_k)
    elif cfg.text is not None:
        print(describe(predictor.predict([str(cfg.text)], top_k=cfg.top_k)[0]))
    else:
        repl(predictor, cfg.top_k)


if __name__ == "__main__":
    main()
