"""`python -m senti_lit.predict artifact=<run>/artifact`: an interactive loop, one `text=`, or a batch file.

    python -m senti_lit.predict artifact=logs/train/runs/<time>/artifact                 # type texts; q quits
    python -m senti_lit.predict artifact=... text="这家酒店很干净"                          # one answer
    python -m senti_lit.predict artifact=... input=reviews.csv output=preds.jsonl        # every row, all labels
    python -m senti_lit.predict artifact=<run>/export-onnx text="很好"                  # ONNX export: no torch

Texts are encoded exactly as in training (the artifact's max_length, prompt, knowledge join), sorted by length
into batches (little padding) and run under bf16 autocast where the CPU/GPU supports it. `backend=auto` answers
from an ONNX export (`senti_lit.export ... format=onnx`: a folder with onnx.json) with onnxruntime, without importing
torch, transformers or Lightning.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from senti_lit.core.flat_config import CONFIG_DIR, flat_config
from senti_lit.core.runtime import quiet_known_warnings, user_errors

if TYPE_CHECKING:
    from omegaconf import DictConfig

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
    # plain key=value settings: the config without Hydra (its import and composition were ~0.5 s of a one-text
    # answer); predict keeps no run folder and no log, so nothing of the Hydra app is missed
    cfg = flat_config("predict", sys.argv[1:], FREE_TEXT_KEYS)
    if cfg is None:  # anything else: Hydra's checks; plain overrides are composed once, not twice more by the app
        from senti_lit.core.command_line import checked_config

        args, cfg = checked_config("predict", quote_free_text(sys.argv[1:]))
    if cfg is not None:
        predict(cfg)
        return
    sys.argv = [sys.argv[0], *args]
    run()


def run() -> None:
    """The Hydra app (flags such as --cfg job, hydra.* settings): imported only here."""
    import hydra

    hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")(predict)()


@user_errors
def predict(cfg: DictConfig) -> None:
    # imported here: `--help` and Tab completion answer without loading torch and transformers (seconds)
    from senti_lit.data.cleaning import is_blank
    from senti_lit.inference.answering import check_output, predict_file, repl

    quiet_known_warnings()
    if cfg.text is not None and cfg.input is None and is_blank(str(cfg.text)):
        raise SystemExit("text= is empty (or only invisible characters): give a text to classify "
                         "(text=\"这家酒店很干净\"), input=FILE, or neither for the interactive loop")
    if cfg.input:
        source = Path(cfg.input)
        # the input's own suffix stays in the default name: reviews.csv and reviews.jsonl never share an output
        target = Path(cfg.output) if cfg.output else source.with_name(f"{source.name}.predictions.jsonl")
        check_output(source, target, cfg.overwrite)  # before the model loads: a wrong output costs no minutes
    from senti_lit.inference.decisions import describe
    from senti_lit.inference.onnx_predictor import load_predictor

    predictor = load_predictor(cfg.artifact, cfg.backend, device=cfg.device, threads=cfg.threads,
                               threshold=cfg.threshold, precision=cfg.precision,
                               trust_remote_code=cfg.trust_remote_code)
    if cfg.input:
        predict_file(predictor, source, target, cfg.text_column, cfg.batch_size, cfg.top_k, cfg.overwrite)
    elif cfg.text is not None:
        print(describe(predictor.predict([str(cfg.text)], top_k=cfg.top_k)[0]))
    else:
        repl(predictor, cfg.top_k)


if __name__ == "__main__":
    main()
