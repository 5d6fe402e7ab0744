"""The command modules as a user starts them (`python -m senti_lit.<cmd>`): a user error is one line, not a
traceback; `--help` and Tab completion import no torch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_user_error_is_one_message_not_a_traceback(tmp_path: Path):
    import os

    args = [sys.executable, "-m", "senti_lit.train", "data=csv", f"data.path={tmp_path / 'no_such.csv'}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 1
    assert "error: " in result.stderr and "no_such.csv: no such file or folder" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3
    full = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1 and "Traceback" in full.stderr


HEAVY = ("torch", "lightning", "transformers", "torchmetrics", "peft")


def test_help_and_tab_completion_import_no_torch():
    """Start-up: `--help` and each Tab of completion compose configs only, so no command module may import torch,
    transformers or Lightning at the top (they cost seconds; `python benchmarks/startup_bench.py` times them)."""
    commands = ["train", "predict", "evaluate", "export", "pretrain", "augment", "annotate", "report", "serve",
                "build_e5"]
    code = (f"import sys\nfor c in {commands}: __import__('senti_lit.' + c)\n"
            f"print(sorted(m for m in {HEAVY} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
