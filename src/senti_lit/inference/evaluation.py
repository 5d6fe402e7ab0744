"""Cross-dataset evaluation (`senti_lit.evaluate`): every model on every dataset's test split -> the train-set x
test-set accuracy matrix. A dataset's labels are mapped into a model's label space by name (its training aliases and
`label_map`); examples whose label has no place in the model's space are left out of that cell and counted
(`absent`), never mapped to something else. Writes matrix.csv, matrix.md, matrix.png and evaluate.json."""
from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import yaml
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from senti_lit.core.config import data_config, plain
from senti_lit.core.errors import DataError
from senti_lit.core.files import write_json
from senti_lit.core.runtime import quiet_known_warnings

if TYPE_CHECKING:
    from senti_lit.inference.onnx_predictor import OnnxPredictor
    from senti_lit.inference.predictor import Predictor

log = logging.getLogger(__name__)


def model_name(folder: Path, meta: Mapping[str, Any]) -> str:
    """The model's row name: the data it was trained on (artifact.json), else its run directory's name."""
    name = (meta.get("data") or {}).get("name")
    hydra_file = folder.parent / ".hydra" / "hydra.yaml"
    if not name and hydra_file.is_file():
        choices = yaml.safe_load(hydra_file.read_text(encoding="utf-8"))["hydra"]["runtime"]["choices"]
        name = choices.get("data")
    return str(name or folder.parent.name)


def label_mapping(dataset_labels: Sequence[str], predictor: Predictor | OnnxPredictor, label_map: Mapping[str, str]
                  ) -> dict[str, str | None]:
    """{dataset label: model label or None (absent)}: the same name first, then `label_map`, then the model's
    training aliases."""
    names = set(predictor.names)
    aliases = predictor.aliases
    mapping: dict[str, str | None] = {}
    for label in dataset_labels:
        target = label if label in names else label_map.get(label, aliases.get(label))
        mapping[label] = target if target in names else None
    return mapping


def evaluate_cell(predictor: Predictor | OnnxPredictor, texts: list[str], labels: list[str],
                  mapping: Mapping[str, str | None], batch_size: int) -> dict[str, Any]:
    """Accuracy of one model on one dataset's examples whose label the model has; the rest counted as absent."""
    kept = [(t, mapping[l]) for t, l in zip(texts, labels) if mapping[l] is not None]
    absent: dict[str, int] = {}
    for label in labels:
        if mapping[label] is None:
            absent[label] = absent.get(label, 0) + 1
    answers = predictor.predict([t for t, _ in kept], batch_size=batch_size, progress=True)
    correct = sum(a["label"] == gold for a, (_, gold) in zip(answers, kept))
    return {"accuracy": correct / len(kept) if kept else None, "evaluated": len(kept), "correct": correct,
            "absent": absent, "mapping": {k: v for k, v in mapping.items() if v != k}}


def run(cfg: DictConfig) -> dict[str, Any]:
    quiet_known_warnings()
    folders = [Path(a) for a in plain(cfg.artifacts)]
    if not folders or not cfg.datasets:
        raise ValueError("evaluate needs artifacts=[dir,...] (training runs' artifact/) and datasets=[name,...]")
    from senti_lit.inference.onnx_predictor import choose_backend, load_predictor  # numpy: not for `--help`

    backends = [choose_backend(cfg.backend, folder) for folder in folders]  # a wrong one fails before the data
    data = read_datasets(cfg)  # every dataset's files first: a missing one fails before any model has run
    predictors = {}
    for folder, backend in zip(folders, backends):
        predictor = load_predictor(folder, backend, device=cfg.device, threads=cfg.threads,
                                   precision=cfg.precision, trust_remote_code=cfg.trust_remote_code)
        if predictor.multi_label:
            raise ValueError(f"{folder}: a multi-label model; the accuracy matrix is for single-label models")
        name = model_name(folder, predictor.meta)
        predictors[name if name not in predictors else f"{name}@{folder.parent.name}"] = predictor
    label_map = {str(k): str(v) for k, v in plain(cfg.label_map or {}).items()}
    cells: dict[str, dict[str, Any]] = {m: {} for m in predictors}
    for dataset, (label_names, examples) in data.items():
        texts, labels = [ex.text for ex in examples], [ex.label for ex in examples]
        for name, predictor in predictors.items():
            mapping = label_mapping(label_names, predictor, label_map)
            cells[name][dataset] = evaluate_cell(predictor, texts, labels, mapping, cfg.batch_size)
            cell = cells[name][dataset]
            log.info("%s on %s (%s split): accuracy %s over %d texts; absent labels %s", name, dataset, cfg.split,
                     cell["accuracy"], cell["evaluated"], cell["absent"] or "none")
    out = Path(cfg.paths.output_dir)
    write_outputs(out, cells, plain(cfg.datasets), cfg.split)
    return cells


