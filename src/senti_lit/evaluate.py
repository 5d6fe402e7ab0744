"""`python -m senti_lit.evaluate artifacts=[A,B] datasets=[weibo,chnsenticorp]`: every model on every dataset's
test split -> the train-set x test-set accuracy matrix (the course report's cross-dataset table, §3.4.1).

Each dataset is composed from its own data config (its files, aliases and seeded split, so a model's own dataset
gives its in-domain test split on the diagonal). A dataset's labels are mapped into a model's label space by name,
through the model's training aliases and `label_map`; examples whose label has no place in the model's space are
left out of that cell and reported with their counts (`absent`), never mapped to something else. Written to the
run dir: matrix.csv, matrix.md, matrix.png (heatmap) and evaluate.json (counts per cell).
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from senti_lit.core.command_line import check_command_line
from senti_lit.core.config import CONFIG_DIR
from senti_lit.core.runtime import user_errors
from senti_lit.inference.evaluation import run as evaluate


def main() -> None:
    sys.argv[1:] = check_command_line("evaluate", sys.argv[1:])  # a typo: one line, "did you mean"; fast --help
    run()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
@user_errors
def run(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
