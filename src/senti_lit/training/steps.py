"""The steps of a training run, in the order `senti_lit.train.train()` calls them, each given the part of the config
it uses: the prepared data, the teacher, the model (spec, classifier, MLM warm-up), the Trainer with its callbacks
and loggers, the fit, the best weights calibrated and tested, the run's files (artifact, metrics.json), the
hyperparameters TensorBoard shows and the run's timings."""
from __future__ import annotations

import logging
import pickle
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from torch import nn
from transformers import PreTrainedTokenizerBase

from senti_lit.core.config import plain
from senti_lit.core.files import write_json
from senti_lit.data.vocabulary import init_whole_words
from senti_lit.inference.artifact import save_artifact
from senti_lit.models.builder import build_network, parameter_counts
from senti_lit.models.calibration import calibrate, collect_logits
from senti_lit.models.embedding import restore_embedding, train_used_rows
from senti_lit.models.fast_dropout import fast_dropout_if
from senti_lit.models.spec import ModelSpec, model_spec
from senti_lit.training.callbacks import LineProgress, ShortRunLogging
from senti_lit.training.mlm import mlm_warmup
from senti_lit.training.module import SentimentClassifier
from senti_lit.training.resume import AtomicCheckpointIO, RngState

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    L.seed_everything(seed, workers=True, verbose=False)


def prepare_data(data: DictConfig, model: DictConfig, seed: int) -> tuple[Any, PreTrainedTokenizerBase]:
    """The run's data module with every split read, cleaned, split and encoded, and the model's tokenizer."""
    datamodule = instantiate(data)
    tokenizer = datamodule.prepare(plain(model.tokenizer), prompt=model.get("prompt"), chat=plain(model.get("chat")),
                                   seed=seed, label_words=plain(OmegaConf.select(model, "verbalizer.words")))
    return datamodule, tokenizer


def prepare_distillation(distill: DictConfig | None, datamodule, paths: DictConfig,
                         trainer: DictConfig) -> tuple[dict[str, Any], dict[str, float]]:
    """With `distill.teacher`: the teacher's logits on the training split and the unlabelled pool go into the data
    module; returns data.json's `distill` record and the teacher's test metrics."""
    if not distill or not distill.get("teacher"):
        return {}, {}
    from senti_lit.core.config import data_config, dataset_name, named_datasets
    from senti_lit.training.distillation import attach, is_text_file

    configs = named_datasets([s for s in distill.unlabelled or [] if not is_text_file(s)],
                             plain(distill.get("data_overrides") or {}), "distill.unlabelled",
                             "distill.data_overrides")

    def train_split(source: str) -> list:
        config, overrides = configs[dataset_name(source)]
        return instantiate(data_config("train", config, overrides, paths)).prepare_splits()["train"]

    device = "cuda" if str(trainer.get("accelerator")) in ("gpu", "cuda") else "cpu"
    report, teacher = attach(datamodule, plain(distill), datamodule.cache_dir, train_split, device)
    return vars(report), teacher


def artifact_weights(cfg: DictConfig, datamodule) -> str:
    """`artifact.weights` (full | trainable), refused where the artifact could not be reloaded."""
    weights = (cfg.get("artifact") or {}).get("weights", "full")
    if datamodule.added_words and weights == "trainable":
        raise ValueError("data.tokenizer.keep_whole grew the embeddings, which artifact.weights=trainable does not "
                         "store (it reloads the base model): use artifact.weights=full")
    return weights


def write_data(out: Path, datamodule, tokenizer: PreTrainedTokenizerBase, distilled: Mapping[str, Any],
               weights: str) -> None:
    """data.json (counts, splits, labels) and the tokenizer: the checkpoints' token ids mean nothing without it.
    Under DDP every process prepares the same data; rank 0 writes."""
    del weights  # checked by artifact_weights before anything is written
    if rank_zero_only.rank == 0:
        write_json(out / "data.json", {**datamodule.summary(), **({"distill": dict(distilled)} if distilled else {})})
        tokenizer.save_pretrained(out / "tokenizer")


