"""The pieces of a training run, built from the run's config: the prepared data, the model (spec, classifier, MLM
warm-up), the Trainer with its callbacks and loggers, the hyperparameters TensorBoard shows, the best weights, the
run's timings and its metrics table."""
from __future__ import annotations

import logging
import sys
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Mapping

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from transformers import PreTrainedTokenizerBase

from senti_lit.callbacks import LineProgress
from senti_lit.config import plain
from senti_lit.data.vocabulary import init_whole_words
from senti_lit.models.builder import build_classifier
from senti_lit.models.classifier import SentimentClassifier
from senti_lit.models.mlm import mlm_warmup
from senti_lit.models.spec import ModelSpec, model_spec
from senti_lit.resume import AtomicCheckpointIO, RngState

log = logging.getLogger(__name__)


def prepare_data(cfg: DictConfig) -> tuple[Any, PreTrainedTokenizerBase]:
    """The run's data module with every split read, cleaned, split and encoded, and the model's tokenizer."""
    datamodule = instantiate(cfg.data)
    tokenizer = datamodule.prepare(plain(cfg.model.tokenizer), prompt=cfg.model.get("prompt"),
                                   chat=plain(cfg.model.get("chat")), seed=cfg.seed,
                                   label_words=plain(OmegaConf.select(cfg, "model.verbalizer.words")))
    return datamodule, tokenizer


def prepare_distillation(cfg: DictConfig, datamodule) -> tuple[dict[str, Any], dict[str, float]]:
    """With `distill.teacher`: the teacher's logits on the training split and the unlabelled pool go into the data
    module; returns data.json's `distill` record and the teacher's test metrics."""
    if not cfg.get("distill") or not cfg.distill.get("teacher"):
        return {}, {}
    from senti_lit.config import data_config, dataset_name, named_datasets
    from senti_lit.distillation import attach, is_text_file

    configs = named_datasets([s for s in cfg.distill.unlabelled or [] if not is_text_file(s)],
                             plain(cfg.distill.get("data_overrides") or {}), "distill.unlabelled",
                             "distill.data_overrides")

    def train_split(source: str) -> list:
        config, overrides = configs[dataset_name(source)]
        return instantiate(data_config("train", config, overrides, cfg.paths)).prepare_splits()["train"]

    device = "cuda" if str(cfg.trainer.get("accelerator")) in ("gpu", "cuda") else "cpu"
    report, teacher = attach(datamodule, plain(cfg.distill), datamodule.cache_dir, train_split, device)
    return vars(report), teacher


def build_model(cfg: DictConfig, datamodule, tokenizer: PreTrainedTokenizerBase, out: Path | None = None,
                warmup: bool = True) -> tuple[ModelSpec, SentimentClassifier]:
    """The run's model spec and classifier (after the MLM warm-up on the training texts, when configured and
    `warmup`; its report goes to `out`)."""
    spec = model_spec(plain(cfg.model), datamodule.label_space, datamodule.splits["train"], tokenizer,
                      datamodule.inputs.is_template)
    prepare = partial(prepare_backbone, cfg=cfg, datamodule=datamodule, tokenizer=tokenizer, out=out, warmup=warmup)
    model = build_classifier(spec, tokenizer, datamodule.label_space, optimizer=instantiate(cfg.model.optimizer),
                             prepare=prepare)
    if cfg.get("distill") and cfg.distill.get("teacher"):
        model.set_distillation(cfg.distill.alpha, cfg.distill.temperature)
    if cfg.model.get("compile"):
        model.backbone.compile()  # in place: the state dict (checkpoints) keeps its keys
    return spec, model


def prepare_backbone(backbone, cfg: DictConfig, datamodule, tokenizer, out: Path | None, warmup: bool) -> None:
    """Before the fine-tuning method wraps the backbone: embeddings for the whole words the tokenizer gained, then
    the MLM warm-up on the training texts (when configured)."""
    init_whole_words(backbone, tokenizer, datamodule.added_words)
    mlm = plain(cfg.model.get("mlm_warmup")) or {}
    if warmup and mlm.get("epochs", 0) > 0:
        mlm = quick_run_warmup(mlm, cfg, len(datamodule.splits["train"]))
        bars = progress_bars(cfg)
        mlm_warmup(backbone, tokenizer, datamodule, mlm, partial(instantiate, cfg.trainer),
                   Path(out or cfg.paths.output_dir), fast_dropout=cfg.get("fast_dropout", False), callbacks=bars,
                   **no_bar(bars))


