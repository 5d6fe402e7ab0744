"""Distillation: the loss, the student's training split with the teacher's logits, the unlabelled pool's leakage
rule, the cache, and a student trained from a tiny teacher end to end."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.compose import TINY_MODEL, compose_train
from helpers.data import write_reviews
from senti_lit.data.encoding import EncodedDataset
from senti_lit.data.examples import Example
from senti_lit.models.losses import distillation_loss
from senti_lit.training.distillation import DistilledDataset, DistillReport, augment_settings, augmented, pool_texts


def test_the_loss_is_t_squared_kl_and_zero_when_student_equals_teacher():
    teacher = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, 3.0]])
    student = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    t = 2.0
    q = torch.softmax(teacher / t, -1)
    expected = (q * (q.log() - torch.log_softmax(student / t, -1))).sum(-1).mean() * t * t
    assert distillation_loss(student, teacher, t, False).item() == pytest.approx(expected.item(), rel=1e-6)
    assert distillation_loss(teacher, teacher, t, False).item() == pytest.approx(0.0, abs=1e-6)
    # multi-label: BCE against the teacher's tempered sigmoid, minimal at the teacher's own logits
    multi = distillation_loss(student, teacher, t, True).item()
    assert distillation_loss(teacher, teacher, t, True).item() < multi


def encoded(n: int, labels: np.ndarray | None) -> EncodedDataset:
    ids = np.arange(3 * n, dtype=np.int32)
    return EncodedDataset(ids, np.arange(0, 3 * n + 1, 3, dtype=np.int64), labels)


def test_the_training_split_carries_teacher_logits_and_the_pool_has_no_gold_label():
    logits = np.arange(10, dtype=np.float32).reshape(5, 2)
    ds = DistilledDataset(encoded(3, np.array([1, 0, 1])), encoded(2, None), logits)
    assert len(ds) == 5 and ds.lengths() == [3] * 5
    assert ds[0]["labels"] == 1 and ds[0]["has_label"] == 1 and ds[0]["teacher_logits"] == [0.0, 1.0]
    assert ds[4]["has_label"] == 0 and ds[4]["teacher_logits"] == [8.0, 9.0] and ds[4]["input_ids"] == [3, 4, 5]
    assert len(ds.without_labels()) == 3  # the MLM warm-up keeps to the labelled split
    with pytest.raises(ValueError, match="one row of teacher logits per example"):
        DistilledDataset(encoded(3, np.array([1, 0, 1])), None, logits)


def test_the_pool_never_holds_a_validation_or_test_text(tmp_path: Path):
    """A file with a test review (full-width and spaced differently), a training review, a repeat and new texts."""
    ex = lambda text, split: Example(text, "positive", f"f:{split}", split)  # noqa: E731
    splits = {"train": [ex("房间很干净", "train")], "val": [ex("服务 很好 OK", "val")], "test": [ex("早餐不错!", "test")]}
    pool = tmp_path / "pool.txt"
    pool.write_text("早餐不错！\n房间很干净\n新的评论一\n新的评论一\n服务 很好  OK\n\n新的评论二\n", encoding="utf-8")
    report = DistillReport("t", 0.5, 2.0)
    kept = pool_texts([str(pool), "other"], lambda name: [ex("来自别的数据集", "train"), ex("早餐不错!", "train")],
                      splits, report)
    assert kept == ["新的评论一", "新的评论二", "来自别的数据集"]
    assert (report.dropped_in_val_test, report.dropped_in_train) == (3, 2)
    assert report.unlabelled == {str(pool): 2, "other": 1}


def test_a_pool_files_bad_rows_are_skipped_and_listed(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """A JSON-lines pool with a broken line and a non-string text: the good rows are kept, the bad ones named."""
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"text": "好评"}\n{"text": "坏\n{"text": 3}\n{"text": "差评"}\n', encoding="utf-8")
    report = DistillReport("t", 0.5, 2.0)
    with caplog.at_level("WARNING"):
        kept = pool_texts([str(pool)], lambda name: [], {"train": []}, report)
    assert kept == ["好评", "差评"]
    assert [row.split(":")[0] for row in report.bad_rows[str(pool)]] == ["line 2", "line 3"]
    assert f"distill.unlabelled {pool}: skipped 2 bad rows" in caplog.text


def test_augmented_variants_are_runs_of_whole_clauses_with_characters_dropped():
    texts = ["房间很大，但是服务很差。早餐一般！", "酒店位置不错,交通方便,就是隔音不好", "好"]
    spans = augmented(texts, copies=50, span=1.0, drop=0.0, seed=3)
    assert len(spans) == 150 and spans == augmented(texts, copies=50, span=1.0, drop=0.0, seed=3)
    clauses = [["房间很大，", "但是服务很差。", "早餐一般！"], ["酒店位置不错,", "交通方便,", "就是隔音不好"], ["好"]]
    runs = [{"".join(c[i:j]) for i in range(len(c)) for j in range(i + 1, len(c) + 1)} for c in clauses]
    assert all(v in runs[k % 3] for k, v in enumerate(spans))  # a contiguous run of whole clauses, in order
    assert {v for v in spans[0::3]} == runs[0]  # 50 draws reach every run of the 3 clauses
    dropped = augmented(texts * 100, copies=1, span=0.0, drop=0.25, seed=0)
    kept = sum(map(len, dropped)) / sum(map(len, texts * 100))
    assert 0.70 < kept < 0.80  # each character survives with probability 0.75
    assert augmented(texts, copies=2, span=0.0, drop=0.0, seed=0) == texts * 2
    assert augmented(["好", "差"] * 50, copies=1, span=0.0, drop=0.9, seed=0) == ["好", "差"] * 50  # never empty


def test_augmented_texts_join_the_pool_without_leaking_a_test_text():
    """Span-only variants of "早餐不错！房间很干净" include "早餐不错！", a test text: never kept; "房间很干净" is
    new and kept once however often it is drawn."""
    ex = lambda text, split: Example(text, "positive", f"f:{split}", split)  # noqa: E731
    splits = {"train": [ex("早餐不错！房间很干净", "train")], "test": [ex("早餐不错!", "test")]}
    report = DistillReport("t", 0.5, 2.0)
    kept = pool_texts([], None, splits, report, {"copies": 40, "span": 1.0, "drop": 0.0, "seed": 1})
    assert kept == ["房间很干净"] and report.unlabelled == {"augment": 1}
    assert report.dropped_in_val_test > 0 and report.dropped_in_val_test + report.dropped_in_train == 39


@pytest.mark.parametrize("bad, message", [({"copies": -1}, r"copies=-1"), ({"copies": 1.5}, r"copies=1.5"),
                                          ({"drop": 1.0}, r"drop=1.0"), ({"span": 2}, r"span=2"),
                                          ({"span": "half"}, r"span='half'"), ({"copies": "2"}, r"copies=2")])
def test_bad_augment_settings_are_refused(bad: dict, message: str):
    settings = {"copies": 1, "span": 0.5, "drop": 0.1, "seed": 0, **bad}
    with pytest.raises(ValueError, match=rf"distill.augment.*{message}"):
        augment_settings(settings)
    assert augment_settings({**settings, "copies": 0}) is None  # off


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from senti_lit.train import train

    root = tmp_path_factory.mktemp("teacher")
    reviews = write_reviews(root / "reviews")
    train(compose_train([f"data.path={reviews}", *TINY_MODEL, "trainer.max_epochs=6"], root / "run"))
    return root / "run" / "artifact"


@pytest.mark.slow  # a teacher and two students: ~60 s
def test_a_student_learns_from_a_teacher_with_an_unlabelled_pool(teacher: Path, tmp_path: Path):
    from senti_lit.train import train

    reviews = write_reviews(tmp_path / "reviews")  # the same reviews: the same split as the teacher's
    test_texts = (reviews / "pos.txt").read_text(encoding="utf-8").splitlines()
    extra = write_reviews(tmp_path / "extra", n_per_label=100, seed=7)
    pool = tmp_path / "pool.txt"
    pool.write_text("\n".join(test_texts + (extra / "pos.txt").read_text("utf-8").splitlines()
                              + (extra / "neg.txt").read_text("utf-8").splitlines()) + "\n", encoding="utf-8")
    overrides = [f"data.path={reviews}", *TINY_MODEL, "trainer.max_epochs=4", f"distill.teacher={teacher}",
                 f"distill.unlabelled=[{pool}]", "distill.alpha=0.7", "distill.temperature=2"]
    def config(out: Path, *extra: str):
        cfg = compose_train([*overrides, *extra], out)
        cfg.paths.cache_dir = str(tmp_path / "cache")  # both runs share the data cache, where the teacher's go
        return cfg

    summary = train(config(tmp_path / "student"))
    data = json.loads((tmp_path / "student" / "data.json").read_text())["distill"]
    assert data["labelled"] == 240 and data["teacher_cached"] is False
    assert data["dropped_in_val_test"] >= 30  # at least the pool's copies of the 30 positive val/test reviews
    lines = len(pool.read_text(encoding="utf-8").splitlines())
    assert data["unlabelled"][str(pool)] + data["dropped_in_train"] + data["dropped_in_val_test"] == lines
    assert data["unlabelled"][str(pool)] >= 150
    assert summary["test/acc"] >= 0.85 and summary["teacher/test/acc"] >= 0.85
    assert math.isfinite(summary["teacher/test/macro_f1"])
    metrics = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert "teacher/test/acc" in metrics and "test/acc" in metrics
    # the same teacher and texts again: read from the cache, not scored
    train(config(tmp_path / "again", "trainer.max_epochs=1"))
    assert json.loads((tmp_path / "again" / "data.json").read_text())["distill"]["teacher_cached"] is True


@pytest.mark.slow
def test_a_teacher_with_other_labels_is_refused(teacher: Path, tmp_path: Path):
    from senti_lit.core.errors import DataError
    from senti_lit.train import train

    data = tmp_path / "three.csv"
    data.write_text("text,label\n" + "\n".join(f"评论{i}号,{['a', 'b', 'c'][i % 3]}" for i in range(90)) + "\n",
                    encoding="utf-8")
    with pytest.raises(DataError, match=r"distill.teacher=.*its labels \['negative', 'positive'\].*same labels"):
        train(compose_train(["data=csv", f"data.path={data}", *TINY_MODEL, f"distill.teacher={teacher}"],
                            tmp_path / "run"))
    with pytest.raises(ValueError, match=r"distill.alpha=1.5"):
        train(compose_train([f"data.path={write_reviews(tmp_path / 'r')}", *TINY_MODEL, f"distill.teacher={teacher}",
                             "distill.alpha=1.5"], tmp_path / "run2"))


@pytest.mark.slow
def test_a_batch_of_pool_texts_only_trains(teacher: Path, tmp_path: Path):
    """12 labelled texts, a pool of 600, batches of 8: most training batches hold no gold label. Such a batch once
    crashed the training metrics' update (torchmetrics cannot reshape 0 predictions)."""
    from senti_lit.train import train

    reviews = write_reviews(tmp_path / "reviews")
    extra = write_reviews(tmp_path / "extra", n_per_label=300, seed=7)
    pool = tmp_path / "pool.txt"
    pool.write_text((extra / "pos.txt").read_text("utf-8") + (extra / "neg.txt").read_text("utf-8"), encoding="utf-8")
    summary = train(compose_train([f"data.path={reviews}", *TINY_MODEL, "trainer.max_epochs=2", "data.limit_train=12",
                                   "data.batch_size=8", f"distill.teacher={teacher}", f"distill.unlabelled=[{pool}]"],
                                  tmp_path / "run"))
    data = json.loads((tmp_path / "run" / "data.json").read_text())["distill"]
    assert data["labelled"] == 12 and data["unlabelled"][str(pool)] >= 500
    assert math.isfinite(summary["test/acc"])


