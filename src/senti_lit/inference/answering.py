"""Answering texts outside a server: every row of a file into a file of answers, or a loop on stdin
(`senti_lit.predict`)."""
from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from senti_lit.core.files import atomic_write
from senti_lit.data.sources import rows_to_predict
from senti_lit.inference.decisions import describe

if TYPE_CHECKING:  # either backend answers here; importing the torch one would cost the ONNX one seconds
    from senti_lit.inference.onnx_predictor import OnnxPredictor
    from senti_lit.inference.predictor import Predictor

QUIT = {"q", "quit", "exit"}


def check_output(source: Path, target: Path, overwrite: bool) -> None:
    """Before anything is predicted: the output is not the input, replaces an existing file only with `overwrite`,
    and its folder is writable (a run that fails to write loses nothing but seconds)."""
    if not source.is_file():
        raise FileNotFoundError(f"input={source}: no such file")
    if target.resolve() == source.resolve():
        raise ValueError(f"output={target} is the input file: its other fields would be lost; choose another "
                         "output (or leave output out: <input>.predictions.jsonl)")
    if target.exists() and not overwrite:
        raise FileExistsError(f"output={target} exists; set overwrite=true to replace it, or choose another output")
    if target.is_dir():
        raise IsADirectoryError(f"output={target} is a folder: give a file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    probe = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=True)
    probe.close()


def predict_file(predictor: Predictor | OnnxPredictor, source: Path, target: Path, text_column: str, batch_size: int,
                 top_k: int, overwrite: bool = False) -> list[tuple[str, str]]:
    """Every readable row of `source` predicted into `target` (JSON lines with the row's line number, or a table
    for a .csv/.tsv `target`: `render`); returns the
    skipped rows (file:line, reason), which are also printed. The file appears whole or not at all: written to a
    temporary file beside it, then moved into place; without `overwrite` it never replaces a file, not even one
    that another run wrote meanwhile."""
    check_output(source, target, overwrite)
    rows, skipped = rows_to_predict(source, text_column)
    knowledge = [ex.knowledge for ex in rows] if any(ex.knowledge is not None for ex in rows) else None
    answers = predictor.predict([ex.text for ex in rows], knowledge, batch_size, top_k, progress=True)
    publish(target, render(rows, answers, target.suffix.lower()), overwrite)
    print(f"{len(rows)} texts predicted -> {target}")
    if skipped:
        print(f"{source}: skipped {len(skipped)} rows: "
              + "; ".join(f"line {origin.rsplit(':', 1)[1]}: {why}" for origin, why in skipped[:20])
              + (" ..." if len(skipped) > 20 else ""), file=sys.stderr)
    return skipped


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP's CSV injection: a spreadsheet runs such a cell


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (`=HYPERLINK(...)`) prefixed with ' (numbers stay)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def render(rows: list, answers: list[dict[str, Any]], suffix: str) -> bytes:
    """JSON lines (every field of the answers), or for a .csv/.tsv output a table: line, text, label(s), confidence
    and each label's probability, text cells escaped against formula injection; UTF-8 with a byte-order mark so
    spreadsheet programs read Chinese."""
    if suffix not in (".csv", ".tsv"):
        return "".join(json.dumps({"line": ex.line, "text": ex.text, **answer}, ensure_ascii=False) + "\n"
                       for ex, answer in zip(rows, answers)).encode("utf-8")
    names = list(answers[0]["probs"]) if answers else []
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t" if suffix == ".tsv" else ",", lineterminator="\r\n")
    writer.writerow(["line", "text", "label", "confidence", *(f"p_{n}" for n in names)])
    for ex, a in zip(rows, answers):
        label = a["label"] if "label" in a else ";".join(a["labels"])
        writer.writerow([ex.line, *map(spreadsheet_safe, (ex.text, label)), a.get("confidence", ""),
                         *(a["probs"][n] for n in names)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def publish(target: Path, data: bytes, overwrite: bool) -> None:
    """`data` written whole into `target`: renamed into place (`overwrite`) or linked there, which fails if `target`
    appeared meanwhile (another run's output is never replaced silently)."""
    try:
        atomic_write(target, lambda f: f.write(data), replace=overwrite)
    except FileExistsError:
        raise FileExistsError(f"output={target} was written by another run while this one predicted; "
                              "set overwrite=true to replace it, or choose another output") from None


def repl(predictor: Predictor | OnnxPredictor, top_k: int) -> None:
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