def quick_run_warmup(mlm: dict[str, Any], cfg: DictConfig, n_train: int) -> dict[str, Any]:
    """A quick run (`data.limit_train`) keeps the MLM warm-up in proportion: at most as many steps as the
    fine-tuning takes (at least 10), unless the command line sets `model.mlm_warmup.*` itself. Without this, a
    300-text trial spent most of its time in the 20-epoch warm-up sized for the full training split."""
    if cfg.data.get("limit_train") is None or "model.mlm_warmup" in " ".join(task_overrides()):
        return mlm
    finetune = -(-n_train // cfg.data.batch_size) * max(int(cfg.trainer.get("max_epochs") or 1), 1)
    cap = max(10, finetune)
    if mlm.get("max_steps") and mlm["max_steps"] <= cap:
        return mlm
    log.info("MLM warm-up scaled to at most %d steps: data.limit_train=%s is a quick run (the fine-tuning takes %d "
             "steps); set model.mlm_warmup.max_steps (or .epochs) to choose", cap, cfg.data.limit_train, finetune)
    return {**mlm, "max_steps": cap}


def task_overrides() -> list[str]:
    """The run's command-line overrides (none outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a callbacks/logger group (entries set to null are skipped); a progress
    bar becomes progress lines when stdout is not a terminal (a bar would show nothing there)."""
    made = [instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]
    if sys.stdout.isatty():
        return made
    return [LineProgress() if isinstance(c, ProgressBar) else c for c in made]


def progress_bars(cfg: DictConfig) -> list[Any]:
    """Only the configured progress bar: for fits (the MLM warm-up) whose checkpoints, early stopping and EMA are not
    the classifier's."""
    return instantiate_group({k: v for k, v in (cfg.callbacks or {}).items() if "progress_bar" in k})


def no_bar(callbacks: list[Any]) -> dict[str, Any]:
    """The Trainer's `enable_progress_bar`: off when the progress went to lines (Lightning's default bar would
    otherwise come back)."""
    return {} if any(isinstance(c, ProgressBar) for c in callbacks) else {"enable_progress_bar": False}


def make_trainer(cfg: DictConfig, resumed: bool = False) -> L.Trainer:
    """The classifier's Trainer: the config's callbacks and loggers, RNG state and atomic writes in checkpoints."""
    callbacks = [*instantiate_group(cfg.callbacks), RngState()]
    loggers = instantiate_group(cfg.logger)
    if resumed:
        continue_logs(loggers)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, plugins=[AtomicCheckpointIO()],
                          **no_bar(callbacks))
    for logger in trainer.loggers:
        logger.log_hyperparams(run_hparams(cfg))
    return trainer


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


def load_best(trainer: L.Trainer, model: L.LightningModule) -> str:
    """Load the best checkpoint's weights (EMA-averaged, when on) into `model`; its path, or "" when none was kept."""
    ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if ckpt:  # checkpoints hold only tensors and plain values
        model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    else:
        log.info("no best checkpoint (fast_dev_run or checkpointing off): calibrating and testing the final weights")
    return ckpt


def log_final(trainer: L.Trainer, cfg: DictConfig, final: Mapping[str, float]) -> None:
    """The hyperparameters with the final metrics: TensorBoard's HPARAMS tab compares sweep jobs. The summary is
    written directly: Lightning's `log_hyperparams(params, metrics)` would log every test scalar a second time (at
    step 0), and the HPARAMS tab reads the metrics from the scalars the run already has."""
    from torch.utils.tensorboard.summary import hparams

    for logger in trainer.loggers:
        if isinstance(logger, L.pytorch.loggers.TensorBoardLogger) and rank_zero_only.rank == 0:
            params = logger._sanitize_params(run_hparams(cfg))  # lists and None as text, as Lightning does
            writer = logger.experiment._get_file_writer()  # what Lightning's own log_hyperparams writes to
            for summary in hparams(params, {k: float(v) for k, v in final.items()}):
                writer.add_summary(summary)


class Clock:
    """Seconds per stage of a run (prepare, build_model, fit), for metrics.json."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[f"time/{name}_seconds"] = round(now - self.last, 1)
        self.last = now

    def total(self) -> dict[str, float]:
        return {**self.laps, "time/total_seconds": round(time.perf_counter() - self.start, 1)}


# the values a person compares across runs, whatever the command line said (TensorBoard's HPARAMS columns)
KEY_SETTINGS = ("seed", "model.optimizer.lr", "model.optimizer.weight_decay", "model.method.name", "data.batch_size",
                "data.max_length", "trainer.max_epochs", "trainer.precision")
# config groups that do not change what is learnt
UNCOMPARED_GROUPS = ("paths", "hydra", "callbacks", "logger", "local", "extras")


def run_hparams(cfg: DictConfig) -> dict[str, Any]:
    """What TensorBoard's HPARAMS tab shows for a run: the config-group choices (model, data, trainer, experiment
    …), the command line's overrides and a few key settings; not the composed config's ~120 keys (the full config
    is in the run's .hydra/config.yaml)."""
    from hydra.core.hydra_config import HydraConfig

    values: dict[str, Any] = {}
    if HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
        values |= {k: str(v) for k, v in choices.items()
                   if v is not None and not k.startswith(UNCOMPARED_GROUPS)}
        for override in task_overrides():
            key, _, value = override.lstrip("+~").partition("=")
            if not key.startswith(("hydra.", "paths.")) and key not in values:
                values[key] = value
    for key in KEY_SETTINGS:
        value = OmegaConf.select(cfg, key, default=None)
        if key not in values and isinstance(value, (int, float, str, bool)):
            values[key] = value
    return values


def print_metrics(metrics: Mapping[str, float], title: str) -> None:
    """A rich table: one row per metric, per-class rows after the summary ones."""
    table = Table(title=title, min_width=len(title) + 4)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics, key=lambda k: ("_" in k.split("/")[-1].removeprefix("macro_"), k)):
        table.add_row(key, f"{metrics[key]:.4f}")
    Console().print(table)
