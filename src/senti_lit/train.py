"""`python -m senti_lit.train`: fit, pick the best checkpoint, test, write metrics; returns the swept metric.

Data flow, top to bottom: data module (read, clean, split) -> tokenizer (loaded, or trained on the train split)
-> backbone (+ optional MLM warm-up on the train texts) -> classifier -> Lightning fit -> test -> metrics.json.
"""
from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from senti_lit.artifact import save_artifact
from senti_lit.calibration import calibrate, collect_logits
from senti_lit.config import CONFIG_DIR
from senti_lit.data.cleaning import label_histogram
from senti_lit.data.prompts import chat_prompt
from senti_lit.data.tokenization import build_tokenizer
from senti_lit.data.vocabulary import add_whole_words, init_whole_words
from senti_lit.models.backbone import build_backbone
from senti_lit.models.fast_dropout import fast_dropout_if
from senti_lit.models.methods import apply_method
from senti_lit.models.mlm import MaskedLM, mlm_collator
from senti_lit.resume import AtomicCheckpointIO, RngState, resume_checkpoint
from senti_lit.utils import (flat_config, keep_freed_memory, parameter_counts, plain, print_metrics,
                             quiet_known_warnings, write_json)

log = logging.getLogger(__name__)

# Keys of a model config used to build the pieces (cpu_bf16, max_epochs: read by the trainer config); the rest are the
# classifier's constructor arguments.
BUILD_KEYS = ("tokenizer", "backbone", "mlm_warmup", "method", "compile", "prompt", "chat", "verbalizer", "cpu_bf16",
              "max_epochs")


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a callbacks/logger group (entries set to null are skipped)."""
    return [instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def fit_mlm(backbone, loader, mlm: DictConfig, cfg: DictConfig, **trainer_kwargs: Any) -> dict:
    """Masked-LM training of `backbone` (in place) on `loader`'s batches with the `mlm` settings: `epochs`, an optional
    `max_steps` cap, lr, weight decay, warm-up. Shared by the in-run warm-up and `senti_lit.pretrain`; returns the
    steps, seconds and loss per epoch."""
    start = time.perf_counter()
    module = MaskedLM(backbone, lr=mlm.lr, weight_decay=mlm.weight_decay, warmup_ratio=mlm.warmup_ratio)
    # the step cap keeps an epoch budget sized for small data from growing with the data
    trainer = instantiate(cfg.trainer, max_epochs=mlm.epochs, max_steps=mlm.get("max_steps") or -1,
                          enable_checkpointing=False, **trainer_kwargs)
    with fast_dropout_if(cfg.get("fast_dropout", False), module):
        trainer.fit(module, train_dataloaders=loader)
    return {"steps": trainer.global_step, "seconds": round(time.perf_counter() - start, 1),
            "mlm_loss_per_epoch": module.epoch_losses}


def mlm_warmup(backbone, tokenizer, datamodule, cfg: DictConfig, out: Path) -> None:
    """Masked-LM training of the backbone on the training texts only (never val/test); `<run>/mlm_warmup.json`
    records its steps, seconds and loss per epoch."""
    w = cfg.model.mlm_warmup
    log.info("MLM warm-up: %d epochs%s on %d training texts", w.epochs,
             f" (at most {w.max_steps} steps)" if w.get("max_steps") else "", len(datamodule.datasets["train"]))
    report = fit_mlm(
        backbone, datamodule.unlabelled_train_loader(w.batch_size, mlm_collator(tokenizer, w.mask_prob)), w, cfg,
        # only the configured progress bar: checkpoints, early stopping and EMA belong to the classifier's fit
        callbacks=instantiate_group({k: v for k, v in (cfg.callbacks or {}).items() if "progress_bar" in k}),
        logger=L.pytorch.loggers.TensorBoardLogger(out / "tensorboard", name="", version="mlm_warmup",
                                                  default_hp_metric=False),
    )
    log.info("MLM warm-up: %s", report)
    if rank_zero_only.rank == 0:
        write_json(out / "mlm_warmup.json", report)


def prepare_data(cfg: DictConfig):
    """The data module with every split read, cleaned, split and encoded, and the tokenizer that encoded it
    (loaded, or trained on the training texts)."""
    datamodule = instantiate(cfg.data)
    datamodule.prepare_splits()
    tokenizer = build_tokenizer(**cfg.model.tokenizer, texts=datamodule.train_texts(),
                                cache_dir=datamodule.cache_folder())
    datamodule.added_words = add_whole_words(tokenizer, datamodule.keep_whole)
    datamodule.set_tokenizer(tokenizer, prompt=build_prompt(cfg, datamodule, tokenizer))
    return datamodule, tokenizer


def build_prompt(cfg: DictConfig, datamodule, tokenizer) -> str | None:
    """The model's template: `model.prompt`, or a few-shot chat (`model.chat`) rendered by the tokenizer."""
    chat = cfg.model.get("chat")
    if not chat:
        return cfg.model.get("prompt")
    prompt = chat_prompt(tokenizer, plain(cfg.model.verbalizer.words), datamodule.label_space.names,
                         datamodule.splits["train"], seed=cfg.seed, **plain(chat))
    log.info("prompt (%d few-shot examples per label):\n%s", chat.get("shots", 0), prompt)
    return prompt


