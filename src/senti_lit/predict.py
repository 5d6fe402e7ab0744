"""`python -m senti_lit.predict artifact=<run>/artifact`: an interactive loop, one `text=`, or a batch file.

    python -m senti_lit.predict artifact=logs/train/runs/<time>/artifact                 # type texts; q quits
    python -m senti_lit.predict artifact=... text="这家酒店很干净"                          # one answer
    python -m senti_lit.predict artifact=... input=reviews.csv output=preds.jsonl        # every row, all labels

Texts are encoded exactly as in training (the artifact's max_length, prompt, knowledge join), sorted by length
into batches (little padding) and run under bf16 autocast where the CPU/GPU supports it.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from senti_lit.config import CONFIG_DIR
from senti_lit.data.sources import rows_to_predict
from senti_lit.runtime import quiet_known_warnings, user_errors

if TYPE_CHECKING:
    from senti_lit.inference.predictor import Predictor

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
    from senti_lit.inference.predictor import (
        describe,  # loaded with the predictor already
    )

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
@user_errors
def run(cfg: DictConfig) -> None:
    # imported here: `--help` and Tab completion answer without loading torch and transformers (seconds)
    from senti_lit.inference.predictor import Predictor, describe

    quiet_known_warnings()
    predictor = Predictor.load(cfg.artifact, device=cfg.device, precision=str(cfg.precision),
                               threshold=cfg.threshold, trust_remote_code=cfg.trust_remote_code)
    if cfg.input:
        source = Path(cfg.input)
        # the input's own suffix stays in the default name: reviews.csv and reviews.jsonl never share an output
        target = Path(cfg.output) if cfg.output else source.with_name(f"{source.name}.predictions.jsonl")
        predict_file(predictor, source, target, cfg.text_column, cfg.batch_size, cfg.top_k)
    elif cfg.text is not None:
        if not str(cfg.text).strip():
            raise SystemExit("text= is empty: give a text to classify (text=\"这家酒店很干净\"), input=FILE, or "
                             "neither for the interactive loop")
        print(describe(predictor.predict([str(cfg.text)], top_k=cfg.top_k)[0]))
    else:
        repl(predictor, cfg.top_k)


if __name__ == "__main__":
    main()