@pytest.mark.slow
def test_a_student_learns_from_augmented_variants(teacher: Path, tmp_path: Path):
    """`distill.augment.copies=3` on 40 labelled texts: up to 120 variants the teacher labels join the pool,
    recorded in data.json; the same augment seed at another run seed reads the teacher's cache."""
    from senti_lit.train import train

    reviews = write_reviews(tmp_path / "reviews")
    base = [f"data.path={reviews}", *TINY_MODEL, "trainer.max_epochs=2", "data.limit_train=40",
            f"distill.teacher={teacher}", "distill.augment.copies=3", "distill.augment.seed=5"]

    def config(out: Path, *extra: str):
        cfg = compose_train([*base, *extra], out)
        cfg.paths.cache_dir = str(tmp_path / "cache")
        return cfg

    summary = train(config(tmp_path / "run"))
    data = json.loads((tmp_path / "run" / "data.json").read_text())["distill"]
    assert data["augment"] == {"copies": 3, "span": 0.5, "drop": 0.1, "seed": 5}
    assert 60 <= data["unlabelled"]["augment"] <= 120 and data["labelled"] == 40
    assert data["unlabelled"]["augment"] + data["dropped_in_train"] + data["dropped_in_val_test"] == 120
    assert math.isfinite(summary["test/acc"])
    train(config(tmp_path / "again", "seed=7", "trainer.max_epochs=1"))
    assert json.loads((tmp_path / "again" / "data.json").read_text())["distill"]["teacher_cached"] is True


