"""Answering texts outside a server: every row of a file into a file of answers, or a loop on stdin
(`senti_lit.predict`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from senti_lit.data.sources import rows_to_predict
from senti_lit.inference.predictor import Predictor, describe

QUIT = {"q", "quit", "exit"}


def predict_file(predictor: Predictor, source: Path, target: Path, text_column: str, batch_size: int,
                 top_k: int) -> list[tuple[str, str]]:
    """Every readable row of `source` predicted into `target` (JSON lines with the row's line number); returns the
    skipped rows (file:line, reason), which are also printed."""
    rows, skipped = rows_to_predict(source, text_column)
    knowledge = [ex.knowledge for ex in rows] if any(ex.knowledge is not None for ex in rows) else None
    answers = predictor.predict([ex.text for ex in rows], knowledge, batch_size, top_k, progress=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as f:
        for ex, answer in zip(rows, answers):
            f.write(json.dumps({"line": ex.line, "text": ex.text, **answer}, ensure_ascii=False) + "\n")
    print(f"{len(rows)} texts predicted -> {target}")
    if skipped:
        print(f"{source}: skipped {len(skipped)} rows: "
              + "; ".join(f"line {origin.rsplit(':', 1)[1]}: {why}" for origin, why in skipped[:20])
              + (" ..." if len(skipped) > 20 else ""), file=sys.stderr)
    return skipped


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
