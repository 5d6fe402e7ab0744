"""`python -m senti_lit.serve artifact=<run>/artifact`: the model behind an HTTP API with dynamic batching, and a
web page to try it (docs/serving.md).

    python -m senti_lit.serve artifact=logs/train/runs/<time>/artifact                    # http://127.0.0.1:8000/
    python -m senti_lit.serve artifact=... port=9000 max_batch_size=16 workers=2
    python -m senti_lit.serve artifact=logs/train/runs/<time>/export-onnx                 # onnxruntime, no torch
    curl -s 127.0.0.1:8000/predict -H 'Content-Type: application/json' -d '{"text": "这家酒店很干净"}'

The server itself is senti_lit.serving (LitServe); this module only reads the config.
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from senti_lit.core.command_line import check_command_line
from senti_lit.core.config import CONFIG_DIR, plain
from senti_lit.core.runtime import limit_onednn_cache, quiet_known_warnings, user_errors
from senti_lit.serving.options import ServeOptions  # also registers conf/serve.yaml's schema


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="serve")
@user_errors
def run(cfg: DictConfig) -> None:
    quiet_known_warnings()
    limit_onednn_cache()  # every request batch has its own length: a cached primitive per shape would only grow
    try:
        from senti_lit.serving.app import serve
    except ImportError as e:
        raise SystemExit(f"error: serving needs the serve extra ({e.name} is missing): "
                         "pip install 'senti_lit[serve]' (make install installs it)") from None
    serve(ServeOptions.of(plain(cfg)))


def main() -> None:
    sys.argv[1:] = check_command_line("serve", sys.argv[1:])  # a typo: one line with a "did you mean", exit 1
    run()


if __name__ == "__main__":
    main()