@pytest.mark.slow
def test_a_pool_in_a_datasets_own_format_is_read_by_its_data_config(teacher: Path, tmp_path: Path):
    """Baidu ChnSentiCorp's headerless text<TAB>label TSV: as a plain file it is refused with the way to read it,
    which is its data config at another path (`name:config` + `distill.data_overrides.name`)."""
    from senti_lit.core.errors import DataError
    from senti_lit.train import train

    reviews = write_reviews(tmp_path / "reviews")
    extra = write_reviews(tmp_path / "extra", n_per_label=50, seed=7)
    baidu = tmp_path / "baidu_train.tsv"
    baidu.write_text("".join(f"{text}\t{label}\n" for name, label in (("pos", 1), ("neg", 0))
                             for text in (extra / f"{name}.txt").read_text("utf-8").splitlines()), encoding="utf-8")
    base = [f"data.path={reviews}", *TINY_MODEL, "trainer.max_epochs=1", f"distill.teacher={teacher}"]
    with pytest.raises(DataError, match=rf"distill.unlabelled: {baidu}:1: header .* lacks column\(s\) \['text'\]; "
                                        r"name the file's text column 'text'; .*distill.data_overrides") as refused:
        train(compose_train([*base, f"distill.unlabelled=[{baidu}]"], tmp_path / "as_file"))
    assert "data.source" not in str(refused.value)  # a training data config's keys do not apply to this file
    with pytest.raises(DataError, match=r"distill.data_overrides: \['baidu'\] not in distill.unlabelled=\['pool'\]"):
        train(compose_train([*base, "distill.unlabelled=[pool:chnsenticorp]",
                             f"+distill.data_overrides.baidu=['data.path={baidu}']"], tmp_path / "misnamed"))
    train(compose_train([*base, "distill.unlabelled=[pool:chnsenticorp]",
                         f"+distill.data_overrides.pool=['data.path={baidu}']"], tmp_path / "run"))
    data = json.loads((tmp_path / "run" / "data.json").read_text())["distill"]
    # the config's seeded split keeps its training share (80%) of the 100 texts; none is a task text
    assert data["unlabelled"] == {"pool:chnsenticorp": 80}, data


