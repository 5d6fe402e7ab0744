"""`python -m senti_lit.annotate data=... annotator=openai|hf`: an LLM's explanation ("knowledge") of every text,
written as `knowledge.jsonl` next to the data for `data.knowledge` (experiment=cecps8_knowledge_bert).

Answers are cached as they arrive (a re-run asks only what is missing). Texts that still fail after the retries
are listed, every one, in `<output stem>.failed.jsonl`, and the command exits 1; the knowledge file holds every
text that has an answer. The annotators and the cache: `senti_lit.data.annotation`.
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from senti_lit.core.command_line import check_command_line
from senti_lit.core.config import CONFIG_DIR
from senti_lit.core.runtime import user_errors
from senti_lit.data.annotation import AnnotationFailed
from senti_lit.data.annotation import run as annotate


def main() -> None:
    sys.argv[1:] = check_command_line("annotate", sys.argv[1:])  # a typo: one line, "did you mean"; fast --help
    run()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="annotate")
@user_errors
def run(cfg: DictConfig) -> None:
    try:
        annotate(cfg)
    except AnnotationFailed as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
