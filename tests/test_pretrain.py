"""`senti_lit.pretrain`: MLM on a data config's texts or a text file -> a directory `train` fine-tunes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from helpers.checks import artifact_test_accuracy
from helpers.compose import TINY_MODEL, compose_config, compose_train
from senti_lit.train import train
from senti_lit.training.pretraining import pretrain

TINY_BACKBONE = [o for o in TINY_MODEL if o.startswith(("model.tokenizer", "model.backbone", "data.", "trainer."))]


def compose_pretrain(overrides: list[str], out: Path):
    return compose_config("pretrain", overrides, out)


@pytest.mark.slow  # 6 MLM epochs and a fine-tuning run: ~13 s
def test_pretrain_then_fine_tune(reviews_dir: Path, tmp_path: Path):
    cfg = compose_pretrain([f"data.path={reviews_dir}", *TINY_BACKBONE, "mlm.epochs=6", "mlm.lr=5e-3", "mlm.batch_size=32",
                            "trainer.log_every_n_steps=1"], tmp_path / "pre")
    folder = pretrain(cfg)
    report = json.loads((tmp_path / "pre" / "pretrain.json").read_text())
    assert report["texts"] == 240  # the train split only: val/test stay unseen
    losses = report["mlm_loss_per_epoch"]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.3, losses  # it learns
    saved = AutoModel.from_pretrained(folder)

    run = compose_train([f"data.path={reviews_dir}", *TINY_MODEL, "model.mlm_warmup.epochs=0", "debug=fdr",
                         f"model.backbone.path={folder}"], tmp_path / "fine")
    assert run.model.tokenizer.path == str(folder)  # the pretrained tokenizer comes with it
    summary = train(run)
    # one batch learns nothing; the artifact, loaded back, answers the test split as the run's test loop did
    assert artifact_test_accuracy(tmp_path / "fine", run) == pytest.approx(summary["test/acc"], abs=1e-6)
    tokenizer = json.loads((tmp_path / "fine" / "tokenizer" / "tokenizer.json").read_text())
    assert tokenizer["model"]["vocab"] == json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    from senti_lit.data.tokenization import build_tokenizer
    from senti_lit.models.backbone import build_backbone

    loaded = build_backbone(build_tokenizer(**run.model.tokenizer), **run.model.backbone)  # what train() built on
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), saved.state_dict().values()))


def test_pretrain_on_a_text_file(tmp_path: Path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["今天天气很好", "", "今天天气很好", *(f"第{i}句话没有标签" for i in range(60))]) + "\n",
                      encoding="utf-8")
    cfg = compose_pretrain([f"text_file={corpus}", *TINY_BACKBONE, "mlm.epochs=1", "trainer.log_every_n_steps=1"],
                           tmp_path / "pre")
    pretrain(cfg)
    assert json.loads((tmp_path / "pre" / "pretrain.json").read_text())["texts"] == 61  # blank + repeat skipped


def test_pretrain_corpus_from_several_datasets_never_holds_their_val_or_test_texts(reviews_dir: Path, tmp_path: Path):
    """Like ChnSentiCorp's two forms, the datasets overlap: a text in one's train split and the other's test split
    must not be pretrained on."""
    import csv

    from hydra.utils import instantiate

    from senti_lit.core.config import data_config
    from senti_lit.training.pretraining import corpus

    demo = [t for name in ("pos", "neg") for t in (reviews_dir / f"{name}.txt").read_text("utf-8").split("\n") if t]
    hotel = tmp_path / "hotel"
    hotel.mkdir()
    with (hotel / "ChnSentiCorp_htl_all.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "review"])
        writer.writerows([i % 2, text] for i, text in enumerate(demo[:60] + demo[-60:]))  # shared with demo
        writer.writerows([i % 2, f"酒店第{i}号房间的评价"] for i in range(100))
    overrides = {"demo": [f"data.path={reviews_dir}"], "hotel": [f"data.path={hotel}"]}
    cfg = compose_pretrain(["datasets=[demo,hotel:chnsenticorp]", *TINY_BACKBONE,
                            *(f"+data_overrides.{k}=['{v[0]}']" for k, v in overrides.items())], tmp_path / "pre")
    texts, report = corpus(cfg)

    held_out, train_texts = set(), []
    for (name, extra), config in zip(overrides.items(), ("demo", "chnsenticorp")):
        splits = instantiate(data_config("pretrain", config, [*extra, f"paths.cache_dir={tmp_path}/c"])).prepare_splits()
        held_out |= {ex.text for split in ("val", "test") for ex in splits[split]}
        train_texts += [ex.text for ex in splits["train"]]
    assert report["per_dataset"] == {"demo": 240, "hotel": 176}
    assert not set(texts) & held_out
    assert report["held_out_dropped"] > 0  # the overlap was real
    assert set(texts) == set(train_texts) - held_out and len(texts) == len(set(texts))
    assert len(texts) + report["held_out_dropped"] + report["repeats_dropped"] == len(train_texts)


def test_pretrain_data_overrides_must_name_a_dataset(tmp_path: Path):
    import pytest

    from senti_lit.core.errors import DataError
    from senti_lit.training.pretraining import corpus

    cfg = compose_pretrain(["datasets=[demo]", "+data_overrides.weibo=['data.path=x']"], tmp_path)
    with pytest.raises(DataError, match=r"data_overrides: \['weibo'\] not in datasets"):
        corpus(cfg)


def test_pretrain_corpus_options_that_conflict_are_refused(tmp_path: Path):
    import pytest

    from senti_lit.core.errors import DataError
    from senti_lit.training.pretraining import corpus

    with pytest.raises(DataError, match="a name twice"):
        corpus(compose_pretrain(["datasets=[demo,demo]"], tmp_path))
    with pytest.raises(DataError, match="text_file and datasets are two corpora"):
        corpus(compose_pretrain(["datasets=[demo]", f"text_file={tmp_path}/x.txt"], tmp_path))
