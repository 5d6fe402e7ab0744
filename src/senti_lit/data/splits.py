"""DataSplits: a data config's examples, with no torch, transformers or Lightning: read -> clean -> label space ->
split (published, seeded or k-fold) -> subsample -> augmentation rows, cached on disk as JSON.

`TextClassificationDataModule` (`data.datamodule`) is a DataSplits that also tokenizes and batches; one constructor
serves both, so one data config (`conf/data/*.yaml`, which names the data module) builds either: `build_splits` builds
this class from it for commands that need the examples alone (`senti_lit.evaluate` of ONNX exports).
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from senti_lit.core.config import plain
from senti_lit.core.errors import DataError
from senti_lit.data.cache import digest, files_digest, load_json, save_json
from senti_lit.data.cleaning import BAD_ROWS_LISTED, CleanReport, TextNormalizer, clean, duplicate_key, label_histogram
from senti_lit.data.examples import Example
from senti_lit.data.inputs import InputSpec
from senti_lit.data.knowledge import Knowledge
from senti_lit.data.labels import LabelSpace
from senti_lit.data.sources import TableSource
from senti_lit.data.splitting import (
    check_fold,
    check_no_leakage,
    kfold_split,
    published_splits,
    split,
    split_digest,
    subsample_train,
)
from senti_lit.data.vocabulary import read_words

# the data module's log: its lines keep the name they had before DataSplits was split out of it
log = logging.getLogger("senti_lit.data.datamodule")
LOGGED_BAD_ROWS = 20  # skipped rows named in the log (data.json names more)
DATA_MODULE = "senti_lit.data.datamodule.TextClassificationDataModule"  # what conf/data/base/datamodule.yaml builds


def describe_factory(factory: Any) -> Any:
    """What a source partial will build: function name and arguments (part of the cache key)."""
    if isinstance(factory, functools.partial):
        name = f"{factory.func.__module__}.{getattr(factory.func, '__qualname__', factory.func)}"
        return [name, [plain(a) for a in factory.args], {k: plain(v) for k, v in factory.keywords.items()}]
    return repr(factory)


def build_splits(cfg: Any) -> Any:
    """The object a data config builds, as a DataSplits where the config names the data module: the same arguments
    and examples, without torch. A config naming another class builds that class."""
    from hydra.utils import instantiate

    if cfg.get("_target_") == DATA_MODULE:
        return instantiate(cfg, _target_=f"{DataSplits.__module__}.{DataSplits.__qualname__}")
    return instantiate(cfg)


class DataSplits:
    """Any single- or multi-label text classification dataset given by a `source` with a `read()` method, as
    examples per split (`prepare_splits`).

    Args:
        source: partial reader, called with `path`, whose `read()` yields `Example`s (`senti_lit.data.sources`,
            `senti_lit.data.layouts`).
        path: the dataset's file or folder (`data.path=`); each config documents its default.
        labels: label names in order; None infers them (sorted) from the data.
        aliases: {label as published: label name}, applied as the data is read, so datasets can share names
            (`happy`/`happiness` -> `joy`, `0`/`1` -> `negative`/`positive`).
        multi_label: each example has a set of labels.
        normalize: TextNormalizer options: {fullwidth, whitespace, join_cjk_words}.
        split: `{fractions: [train, val, test], seed: int}`; the split seed is separate from the training seed so a
            seed sweep trains on one fixed split. Published splits are kept; missing ones are split off train.
        limit_train: at most this many training examples (stratified subsample; val/test untouched).
        per_label: at most this many training examples per label (balanced subsample; val/test untouched).
        max_length: tokens per text after truncation (special tokens included).
        length_grouped: batch texts of similar length together in training (less padding, same randomness).
        cache_dir: where read/split examples and token ids are cached; null disables the cache.
        knowledge: `{path, join, template, mask_labels, synonyms, missing}` for `senti_lit.data.knowledge.Knowledge`:
            an explanation per text joined to it (null: texts alone).
        augment: `{path, text_column, label_column}`: extra labelled texts (e.g. `senti_lit.augment`'s
            synthetic.csv) added to the training split only, after any subsampling; texts already in a split are
            dropped and counted.
        tokenizer: `{keep_whole: [words] | file}`: words the tokenizer keeps as single tokens (the data module's
            `prepare` adds them to the tokenizer; the model builder grows the embeddings).
        batch_size, eval_batch_size, num_workers: the data module's batches (kept here: one constructor for both).
    """

    def __init__(
        self,
        source: Any,
        path: str | None = None,
        labels: Sequence[str] | None = None,
        aliases: Mapping[str, str] | None = None,
        multi_label: bool = False,
        normalize: Mapping[str, bool] | None = None,
        split: Mapping | None = None,
        limit_train: int | None = None,
        per_label: int | None = None,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 128,
        num_workers: int = 0,
        length_grouped: bool = True,
        cache_dir: str | None = None,
        knowledge: Mapping[str, Any] | None = None,
        augment: Mapping[str, Any] | None = None,
        tokenizer: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        split = dict(split or {})
        self.source_factory, self.path = source, path
        self.source: Any = None
        self.labels = list(labels) if labels else None
        self.aliases = {str(k): str(v) for k, v in (aliases or {}).items()}
        self.multi_label = multi_label
        self.normalizer = TextNormalizer(**dict(normalize or {}))
        self.fractions = tuple(split.get("fractions", (0.8, 0.1, 0.1)))
        self.split_seed = int(split.get("seed", 42))
        self.folds, self.fold = split.get("folds"), int(split.get("fold") or 0)  # k-fold CV: test = fold `fold`
        check_fold(self.folds, self.fold)
        self.limit_train, self.per_label = limit_train, per_label
        self.inputs = InputSpec(max_length)  # how texts become model input; the artifact saves it
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.length_grouped = length_grouped
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.splits: dict[str, list[Example]] | None = None
        self.label_space: LabelSpace | None = None
        self.clean_report: CleanReport | None = None
        self.cache_key: str | None = None  # set by prepare_splits when the data can be cached
        self.cache_hits: dict[str, bool] = {}  # stage -> whether it came from the cache (tests, data.json)
        self.subsampled_from: int | None = None
        self.knowledge = Knowledge(**dict(knowledge)) if knowledge else None
        self.explanations: dict[str, list[str]] = {}  # raw, per split, aligned with its examples (knowledge only)
        self.knowledge_report = None
        self.augment = dict(augment) if augment and augment.get("path") else None
        if self.augment and multi_label:
            raise ValueError("data.augment adds single-label texts; this dataset is multi-label")
        self.augment_report: dict[str, Any] | None = None
        self.keep_whole = read_words((tokenizer or {}).get("keep_whole"))
        self.added_words: dict[str, list[int]] = {}  # set by the data module's set_tokenizer: {word: former ids}

    # -- examples -------------------------------------------------------------------------------------------------
    def prepare_splits(self) -> dict[str, list[Example]]:
        """Read, clean and split once (or load them from the cache); later calls return the same splits."""
        if self.splits is not None:
            return self.splits
        self.source = self.source_factory(self.path)  # built here, not in __init__: composing a config reads nothing
        cache = self._examples_cache()
        if cache is not None and cache.is_file():
            self._restore(load_json(cache))
            self.cache_hits["examples"] = True
            log.info("data: examples from cache %s", cache)
        else:
            self._read_clean_split()
            self.cache_hits["examples"] = False
            if cache is not None:
                save_json(cache, self._snapshot())
        log.info("data: %s", self.clean_report.summary())
        if self.knowledge is not None:
            self.splits, self.explanations, self.knowledge_report = self.knowledge.attach(self.splits,
                                                                                          self.label_space)
            self.inputs.knowledge = self.knowledge.input_settings(self.label_space)
        for name, part in self.splits.items():
            log.info("data: %s split: %d examples, labels %s", name, len(part), label_histogram(part))
        return self.splits

    def _read_clean_split(self) -> None:
        examples, report = clean(self.source.read(), self.normalizer, self.aliases)
        report.bad_rows = dict(getattr(self.source, "skipped", {}))
        report.bad_row_lines = [list(bad) for bad in getattr(self.source, "bad_rows", [])[:BAD_ROWS_LISTED]]
        for origin, reason in report.bad_row_lines[:LOGGED_BAD_ROWS]:
            log.info("data: skipped %s: %s", origin, reason)
        if len(report.bad_row_lines) > LOGGED_BAD_ROWS:
            log.info("data: skipped %d more bad rows (data.json lists the first %d)",
                     sum(report.bad_rows.values()) - LOGGED_BAD_ROWS, BAD_ROWS_LISTED)
        self.clean_report = report
        if report.contradictory_texts:
            log.info("data: %d texts labelled two ways, every copy dropped; e.g. %s", report.contradictory_texts,
                     report.examples_of_contradictions[0])
        if not examples:
            raise DataError(f"{self.source!r}: no usable rows ({report.summary()})")
        self.label_space = self._label_space(examples)
        for ex in examples:  # unknown labels fail here, naming the row, not later inside a batch
            try:
                self.label_space.encode(ex.label)
            except KeyError as e:
                raise DataError(f"{ex.origin}: {e.args[0]}; fix the row, add the label to data.labels, or map it "
                                "with data.aliases") from None
        if self.folds:
            if any(ex.split for ex in examples):
                raise DataError(f"data.split.folds={self.folds}: {self.path} publishes its own splits; "
                                "cross-validation needs unsplit data (one file)")
            splits = kfold_split(examples, self.fractions, self.split_seed, self.multi_label, int(self.folds),
                                 self.fold)
        else:
            splitter = published_splits if any(ex.split for ex in examples) else split
            splits = splitter(examples, self.fractions, self.split_seed, self.multi_label)
        if self.limit_train is not None or self.per_label is not None:
            self.subsampled_from = len(splits["train"])
            splits["train"] = subsample_train(splits["train"], self.limit_train, self.per_label, self.split_seed,
                                              self.multi_label)
            log.info("data: train subsampled from %d to %d examples", self.subsampled_from, len(splits["train"]))
        if self.augment:
            splits["train"] = splits["train"] + self._augmentation(splits)
        check_no_leakage(splits)
        self.splits = splits

    def _augmentation(self, splits: dict[str, list[Example]]) -> list[Example]:
        """The augmentation file's rows that are new to every split, labels checked against the label space."""
        spec = self.augment
        source = TableSource(spec["path"], text_column=spec.get("text_column", "text"),
                             label_column=spec.get("label_column", "label"))
        rows, _ = clean(source.read(), self.normalizer, self.aliases)
        seen = {duplicate_key(ex.text) for part in splits.values() for ex in part}
        added = []
        for ex in rows:
            try:
                self.label_space.encode(ex.label)
            except KeyError as e:
                raise DataError(f"{ex.origin}: {e.args[0]}; data.augment rows must use this dataset's labels "
                                f"{list(self.label_space.names)}") from None
            if duplicate_key(ex.text) not in seen:
                added.append(Example(ex.text, ex.label, ex.origin, "train"))
        self.augment_report = {"path": str(spec["path"]), "rows": len(rows), "added_to_train": len(added),
                               "already_in_data": len(rows) - len(added)}
        log.info("data: augmentation %s: %d rows, %d added to train, %d already in the data", spec["path"],
                 len(rows), len(added), len(rows) - len(added))
        return added

    def _label_space(self, examples: list[Example]) -> LabelSpace:
        if self.labels:
            return LabelSpace(tuple(self.labels), self.multi_label, self.aliases)
        inferred = LabelSpace.infer([ex.label for ex in examples], self.multi_label)
        warn_stray_labels(examples, inferred)
        aliases = {k: v for k, v in self.aliases.items() if v in inferred.names}
        return LabelSpace(inferred.names, self.multi_label, aliases)

    def _examples_cache(self) -> Path | None:
        """<cache_dir>/<key>/examples.json, keyed by the files' content and every option that changes the splits;
        None when there is no cache (cache_dir null, or a source without local files)."""
        files = getattr(self.source, "files", None)
        if self.cache_dir is None or files is None:
            return None
        paths = files()
        if not paths:
            return None
        # the path stays in the key: the same file read as a folder's train split or alone splits differently
        where = str(Path(self.path).resolve()) if self.path else None
        augment = [self.augment, files_digest([Path(self.augment["path"])])] if self.augment else None
        self.cache_key = digest(describe_factory(self.source_factory), where, files_digest(paths), self.labels,
                                self.aliases, self.multi_label, vars(self.normalizer), self.fractions,
                                self.split_seed, self.limit_train, self.per_label, augment,
                                *([self.folds, self.fold] if self.folds else []))
        return self.cache_dir / self.cache_key / "examples.json"

    def cache_folder(self) -> Path | None:
        """This data's cache folder (after `prepare_splits`), for what else is derived from it (a tokenizer)."""
        return self.cache_dir / self.cache_key if self.cache_dir is not None and self.cache_key else None

    def _snapshot(self) -> dict[str, Any]:
        columns = {name: ([ex.text for ex in part], [ex.label for ex in part], [ex.origin for ex in part])
                   for name, part in self.splits.items()}
        return {"splits": columns, "report": vars(self.clean_report), "labels": self.label_space.to_dict(),
                "subsampled_from": self.subsampled_from, "source": repr(self.source),
                "augment": self.augment_report}

    def _restore(self, snap: dict[str, Any]) -> None:
        self.splits = {name: [Example(t, tuple(l) if isinstance(l, list) else l, o, name) for t, l, o in zip(*columns)]
                       for name, columns in snap["splits"].items()}
        self.clean_report = CleanReport(**snap["report"])
        self.label_space = LabelSpace.from_dict(snap["labels"])
        self.subsampled_from = snap["subsampled_from"]
        self.source_description = snap["source"]
        self.augment_report = snap.get("augment")

    def summary(self) -> dict[str, Any]:
        """Rows read / kept / dropped by reason, split sizes and label histogram per split (saved with the run)."""
        splits = self.prepare_splits()
        report = self.clean_report
        return {
            "source": getattr(self, "source_description", None) or repr(self.source),
            "rows_read": report.rows_read,
            "kept": report.kept,
            "dropped": {"empty": report.empty, "duplicates": report.duplicates,
                        "near_duplicates": report.near_duplicates, "cross_split": report.cross_split,
                        "contradictory_rows": report.contradictory_rows, "bad_rows": report.bad_rows},
            "bad_row_lines": [{"row": origin, "reason": reason} for origin, reason in report.bad_row_lines],
            "contradictory_texts": report.contradictory_texts,
            "no_label": report.no_label,
            "labels": list(self.label_space.names),
            "aliases": self.label_space.aliases,
            "normalize": vars(self.normalizer),
            "split_seed": self.split_seed,
            **({"folds": self.folds, "fold": self.fold} if self.folds else {}),
            "train_subsampled_from": self.subsampled_from,
            "splits": {name: {"size": len(part), "labels": label_histogram(part), "sha256": split_digest(part)}
                       for name, part in splits.items()},
            "cache": self.cache_hits,
            "knowledge": vars(self.knowledge_report) if self.knowledge_report else None,
            "augment": self.augment_report,
            "keep_whole_added": list(self.added_words),
        }

    def train_texts(self) -> list[str]:
        """The training texts (and their explanations, with knowledge): what a from-scratch tokenizer learns."""
        texts = [ex.text for ex in self.prepare_splits()["train"]]
        explanations = (self.inputs.explanation(k) for k in self.explanations.get("train", []))
        return texts + [k for k in explanations if k]


STRAY_ROWS, STRAY_SHARE = 20, 0.005  # a label this rare in a single-label column is more likely a typo than a class


def warn_stray_labels(examples: list[Example], labels: LabelSpace) -> None:
    """Labels read off the data (no `data.labels`): a value with a handful of rows (a `2` among 0/1 labels) would
    silently make a binary task three-class; it is named, with the way to make it an error."""
    if labels.multi_label or labels.num_labels <= 2:
        return
    counts = label_histogram(examples)
    for name in labels.names:
        if counts.get(name, 0) <= STRAY_ROWS and counts.get(name, 0) < STRAY_SHARE * len(examples):
            first = next(ex.origin for ex in examples if ex.label == name)
            log.warning("data: label %r has only %d of %d rows (first at %s), making this a %d-class task: a stray "
                        "value? Declare the labels (data.labels=[negative,positive]) to make such rows an error",
                        name, counts[name], len(examples), first, labels.num_labels)