def build_model(model: DictConfig, datamodule, tokenizer: PreTrainedTokenizerBase,
                prepare: Callable[[Any], None] | None = None,
                distill: DictConfig | None = None) -> tuple[ModelSpec, SentimentClassifier]:
    """The run's model spec and classifier: `models.builder.build_network` (after `prepare(backbone)`, e.g. the MLM
    warm-up from `mlm_warmup_step`) wrapped in the LightningModule."""
    spec = model_spec(plain(model), datamodule.label_space, datamodule.splits["train"], tokenizer,
                      datamodule.inputs.is_template)
    net = build_network(spec, tokenizer, prepare=partial(prepare_backbone, tokenizer=tokenizer,
                                                         words=datamodule.added_words, warmup=prepare))
    rows = model.get("embedding_rows", "all")
    if rows not in ("all", "train"):
        raise ValueError(f"model.embedding_rows={rows}: use all (the whole embedding trains) or train (only the "
                         "rows the training texts use; the same result, less memory and time on a big vocabulary)")
    if rows == "train":
        train_used_rows(net, np.unique(datamodule.datasets["train"].ids))
    classifier = SentimentClassifier(net, datamodule.label_space, optimizer=instantiate(model.optimizer),
                                     **spec.classifier)
    if distill and distill.get("teacher"):
        classifier.set_distillation(distill.alpha, distill.temperature)
    if model.get("compile"):
        classifier.backbone.compile()  # in place: the state dict (checkpoints) keeps its keys
    return spec, classifier


def prepare_backbone(backbone, tokenizer: PreTrainedTokenizerBase, words: dict[str, list[int]],
                     warmup: Callable[[Any], None] | None) -> None:
    """Before the fine-tuning method wraps the backbone: embeddings for the whole words the tokenizer gained, then
    the MLM warm-up on the training texts (when configured)."""
    init_whole_words(backbone, tokenizer, words)
    if warmup is not None:
        warmup(backbone)


def mlm_warmup_step(cfg: DictConfig, datamodule, tokenizer: PreTrainedTokenizerBase,
                    out: Path | None = None) -> Callable[[Any], None] | None:
    """The MLM warm-up on the training texts as `build_model`'s `prepare` step (None when `model.mlm_warmup` is
    off); its report goes to `out`."""
    mlm = plain(cfg.model.get("mlm_warmup")) or {}
    if mlm.get("epochs", 0) <= 0:
        return None
    mlm = quick_run_warmup(mlm, cfg.data.get("limit_train"), len(datamodule.splits["train"]), cfg.data.batch_size,
                           cfg.trainer.get("max_epochs"))
    bars = [*progress_bars(cfg.callbacks), ShortRunLogging()]
    return partial(mlm_warmup, tokenizer=tokenizer, datamodule=datamodule, mlm={**mlm, "seed": cfg.seed},
                   make_trainer=partial(instantiate, cfg.trainer), out=Path(out or cfg.paths.output_dir),
                   fast_dropout=cfg.get("fast_dropout", False), callbacks=bars, **no_bar(bars))


def data_for_run(cfg: DictConfig) -> tuple[Any, PreTrainedTokenizerBase]:
    """`prepare_data` from a whole training config, as `train()` calls it (tests, benchmarks, notebooks)."""
    return prepare_data(cfg.data, cfg.model, cfg.seed)


def model_for_run(cfg: DictConfig, datamodule, tokenizer: PreTrainedTokenizerBase, out: Path | None = None,
                  warmup: bool = True) -> tuple[ModelSpec, SentimentClassifier]:
    """`build_model` from a whole training config, with the MLM warm-up when configured and `warmup`, as `train()`
    builds it (tests, benchmarks, notebooks)."""
    prepare = mlm_warmup_step(cfg, datamodule, tokenizer, out) if warmup else None
    return build_model(cfg.model, datamodule, tokenizer, prepare=prepare, distill=cfg.get("distill"))


def log_parameters(model: nn.Module) -> dict[str, float]:
    counts = parameter_counts(model)
    log.info("parameters: %d trainable of %d (%.1f%%)", counts["params/trainable"], counts["params/total"],
             100 * counts["params/trainable_share"])
    return counts