def write_multilabel(folder: Path) -> Path:
    """The fake reviews as a multi-label CSV: the sentiment, plus `exclaim` when a review ends with ！ (a third)."""
    reviews = write_reviews(folder / "reviews")
    rows = [(text, name) for name in ("positive", "negative")
            for text in (reviews / f"{name[:3]}.txt").read_text(encoding="utf-8").splitlines()]
    path = folder / "multi.csv"
    path.write_text("text,label\n" + "".join(f"{text},{name}{'|exclaim' if text.endswith('！') else ''}\n"
                                             for text, name in rows), encoding="utf-8")
    return path


@pytest.mark.slow  # a multi-label mini_bert teacher and a BERT student: ~45 s
def test_a_bert_student_learns_a_multilabel_teacher_through_its_own_tokenizer(local_models: dict[str, Path],
                                                                                    tmp_path: Path):
    """Multi-label, and a student of another architecture and tokenizer than the teacher's (the tiny local BERT
    snapshot, as minilm or e5_small would be): with alpha=1 the gold labels are never used, so all the student
    knows comes from the teacher's per-label probabilities; it gets tuned thresholds and a working artifact."""
    from senti_lit.inference.predictor import Predictor
    from senti_lit.train import train

    data = ["data=csv", f"data.path={write_multilabel(tmp_path)}", "data.multi_label=true",
            "data.source.label_separator=|"]
    train(compose_train([*data, *TINY_MODEL, "trainer.max_epochs=10"], tmp_path / "teacher"))
    teacher = tmp_path / "teacher" / "artifact"
    student = ["model=bert_finetune", f"model.backbone.path={local_models['bert']}", "model.optimizer.lr=3e-3",
               "data.max_length=32", "data.batch_size=16", "trainer.accelerator=cpu", "trainer.max_epochs=8",
               f"distill.teacher={teacher}", "distill.alpha=1.0", "distill.temperature=1"]
    summary = train(compose_train([*data, *student], tmp_path / "student"))
    distill = json.loads((tmp_path / "student" / "data.json").read_text())["distill"]
    assert distill["labelled"] == 240 and distill["teacher_cached"] is False
    # the sentiment is what the teacher knows well; guessing every text positive gives F1 0.67 (half are)
    assert min(summary[f"{who}test/f1_{label}"] for who in ("", "teacher/") for label in ("positive", "negative")) \
        >= 0.85, summary
    assert set(summary["calibration"]["thresholds"]) == {"positive", "negative", "exclaim"}
    predictor = Predictor.load(tmp_path / "student" / "artifact")
    assert predictor.multi_label and set(predictor.names) == {"positive", "negative", "exclaim"}
    assert "positive" in predictor.predict(["这本书很好推荐"])[0]["labels"]