def build_classifier(cfg: DictConfig, datamodule, tokenizer, out: Path | None = None, warmup: bool = True):
    """backbone (+ MLM warm-up on the training texts when configured and `warmup`) -> method -> classifier, from
    `cfg.model`."""
    backbone = build_backbone(tokenizer, **cfg.model.backbone)
    init_whole_words(backbone, tokenizer, datamodule.added_words)
    if warmup and cfg.model.get("mlm_warmup") and cfg.model.mlm_warmup.epochs > 0:
        mlm_warmup(backbone, tokenizer, datamodule, cfg, out)
    backbone = apply_method(backbone, **plain(cfg.model.get("method") or {"name": "full"}))
    if cfg.model.get("compile"):
        backbone.compile()  # in place: the state dict (checkpoints) keeps its keys
    module_cfg = OmegaConf.masked_copy(cfg.model, [k for k in cfg.model if k not in BUILD_KEYS])
    loss = plain(cfg.model.get("loss") or {})
    if loss.get("class_weights") == "balanced":
        loss["class_weights"] = balanced_weights(datamodule)
        log.info("class weights (balanced on the training split): %s", loss["class_weights"])
    extra = {"loss": loss} if loss else {}
    if cfg.model.get("verbalizer"):
        extra["verbalizer"] = verbalizer_ids(tokenizer, datamodule.label_space, **plain(cfg.model.verbalizer))
        # a pair encoding appends [SEP] after the prompt; a {text} template (a chat) ends where the answer starts
        extra["verbalizer"]["skip_trailing_special"] = not (cfg.model.get("chat") or "{text}" in (cfg.model.get(
            "prompt") or ""))
    return instantiate(module_cfg, _partial_=True, _convert_="all")(
        backbone=backbone, label_space=datamodule.label_space, **extra)


def verbalizer_ids(tokenizer, label_space, words: dict[str, str], position: str = "mask") -> dict:
    """The vocabulary id of each label's word (its first token), in label order, for VerbalizerHead."""
    missing = [name for name in label_space.names if name not in words]
    if missing:
        raise ValueError(f"model.verbalizer.words has no word for {missing}; add one per label")
    ids = []
    for name in label_space.names:
        tokens = tokenizer(words[name], add_special_tokens=False)["input_ids"]
        if not tokens or tokens[0] == tokenizer.unk_token_id:
            raise ValueError(f"model.verbalizer.words: {words[name]!r} ({name}) is not in the tokenizer's vocabulary")
        if len(tokens) > 1:
            log.info("verbalizer: %r (%s) is %d tokens; its first token scores the label", words[name], name,
                     len(tokens))
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"model.verbalizer.words: two labels share a first token ({dict(zip(label_space.names, ids))})")
    return {"token_ids": ids, "position": position, "mask_token_id": tokenizer.mask_token_id,
            "special_ids": list(tokenizer.all_special_ids)}


def balanced_weights(datamodule) -> list[float]:
    """Inverse label frequency on the training split, mean 1 (multi-label: negatives / positives per label)."""
    counts = label_histogram(datamodule.splits["train"])  # the train split only, not the whole summary
    names, n = datamodule.label_space.names, len(datamodule.splits["train"])
    if datamodule.label_space.multi_label:
        return [round((n - counts.get(l, 0)) / max(counts.get(l, 0), 1), 4) for l in names]
    return [round(n / (len(names) * max(counts.get(l, 0), 1)), 4) for l in names]


