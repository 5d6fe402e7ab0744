"""`python -m senti_lit.export artifact=<run>/artifact format=hf [output=DIR]`: a plain transformers model directory
that `transformers.pipeline("text-classification", model=DIR)` loads, with senti_lit's calibrated probabilities
(how, and what cannot be exported: `senti_lit.inference.hf_export`).
"""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from senti_lit.core.config import CONFIG_DIR
from senti_lit.core.runtime import quiet_known_warnings, user_errors


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
@user_errors
def main(cfg: DictConfig) -> None:
    # imported here: `--help` and Tab completion answer without loading torch and transformers (seconds)
    from senti_lit.inference.hf_export import NotExportable, export_hf

    quiet_known_warnings()
    if cfg.format != "hf":
        raise SystemExit(f"format={cfg.format}: only format=hf (a transformers model directory) is supported")
    output = cfg.output or str(Path(cfg.artifact).parent / "export-hf")
    try:
        path = export_hf(cfg.artifact, output, trust_remote_code=cfg.trust_remote_code)
    except NotExportable as e:
        raise SystemExit(f"senti_lit.export: {e}") from None
    print(f"exported to {path}\n  from transformers import pipeline\n  pipeline('text-classification', "
          f"model='{path}', top_k=None)(texts, truncation=True)")


if __name__ == "__main__":
    main()
