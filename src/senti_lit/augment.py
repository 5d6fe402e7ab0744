"""`python -m senti_lit.augment data=... lm.path=...`: synthetic training texts from a causal LM, filtered by a
trained classifier, written as a CSV that `data.augment.path` mixes into the training split
(how: `senti_lit.training.augmentation`).
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from senti_lit.core.command_line import check_command_line
from senti_lit.core.config import CONFIG_DIR
from senti_lit.core.runtime import user_errors


def main() -> None:
    sys.argv[1:] = check_command_line("augment", sys.argv[1:])  # a typo: one line, "did you mean"; fast --help
    run()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="augment")
@user_errors
def run(cfg: DictConfig) -> None:
    # imported here: `--help` and Tab completion answer without loading torch, transformers and Lightning (seconds)
    from senti_lit.training.augmentation import run

    run(cfg)


if __name__ == "__main__":
    main()