def quick_run_warmup(mlm: dict[str, Any], limit_train: int | None, n_train: int, batch_size: int,
                     max_epochs: int | None) -> dict[str, Any]:
    """A quick run (`data.limit_train`) keeps the MLM warm-up in proportion: at most as many steps as the
    fine-tuning takes (at least 10), unless the command line sets `model.mlm_warmup.*` itself. Without this, a
    300-text trial spent most of its time in the 20-epoch warm-up sized for the full training split."""
    if limit_train is None or "model.mlm_warmup" in " ".join(task_overrides()):
        return mlm
    finetune = -(-n_train // batch_size) * max(int(max_epochs or 1), 1)
    cap = max(10, finetune)
    if mlm.get("max_steps") and mlm["max_steps"] <= cap:
        return mlm
    log.info("MLM warm-up scaled to at most %d steps: data.limit_train=%s is a quick run (the fine-tuning takes %d "
             "steps); set model.mlm_warmup.max_steps (or .epochs) to choose", cap, limit_train, finetune)
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


def progress_bars(callbacks: DictConfig | None) -> list[Any]:
    """Only the configured progress bar: for fits (the MLM warm-up) whose checkpoints, early stopping and EMA are not
    the classifier's."""
    return instantiate_group({k: v for k, v in (callbacks or {}).items() if "progress_bar" in k})


def no_bar(callbacks: list[Any]) -> dict[str, Any]:
    """The Trainer's `enable_progress_bar`: off when the progress went to lines (Lightning's default bar would
    otherwise come back)."""
    return {} if any(isinstance(c, ProgressBar) for c in callbacks) else {"enable_progress_bar": False}


def make_trainer(trainer: DictConfig, callbacks: DictConfig | None, logger: DictConfig | None,
                 hparams: Mapping[str, Any], resumed: bool = False) -> L.Trainer:
    """The classifier's Trainer: the config's callbacks and loggers, RNG state and atomic writes in checkpoints;
    `hparams` (`run_hparams`) go to every logger."""
    made = [*instantiate_group(callbacks), RngState(), ShortRunLogging()]
    loggers = instantiate_group(logger)
    if resumed:
        continue_logs(loggers)
    built = instantiate(trainer, callbacks=made, logger=loggers, plugins=[AtomicCheckpointIO()], **no_bar(made))
    for each in built.loggers:
        each.log_hyperparams(dict(hparams))
    return built


def fit(trainer: L.Trainer, model: SentimentClassifier, datamodule, ckpt_path: Path | None,
        fast_dropout: bool) -> None:
    """`trainer.fit`; checkpoints hold tensors and plain values only (RngState): nothing in them may run code when
    resumed. `fast_dropout`: the hand-written dropout masks for eager CPU steps (torch.compile traces torch's own)."""
    if ckpt_path is not None:
        log.info("resuming from %s", ckpt_path)
    with fast_dropout_if(fast_dropout, model), refused_pickles(ckpt_path):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    restore_embedding(model.backbone)  # model.embedding_rows: train -> a plain embedding for evaluation and artifacts


@contextmanager
def refused_pickles(path: Path | str | None) -> Iterator[None]:
    """A checkpoint that holds pickled objects (code that would run when loaded) is refused by torch's
    weights_only loading: one line naming the file, not an UnpicklingError traceback."""
    try:
        yield
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: this checkpoint holds pickled Python objects, which senti_lit does not load (they "
                         f"could run code): use a checkpoint written by senti_lit ({str(e).splitlines()[0][:120]})"
                         ) from None


@dataclass
class RunResult:
    """What the test of the best weights gave: the student's (and a teacher's) test metrics, the best monitored
    value, the checkpoint and the calibration fitted on validation."""
    metrics: dict[str, float]
    teacher: dict[str, float]
    best: float | None
    checkpoint: str
    calibration: dict

    def scores(self, monitor: str) -> dict[str, float | None]:
        """The test metrics (the teacher's beside them) and the best monitored value: metrics.json's first keys."""
        return {**self.metrics, **self.teacher, f"best/{monitor}": self.best}

    def final(self, monitor: str) -> dict[str, float]:
        """The numbers TensorBoard's HPARAMS tab and the artifact carry."""
        return {k: v for k, v in self.scores(monitor).items()
                if k.startswith(("test/", "best/")) and isinstance(v, float)}


def evaluate_best(trainer: L.Trainer, model: SentimentClassifier, datamodule, calibrate_cfg: DictConfig | None,
              monitor: str, teacher: Mapping[str, float]) -> RunResult:
    """The best checkpoint's weights, calibrated on validation (`calibrate`: temperature, thresholds), then tested;
    a teacher's test metrics go to the loggers beside the student's."""
    last_monitored = trainer.callback_metrics.get(monitor)  # trainer.test() clears it
    ckpt = load_best(trainer, model)
    log.info("calibrating on the validation split (%d batches), then testing", len(datamodule.val_dataloader()))
    calibration = calibrate(model, *collect_logits(model, datamodule.val_dataloader(),
                                                   trainer.strategy.precision_plugin.forward_context),
                            **plain(calibrate_cfg or {"temperature": False, "thresholds": False}))
    trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    for name in model.label_space.names:  # a class the model never gets right is worth a line, not a silent 0
        if metrics.get(f"test/f1_{name}") == 0.0:
            log.warning("the model never predicts %r correctly on the test split (test/f1_%s 0.0000): check that "
                        "class's training examples, class weights (model.loss.class_weights=balanced) or the "
                        "decision threshold", name, name)
    if teacher:
        for logger in trainer.loggers:
            logger.log_metrics(dict(teacher), step=trainer.global_step)
    best = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    best = last_monitored if best is None else best  # no checkpoint kept (fast_dev_run): the last validated value
    return RunResult(metrics, dict(teacher), None if best is None else float(best), ckpt, calibration)


def write_run(out: Path, cfg: DictConfig, model: SentimentClassifier, tokenizer: PreTrainedTokenizerBase,
              spec: ModelSpec, datamodule, result: RunResult, summary: Mapping[str, Any]) -> None:
    """The run's artifact and metrics.json, and the test metrics as a table."""
    data = {"name": data_choice(), "path": cfg.data.get("path")}
    weights = (cfg.get("artifact") or {}).get("weights", "full")
    save_artifact(out / "artifact", model, tokenizer, spec, datamodule.inputs, result.final(cfg.monitor.metric),
                  result.calibration, weights, data=data, config_yaml=OmegaConf.to_yaml(cfg, resolve=True))
    write_json(out / "metrics.json", dict(summary))
    title = "test metrics (best checkpoint)" if result.checkpoint else "test metrics (final weights)"
    print_metrics({**result.metrics, **result.teacher}, title=title)
    log.info("run directory: %s (%.0f s)", out, summary["time/total_seconds"])


def data_choice() -> str | None:
    """The `data=` option the run was composed with (None outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("data") if HydraConfig.initialized() else None


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
        with refused_pickles(ckpt):
            model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    else:
        log.info("no best checkpoint (no validation ran, fast_dev_run, or checkpointing off): calibrating and testing the final weights")
    return ckpt


def log_final(trainer: L.Trainer, run_params: Mapping[str, Any], final: Mapping[str, float]) -> None:
    """The hyperparameters with the final metrics: TensorBoard's HPARAMS tab compares sweep jobs. The summary goes
    to an event file of its own in the run's TensorBoard folder (torch's public `FileWriter`; TensorBoard reads every
    event file of a folder as one run): Lightning's `log_hyperparams(params, metrics)` would log every test scalar a
    second time (at step 0), and the HPARAMS tab reads the metrics from the scalars the run already has."""
    from torch.utils.tensorboard.summary import hparams, scalar
    from torch.utils.tensorboard.writer import FileWriter

    params = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in run_params.items()}
    for logger in trainer.loggers:
        if isinstance(logger, L.pytorch.loggers.TensorBoardLogger) and rank_zero_only.rank == 0:
            writer = FileWriter(logger.log_dir)
            for summary in hparams(params, {k: float(v) for k, v in final.items()}):
                writer.add_summary(summary)
            # a declared column reads the run's scalar of that name: test/* were logged by the test, best/* were not
            for key in (k for k in final if k.startswith("best/")):
                writer.add_summary(scalar(key, float(final[key])), trainer.global_step)
            writer.close()


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
                values[key] = typed(OmegaConf.select(cfg, key, default=None), value)
    for key in KEY_SETTINGS:
        value = OmegaConf.select(cfg, key, default=None)
        if key not in values and isinstance(value, (int, float, str, bool)):
            values[key] = value
    return values


def typed(composed: Any, written: str) -> Any:
    """An override's value as the config holds it (`seed=7`: the number 7, as in a run that keeps the default 42),
    so that each HPARAMS column has one type across runs; text where the config holds no single value."""
    return composed if isinstance(composed, (bool, int, float, str)) else written


def print_metrics(metrics: Mapping[str, float], title: str) -> None:
    """A rich table: one row per metric, per-class rows after the summary ones."""
    table = Table(title=title, min_width=len(title) + 4)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics, key=lambda k: ("_" in k.split("/")[-1].removeprefix("macro_"), k)):
        table.add_row(key, f"{metrics[key]:.4f}")
    Console().print(table)