def read_datasets(cfg: DictConfig) -> dict[str, tuple[list[str], list]]:
    """{dataset: (label names, examples of the evaluated split)}, each composed from its own data config and read
    by its torch-free `DataSplits` (an evaluation of ONNX exports imports no torch); every dataset that cannot be
    read is named in one error, with the override that points it at its files."""
    from senti_lit.data.splits import build_splits  # scikit-learn (the splits): not for `--help`

    overrides = plain(cfg.data_overrides or {})
    data, problems = {}, []
    for dataset in plain(cfg.datasets):
        try:
            datamodule = build_splits(data_config("evaluate", dataset, overrides.get(dataset, []), cfg.paths))
            examples = datamodule.prepare_splits()[cfg.split]
        except DataError as e:
            problems.append(f"data={dataset}: {e}; point it at its files with "
                            f"\"+data_overrides.{dataset}=['data.path=DIR']\"")
            continue
        if datamodule.multi_label:
            problems.append(f"data={dataset}: multi-label data; the accuracy matrix is for single-label datasets")
            continue
        data[dataset] = (list(datamodule.label_space.names), examples)
    if problems:
        raise DataError("\n".join(problems))
    return data


def write_outputs(out: Path, cells: dict[str, dict[str, Any]], datasets: list[str], split: str) -> None:
    """matrix.csv / matrix.md / matrix.png / evaluate.json, and the matrix printed."""
    out.mkdir(parents=True, exist_ok=True)
    models = list(cells)

    def fmt(cell: dict[str, Any]) -> str:
        return "n/a" if cell["accuracy"] is None else f"{cell['accuracy']:.4f}"

    with (out / "matrix.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["model (trained on)", *datasets])
        writer.writerows([m, *("" if cells[m][d]["accuracy"] is None else cells[m][d]["accuracy"]
                               for d in datasets)] for m in models)
    lines = [f"Accuracy on each dataset's {split} split (rows: the data a model was trained on).", "",
             "| model \\ data | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
    lines += ["| " + m + " | " + " | ".join(fmt(cells[m][d]) for d in datasets) + " |" for m in models]
    notes = [f"- {m} on {d}: labels absent from the model, left out: {cells[m][d]['absent']}"
             for m in models for d in datasets if cells[m][d]["absent"]]
    (out / "matrix.md").write_text("\n".join(lines + ([""] + notes if notes else [])) + "\n", encoding="utf-8")
    write_json(out / "evaluate.json", {"split": split, "cells": cells})
    heatmap(out / "matrix.png", cells, models, datasets)
    table = Table(title=f"accuracy ({split} split)")
    for column in ["model \\ data", *datasets]:
        table.add_column(column)
    for m in models:
        table.add_row(m, *(fmt(cells[m][d]) for d in datasets))
    Console().print(table)
    for note in notes:
        print(note)
    print(f"-> {out / 'matrix.md'}")


def heatmap(path: Path, cells: dict[str, dict[str, Any]], models: list[str], datasets: list[str]) -> None:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    values = np.array([[np.nan if cells[m][d]["accuracy"] is None else cells[m][d]["accuracy"] for d in datasets]
                       for m in models])
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(datasets), 1.2 + 0.6 * len(models)))
    ax.imshow(values, cmap="viridis", vmin=0, vmax=1)
    ax.set(xticks=range(len(datasets)), yticks=range(len(models)), xlabel="evaluated on", ylabel="trained on")
    ax.set_xticklabels(datasets, rotation=30, ha="right")
    ax.set_yticklabels(models)
    for (row, col), value in np.ndenumerate(values):
        ax.text(col, row, "n/a" if np.isnan(value) else f"{value:.3f}", ha="center", va="center",
                color="white" if not np.isnan(value) and value < 0.6 else "black", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
