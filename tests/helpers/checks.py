"""Checks of a finished training run that a broken run fails: its saved artifact reproduces its test metrics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from senti_lit.inference.predictor import Predictor


def artifact_test_accuracy(run_dir: Path, cfg: DictConfig, first_eval_batch: bool = False) -> float:
    """The accuracy on the run's test split of the artifact the run saved, computed apart from Lightning's test loop
    and the metrics code: `senti_lit.predict`'s Predictor on the split's texts (and explanations, with knowledge),
    its answers compared with the gold labels (multi-label: the whole label set, as test/acc counts it).

    It equals the run's test/acc only if the artifact is written, loads, holds the tested weights and decision rule,
    and the run's metrics are right. `first_eval_batch`: the run tested one batch only (fast_dev_run or
    limit_test_batches=1 on a split larger than data.eval_batch_size): its shortest texts, as the test loader orders
    them."""
    datamodule = instantiate(cfg.data)
    examples = datamodule.prepare_splits()["test"]
    knowledge = datamodule.explanations.get("test")
    precision = str(cfg.trainer.precision)
    predictor = Predictor.load(Path(run_dir) / "artifact", precision="bf16" if precision.startswith("bf16") else "32")
    if first_eval_batch:
        assert knowledge is None, "first_eval_batch: not written for knowledge inputs"
        lengths = predictor.inputs.encode(predictor.tokenizer, [ex.text for ex in examples]).lengths()
        order = np.argsort(lengths, kind="stable")[:datamodule.eval_batch_size]
        examples = [examples[i] for i in order]
    answers = predictor.predict([ex.text for ex in examples], knowledge)
    if predictor.multi_label:
        right = [set(a["labels"]) == set(ex.label) for a, ex in zip(answers, examples)]
    else:
        right = [a["label"] == ex.label for a, ex in zip(answers, examples)]
    assert len(right) == len(examples) > 0
    return sum(right) / len(right)