@pytest.mark.slow  # a LoRA BERT student, 16 epochs: ~60 s
def test_a_lora_student_is_an_ordinary_run_its_export_and_tensorboard_included(teacher: Path, local_models: dict,
                                                                               tmp_path: Path):
    """A PEFT student (LoRA on the tiny local BERT, as e5_small + LoRA would be) of the mini_bert teacher: it learns,
    TensorBoard shows the soft loss and the teacher's test metrics beside the student's, and its artifact exports
    to a transformers folder whose pipeline gives the artifact's own probabilities."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers import pipeline

    from senti_lit.inference.hf_export import export_hf
    from senti_lit.inference.predictor import Predictor
    from senti_lit.train import train

    reviews = write_reviews(tmp_path / "reviews")  # the teacher's reviews: the same split
    student = ["model=bert_lora", f"model.backbone.path={local_models['bert']}", f"data.path={reviews}",
               "model.method.target_modules=[query,key,value,dense]", "model.optimizer.lr=1e-2", "data.max_length=32",
               "data.batch_size=16", "trainer.accelerator=cpu", "trainer.max_epochs=16", f"distill.teacher={teacher}"]
    run = tmp_path / "student"
    summary = train(compose_train(student, run))
    assert json.loads((run / "data.json").read_text())["distill"]["labelled"] == 240
    assert summary["test/acc"] >= 0.85 and summary["teacher/test/acc"] >= 0.85, summary
    scalars = set(EventAccumulator(str(run / "tensorboard" / "fit")).Reload().Tags()["scalars"])
    assert {"train/distill_loss", "teacher/test/acc", "teacher/test/macro_f1", "test/acc"} <= scalars, scalars
    texts = ["这本书很好推荐", "质量太差不会再买", "还行吧"]
    ours = Predictor.load(run / "artifact").predict(texts)
    exported = export_hf(run / "artifact", tmp_path / "hf", texts)
    for answer, theirs in zip(ours, pipeline("text-classification", model=str(exported), top_k=None,
                                             device="cpu")(texts, truncation=True)):
        assert {d["label"]: d["score"] for d in theirs} == pytest.approx(answer["probs"], abs=1e-4)


@pytest.mark.slow  # DDP: two processes, ~60 s
def test_under_ddp_the_teacher_scores_once_and_the_second_rank_reads_the_cache(teacher: Path, tmp_path: Path):
    import subprocess
    import sys

    reviews = write_reviews(tmp_path / "reviews")
    result = subprocess.run([sys.executable, "-m", "senti_lit.train", f"data.path={reviews}", *TINY_MODEL,
                             "trainer.max_epochs=1", "model.mlm_warmup.epochs=0", "trainer=ddp", "trainer.devices=2",
                             f"distill.teacher={teacher}", f"paths.cache_dir={tmp_path / 'cache'}",
                             f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = (tmp_path / "logs" / "train" / "runs").iterdir()
    assert json.loads((run / "data.json").read_text())["distill"]["teacher_cached"] is False  # rank 0 scored
    rank1 = (run / "train_ddp_process_1.log").read_text(encoding="utf-8")
    assert "240 training + 0 unlabelled texts from the cache" in rank1, rank1[-2000:]
    # the training and test texts' logits, one file each; no rank's temporary file left behind
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2 and not list((tmp_path / "cache").rglob("*.tmp*"))
    assert "teacher/test/acc" in json.loads((run / "metrics.json").read_text())
