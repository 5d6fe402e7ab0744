"""`python -m senti_lit.train`: fit, pick the best checkpoint, test, write metrics; returns the swept metric.

Top to bottom: data module (read, clean, split, the model's tokenizer, encode) -> model spec -> classifier (with the
MLM warm-up on the training texts when configured) -> Lightning fit -> best weights -> calibrate -> test ->
artifact + metrics.json.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from senti_lit.config import CONFIG_DIR, check_numbers, plain
from senti_lit.files import write_json
from senti_lit.models.locate import check_model_sources
from senti_lit.runtime import keep_freed_memory, limit_onednn_cache, quiet_known_warnings, user_errors

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training job; returns the final metrics (test/*, best val metric, timings)."""
    check_numbers(cfg)
    check_model_sources(plain(cfg.model))  # a model this machine cannot load fails now, not after the data is read
    # imported here, not at the top: `--help` and Tab completion answer without torch and Lightning (seconds)
    import lightning as L

    from senti_lit.calibration import calibrate, collect_logits
    from senti_lit.inference.artifact import save_artifact
    from senti_lit.models.builder import parameter_counts
    from senti_lit.models.fast_dropout import fast_dropout_if
    from senti_lit.resume import resume_checkpoint
    from senti_lit.training import (Clock, build_model, load_best, log_final, make_trainer, prepare_data,
                                    prepare_distillation, print_metrics)

    quiet_known_warnings()
    out = Path(cfg.paths.output_dir)
    if cfg.get("resume") == "auto" and (out / "metrics.json").is_file():
        log.info("resume=auto: %s already finished; its metrics stand", out)
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    ckpt_path = resume_checkpoint(cfg.get("resume"), out)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    clock = Clock()

    datamodule, tokenizer = prepare_data(cfg)
    distilled, teacher = prepare_distillation(cfg, datamodule)  # nothing without distill.teacher
    weights = (cfg.get("artifact") or {}).get("weights", "full")
    if datamodule.added_words and weights == "trainable":
        raise ValueError("data.tokenizer.keep_whole grew the embeddings, which artifact.weights=trainable does not "
                         "store (it reloads the base model): use artifact.weights=full")
    if L.pytorch.utilities.rank_zero_only.rank == 0:  # under DDP every process prepares the same data; one writes
        write_json(out / "data.json", {**datamodule.summary(), **({"distill": distilled} if distilled else {})})
        tokenizer.save_pretrained(out / "tokenizer")  # the checkpoints' token ids mean nothing without it
    clock.lap("prepare")

    spec, model = build_model(cfg, datamodule, tokenizer, out, warmup=ckpt_path is None)  # a checkpoint has it
    counts = parameter_counts(model)
    log.info("parameters: %d trainable of %d (%.1f%%)", counts["params/trainable"], counts["params/total"],
             100 * counts["params/trainable_share"])
    clock.lap("build_model")  # includes the MLM warm-up, when on

    trainer = make_trainer(cfg, resumed=ckpt_path is not None)
    if ckpt_path is not None:
        log.info("resuming from %s", ckpt_path)
    # torch.compile traces torch's own dropout; the hand-written masks are for eager CPU steps
    with fast_dropout_if(cfg.get("fast_dropout", False) and not cfg.model.get("compile"), model):
        # checkpoints hold tensors and plain values only (RngState): nothing in them may run code when resumed
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    clock.lap("fit")
    last_monitored = trainer.callback_metrics.get(cfg.monitor.metric)  # trainer.test() clears it
    ckpt = load_best(trainer, model)
    calibration = calibrate(model, *collect_logits(model, datamodule.val_dataloader(),
                                                   trainer.strategy.precision_plugin.forward_context),
                            **plain(cfg.get("calibrate") or {"temperature": False, "thresholds": False}))
    trainer.test(model, datamodule=datamodule, verbose=False)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    metrics |= teacher  # the teacher's test metrics, beside the student's
    if teacher:
        for logger in trainer.loggers:
            logger.log_metrics(teacher, step=trainer.global_step)
    best = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    best = last_monitored if best is None else best  # no checkpoint kept (fast_dev_run): the last validated value
    summary = {**metrics, f"best/{cfg.monitor.metric}": None if best is None else float(best), **counts,
               **clock.total(), "best_checkpoint": ckpt or None,
               "resumed_from": None if ckpt_path is None else str(ckpt_path), "calibration": calibration}
    final = {k: v for k, v in summary.items() if k.startswith(("test/", "best/")) and isinstance(v, float)}
    log_final(trainer, cfg, final)
    if trainer.is_global_zero:
        data = {"name": data_choice(), "path": cfg.data.get("path")}
        save_artifact(out / "artifact", model, tokenizer, spec, datamodule.inputs, final, calibration, weights,
                      data=data, config_yaml=OmegaConf.to_yaml(cfg, resolve=True))
        write_json(out / "metrics.json", summary)
        print_metrics(metrics, title="test metrics (best checkpoint)" if ckpt else "test metrics (final weights)")
        log.info("run directory: %s (%.0f s)", out, summary["time/total_seconds"])
    return summary


def data_choice() -> str | None:
    """The `data=` option the run was composed with (None outside a Hydra run)."""
    return HydraConfig.get().runtime.choices.get("data") if HydraConfig.initialized() else None


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@user_errors
def main(cfg: DictConfig) -> float | None:
    if cfg.get("keep_freed_memory"):  # process-wide, so for the command only, not for API callers of train()
        keep_freed_memory()
    limit_onednn_cache()  # process-wide too: see runtime.limit_onednn_cache
    try:
        summary = train(cfg)
    except Exception as e:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        # one failed job must not end the sweep: record it for the sweep report, tell Optuna the trial failed
        log.exception("job failed")
        write_json(Path(cfg.paths.output_dir) / "failed.json", {"error": f"{type(e).__name__}: {e}"})
        return float("nan") if cfg.get("optimized_metric") else None
    value = summary.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None
    return None if value is None else float(value)


if __name__ == "__main__":
    main()
