"""`python -m senti_lit.pretrain`: masked-LM pretraining of a from-scratch backbone on any data config's texts
(labels ignored) or a plain text file; writes `<run>/pretrained/` (weights + tokenizer) for
`python -m senti_lit.train model=mini_bert model.backbone.path=<run>/pretrained model.mlm_warmup.epochs=0`.
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from senti_lit.core.command_line import check_command_line
from senti_lit.core.config import CONFIG_DIR
from senti_lit.core.runtime import (
    apply_threads,
    keep_freed_memory,
    limit_onednn_cache,
    return_freed_memory,
    user_errors,
)
from senti_lit.training.pretraining import pretrain


def main() -> None:
    sys.argv[1:] = check_command_line("pretrain", sys.argv[1:])  # a typo: one line, "did you mean"; fast --help
    run()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="pretrain")
@user_errors
def run(cfg: DictConfig) -> None:
    if cfg.get("keep_freed_memory"):  # process-wide, so for the command only, not for API callers
        keep_freed_memory()
    else:
        return_freed_memory()
    limit_onednn_cache()  # process-wide too: see core.runtime.limit_onednn_cache
    apply_threads(cfg.get("threads"))
    pretrain(cfg)


if __name__ == "__main__":
    main()
