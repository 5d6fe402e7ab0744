"""`python -m senti_lit.report <multirun dir>`: every job of a sweep in one table (overrides, status, best val
metric, test metrics, duration) and mean ± std over seeds per configuration; printed, and saved as CSV and Markdown
in the sweep dir. `ReportCallback` writes it at the end of every multirun."""
from __future__ import annotations

import argparse
from pathlib import Path

from senti_lit.training.sweep_report import job_dirs, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (logs/<task>/multiruns/<time>)")
    args = parser.parse_args()
    if not args.sweep_dir.is_dir() or not job_dirs(args.sweep_dir):
        raise SystemExit(f"{args.sweep_dir}: no jobs here (expected <job>/.hydra/overrides.yaml)")
    write_report(args.sweep_dir)


if __name__ == "__main__":
    main()
