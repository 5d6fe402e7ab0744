"""`python -m senti_lit.export artifact=<run>/artifact format=hf|onnx [quantize=int8] [output=DIR]`:
- format=hf: a plain transformers model directory that `transformers.pipeline("text-classification", model=DIR)`
  loads, with senti_lit's calibrated probabilities (how, and what cannot be exported:
  `senti_lit.inference.hf_export`);
- format=onnx: a self-contained folder (model.onnx, tokenizer/, onnx.json) that `senti_lit.predict` and
  `senti_lit.evaluate` answer from without torch (`backend=onnx`; how, and what is refused:
  `senti_lit.inference.onnx_export`); quantize=int8 quantises its weights.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from senti_lit.core.command_line import check_command_line
from senti_lit.core.config import CONFIG_DIR
from senti_lit.core.runtime import quiet_known_warnings, user_errors

FORMATS = ("hf", "onnx")


def main() -> None:
    sys.argv[1:] = check_command_line("export", sys.argv[1:])  # a typo: one line, "did you mean"; fast --help
    run()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
@user_errors
def run(cfg: DictConfig) -> None:
    if cfg.format not in FORMATS:
        raise SystemExit(f"format={cfg.format}: must be hf (a transformers model directory) or onnx (a folder that "
                         "senti_lit.predict answers from without torch)")
    if cfg.quantize is not None and cfg.format != "onnx":
        raise SystemExit(f"quantize={cfg.quantize}: only format=onnx is quantised")
    # imported here: `--help` and Tab completion answer without loading torch and transformers (seconds)
    from senti_lit.inference.hf_export import NotExportable, export_hf

    quiet_known_warnings()
    try:
        if cfg.format == "onnx":
            export_onnx_folder(cfg)
            return
        output = cfg.output or str(Path(cfg.artifact).parent / "export-hf")
        path = export_hf(cfg.artifact, output, trust_remote_code=cfg.trust_remote_code)
    except NotExportable as e:
        raise SystemExit(f"senti_lit.export: {e}") from None
    print(f"exported to {path}\n  from transformers import pipeline\n  pipeline('text-classification', "
          f"model='{path}', top_k=None)(texts, truncation=True)")


def export_onnx_folder(cfg: DictConfig) -> None:
    from senti_lit.inference.onnx_export import export_onnx

    quantize = None if cfg.quantize is None else str(cfg.quantize)
    name = "export-onnx" + (f"-{quantize}" if quantize else "")
    output = cfg.output or str(Path(cfg.artifact).parent / name)
    path, check = export_onnx(cfg.artifact, output, quantize, trust_remote_code=cfg.trust_remote_code)
    print(f"exported to {path} (checked on {check['texts']}: largest probability difference to the torch model "
          f"{check['max_probability_difference']:.1e}, answers agree on {check['answers_agree']:.1%})")
    if quantize:
        print(f"  int8 vs torch: {check['metric']} {check['onnx']:.4f} vs {check['torch']:.4f} "
              f"(difference {check['difference']:+.4f})")
    print(f"  python -m senti_lit.predict artifact={path} text=...   (backend=auto picks onnx: no torch)")


if __name__ == "__main__":
    main()