def continue_logs(loggers: list) -> None:
    """Before a resumed fit: TensorBoard appends to its event folder; Lightning's CSV logger would delete the earlier
    metrics.csv, so the earlier part moves to `<version>-part<k>` first."""
    for logger in loggers if rank_zero_only.rank == 0 else []:
        if isinstance(logger, L.pytorch.loggers.CSVLogger) and Path(logger.log_dir).is_dir():
            folder = Path(logger.log_dir)
            k = 1 + sum(1 for _ in folder.parent.glob(f"{folder.name}-part*"))
            folder.rename(folder.with_name(f"{folder.name}-part{k}"))
    # the checkpoint folder of a resumed run is not empty, by design
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training job; returns the final metrics (test/*, best val metric, timings)."""
    quiet_known_warnings()
    start = time.perf_counter()
    out = Path(cfg.paths.output_dir)
    if cfg.get("resume") == "auto" and (out / "metrics.json").is_file():
        log.info("resume=auto: %s already finished; its metrics stand", out)
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    ckpt_path = resume_checkpoint(cfg.get("resume"), out)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule, tokenizer = prepare_data(cfg)
    if datamodule.added_words and (cfg.get("artifact") or {}).get("weights") == "trainable":
        raise ValueError("data.tokenizer.keep_whole grew the embeddings, which artifact.weights=trainable does not "
                         "store (it reloads the base model): use artifact.weights=full")
    if rank_zero_only.rank == 0:  # under DDP every process prepares the same data; one writes the files
        write_json(out / "data.json", datamodule.summary())
        tokenizer.save_pretrained(out / "tokenizer")  # the checkpoints' token ids mean nothing without it
    prepare_seconds = time.perf_counter() - start
    model = build_classifier(cfg, datamodule, tokenizer, out, warmup=ckpt_path is None)  # a checkpoint has it
    build_seconds = time.perf_counter() - start - prepare_seconds  # includes the MLM warm-up, when on
    counts = parameter_counts(model)
    log.info("parameters: %d trainable of %d (%.1f%%)", counts["params/trainable"], counts["params/total"],
             100 * counts["params/trainable_share"])

    callbacks = [*instantiate_group(cfg.callbacks), RngState()]
    loggers = instantiate_group(cfg.logger)
    if ckpt_path is not None:
        log.info("resuming from %s", ckpt_path)
        continue_logs(loggers)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, plugins=[AtomicCheckpointIO()])
    for logger in trainer.loggers:
        logger.log_hyperparams(flat_config(cfg))

    fit_start = time.perf_counter()
    with fast_dropout_if(cfg.get("fast_dropout", False), model):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_seconds = time.perf_counter() - fit_start
    last_monitored = trainer.callback_metrics.get(cfg.monitor.metric)  # trainer.test() clears it
    ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if ckpt:  # the best (EMA-averaged, when on) weights; checkpoints hold only tensors and plain values
        model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    else:
        log.info("no best checkpoint (fast_dev_run or checkpointing off): calibrating and testing the final weights")
    calibration = calibrate(model, *collect_logits(model, datamodule.val_dataloader(),
                                                   trainer.strategy.precision_plugin.forward_context),
                            **plain(cfg.get("calibrate") or {"temperature": False, "thresholds": False}))
    trainer.test(model, datamodule=datamodule, verbose=False)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    best = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    if best is None:  # no checkpoint kept (fast_dev_run): the last validated value is the best we know
        best = last_monitored
    summary = {
        **metrics,
        f"best/{cfg.monitor.metric}": None if best is None else float(best),
        **counts,
        "time/prepare_seconds": round(prepare_seconds, 1),
        "time/build_model_seconds": round(build_seconds, 1),
        "time/fit_seconds": round(fit_seconds, 1),
        "time/total_seconds": round(time.perf_counter() - start, 1),
        "best_checkpoint": ckpt or None,
        "resumed_from": None if ckpt_path is None else str(ckpt_path),
        "calibration": calibration,
    }
    final = {k: v for k, v in summary.items() if k.startswith(("test/", "best/")) and isinstance(v, float)}
    for logger in trainer.loggers:  # hparams with the final metrics: TensorBoard's HPARAMS tab compares sweep jobs
        if isinstance(logger, L.pytorch.loggers.TensorBoardLogger):
            logger.log_hyperparams(flat_config(cfg), metrics=final)
    if trainer.is_global_zero:
        save_artifact(out / "artifact", model, tokenizer, cfg, datamodule.model_settings(), final, calibration,
                      **plain(cfg.get("artifact") or {}))
        write_json(out / "metrics.json", summary)
        print_metrics(metrics, title="test metrics (best checkpoint)" if ckpt else "test metrics (final weights)")
        log.info("run directory: %s (%.0f s)", out, summary["time/total_seconds"])
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    if cfg.get("keep_freed_memory"):  # process-wide, so for the command only, not for API callers of train()
        keep_freed_memory()
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
