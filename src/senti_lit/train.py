"""`python -m senti_lit.train`: fit, pick the best checkpoint, test, write metrics; returns the swept metric.

`train()` is the table of contents: data module (read, clean, split, the model's tokenizer, encode) -> [teacher]
-> model (with the MLM warm-up on the training texts when configured) -> Trainer -> fit -> best weights, calibrated
-> test -> artifact + metrics.json. Each step lives in `senti_lit.training.steps` and takes the config part it uses.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from senti_lit.core.command_line import check_command_line
from senti_lit.core.config import CONFIG_DIR, check_numbers, plain
from senti_lit.core.files import write_json
from senti_lit.core.runtime import (
    USER_ERRORS,
    apply_threads,
    keep_freed_memory,
    limit_onednn_cache,
    quiet_known_warnings,
    return_freed_memory,
    user_error_text,
    user_errors,
)
from senti_lit.data.precheck import check_data_source
from senti_lit.weights.locate import check_model_sources

log = logging.getLogger(__name__)


def train(cfg: DictConfig, process_wide: bool = False) -> dict[str, float]:
    """Run one training job; returns the final metrics (test/*, best val metric, timings). `process_wide`: also
    apply the settings that hold for the whole process (`threads`), as the command does; an API caller keeps its
    own."""
    check_numbers(cfg)
    check_model_sources(plain(cfg.model))  # a model this machine cannot load fails now, not after the data is read
    out = Path(cfg.paths.output_dir)
    if cfg.get("resume") == "auto" and (out / "metrics.json").is_file():
        log.info("resume=auto: %s already finished; its metrics stand", out)
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    check_data_source(cfg.data)  # a missing file or column fails now, before Lightning is imported
    if process_wide:
        apply_threads(cfg.get("threads"))  # imports torch: after the cheap checks
    # imported here, not at the top: `--help` and Tab completion answer without torch and Lightning (seconds)
    from senti_lit.training import steps
    from senti_lit.training.resume import resume_checkpoint

    quiet_known_warnings()
    ckpt_path = resume_checkpoint(cfg.get("resume"), out)
    steps.seed_everything(cfg.seed)
    clock = steps.Clock()

    datamodule, tokenizer = steps.prepare_data(cfg.data, cfg.model, cfg.seed)
    distilled, teacher = steps.prepare_distillation(cfg.get("distill"), datamodule, cfg.paths, cfg.trainer)
    steps.write_data(out, datamodule, tokenizer, distilled, weights=steps.artifact_weights(cfg, datamodule))
    clock.lap("prepare")

    warmup = steps.mlm_warmup_step(cfg, datamodule, tokenizer, out) if ckpt_path is None else None  # a ckpt has it
    spec, model = steps.build_model(cfg.model, datamodule, tokenizer, prepare=warmup, distill=cfg.get("distill"))
    counts = steps.log_parameters(model)
    clock.lap("build_model")  # includes the MLM warm-up, when on

    hparams = steps.run_hparams(cfg)
    trainer = steps.make_trainer(cfg.trainer, cfg.callbacks, cfg.logger, hparams, resumed=ckpt_path is not None)
    steps.fit(trainer, model, datamodule, ckpt_path, fast_dropout=cfg.get("fast_dropout", False)
              and not cfg.model.get("compile"))
    clock.lap("fit")

    result = steps.evaluate_best(trainer, model, datamodule, cfg.get("calibrate"), cfg.monitor.metric, teacher)
    summary = {**result.scores(cfg.monitor.metric), **counts, **clock.total(),
               "best_checkpoint": result.checkpoint or None,
               "resumed_from": None if ckpt_path is None else str(ckpt_path), "calibration": result.calibration}
    steps.log_final(trainer, hparams, result.final(cfg.monitor.metric))
    if trainer.is_global_zero:
        steps.write_run(out, cfg, model, tokenizer, spec, datamodule, result, summary)
    return summary


def main() -> None:
    sys.argv[1:] = check_command_line("train", sys.argv[1:])  # a typo: one line with a "did you mean", exit 1
    run()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@user_errors
def run(cfg: DictConfig) -> float | None:
    if cfg.get("keep_freed_memory"):  # process-wide, so for the command only, not for API callers of train()
        keep_freed_memory()
    else:
        return_freed_memory()
    limit_onednn_cache()  # process-wide too: see core.runtime.limit_onednn_cache
    try:
        summary = train(cfg, process_wide=True)
    except Exception as e:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            drop_unstarted_run(Path(cfg.paths.output_dir))
            raise
        # one failed job must not end the sweep: record it for the sweep report, tell Optuna the trial failed; a
        # known user error is one line (the traceback with HYDRA_FULL_ERROR=1), anything else its traceback
        if isinstance(e, USER_ERRORS) and os.environ.get("HYDRA_FULL_ERROR") != "1":
            log.error("job failed: %s", user_error_text(e))
        else:
            log.exception("job failed")
        write_json(Path(cfg.paths.output_dir) / "failed.json", {"error": f"{type(e).__name__}: {e}"})
        return float("nan") if cfg.get("optimized_metric") else None
    value = summary.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None
    return None if value is None else float(value)


TRAINED = ("checkpoints", "tensorboard", "csv", "metrics.json")  # what a run that started training has written


def drop_unstarted_run(out: Path) -> None:
    """A run that failed before training started (a wrong path, column, label or model) leaves no folder beside the
    real runs: only Hydra's record and the log were in it, and the error is on the screen. A sweep's failed jobs keep
    theirs (failed.json: the sweep report lists them)."""
    if out.is_dir() and not any((out / name).exists() for name in TRAINED):
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            if Path(handler.baseFilename).is_relative_to(out.resolve()):  # Hydra's train.log, open until the end
                root.removeHandler(handler)
                handler.close()
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
