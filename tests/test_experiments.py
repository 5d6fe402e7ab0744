"""Every experiment file (one per seed system) composes and runs with fast_dev_run on tiny local models and fixture
files in its dataset's published format."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from helpers.checks import artifact_test_accuracy
from helpers.compose import compose_train
from helpers.data import FILLER, NEGATIVE, POSITIVE, write_reviews
from helpers.models import tiny_pretrained
from senti_lit.core.config import CONFIG_DIR
from senti_lit.train import train

EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = POSITIVE + NEGATIVE
    return [f"{''.join(rng.choices(FILLER, k=6))}{rng.choice(words)}{i}" for i in range(n)]


def write_dataset(name: str, labels: list[str], folder: Path, knowledge: bool = False) -> Path:
    """A small copy of data config `name` in its first published layout (20 rows per label), with a
    knowledge.jsonl explanation per text when asked."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(t, labels[i % len(labels)]) for i, t in enumerate(texts(20 * len(labels), seed=len(name)))]
    if knowledge:  # each explanation names its label, in English or Chinese: masking must cut it
        words = {"joy": "喜悦", "sadness": "Sorrow"}
        (folder / "knowledge.jsonl").write_text("".join(
            json.dumps({"text": t, "knowledge": f"作者的情绪是{words.get(l, l)}，语气平静"}, ensure_ascii=False) + "\n"
            for t, l in rows), encoding="utf-8")
    if name == "weibo":
        ids = {"negative": 0, "positive": 1}
        (folder / "weibo_senti_100k.csv").write_text(
            "label,review\n" + "\n".join(f"{ids[l]},{t}" for t, l in rows) + "\n", encoding="utf-8")
    elif name == "chnsenticorp":
        (folder / "train.tsv").write_text("\n".join(f"{t}\t{l}" for t, l in rows) + "\n", encoding="utf-8")
    elif name == "ocemotion":
        published = {"joy": "happiness"}
        (folder / "OCEMOTION_train1128.csv").write_text(
            "\n".join(f"{i}\t{t}\t{published.get(l, l)}" for i, (t, l) in enumerate(rows)) + "\n", encoding="utf-8")
    elif name == "emotions_in_text":
        (folder / "Emotion_final.csv").write_text(
            "Text,Emotion\n" + "\n".join(f"{t},{'happy' if l == 'joy' else l}" for t, l in rows) + "\n",
            encoding="utf-8")
    elif name == "cecps8":
        published = ["Love", "Joy", "Anxiety", "Sorrow", "Expect", "Hate", "Surprise", "Anger"]
        lines = ["Text," + ",".join(f"'{p}'" for p in published)]
        lines += [t + "," + ",".join("1" if j in (i % 8, (i + 3) % 8) else "0" for j in range(8))
                  for i, (t, _) in enumerate(rows)]
        (folder / "train1.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif name == "demo":
        write_reviews(folder, n_per_label=60)
    else:
        raise AssertionError(f"no fixture writer for data={name}: add one")
    return folder


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("experiment_models")
    reviews = write_reviews(root / "reviews", n_per_label=60)
    return {t: tiny_pretrained(root / t, t, reviews) for t in ("bert", "gpt2")}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_with_fast_dev_run(experiment: str, tiny_models: dict[str, Path], tmp_path: Path):
    cfg = compose_train([f"experiment={experiment}"], tmp_path / "probe")
    data_name = Path(cfg.data.path).name if cfg.data.path else "demo"
    labels = list(cfg.data.labels)
    folder = write_dataset(data_name, labels, tmp_path / "data", knowledge=bool(cfg.data.get("knowledge")))
    overrides = [f"experiment={experiment}", f"data.path={folder}",
                 "debug=fdr", "trainer.accelerator=cpu", "data.max_length=48", "data.batch_size=8"]
    backbone = cfg.model.backbone
    if backbone.path:
        overrides.append(f"model.backbone.path={tiny_models[backbone.model_type]}")
    else:  # from scratch: keep it tiny
        overrides += ["model.tokenizer.train.vocab_size=300", "model.backbone.config.max_position_embeddings=64"]
    if cfg.model.get("verbalizer"):  # one character of the tiny vocabulary per label
        chars = sorted({c for t in texts(200, 0) for c in t if not c.isdigit()})
        overrides += [f"model.verbalizer.words.{label}='{chars[i]}'" for i, label in enumerate(labels)]
    run_cfg = compose_train(overrides, tmp_path / "run")
    summary = train(run_cfg)
    metric = "test/micro_f1" if cfg.data.multi_label else "test/acc"
    assert 0.0 <= summary[metric] <= 1.0
    # one batch learns nothing; the saved artifact, loaded back, answers the test split (one eval batch here) as the
    # run's test loop did: texts with every label right, explanations joined as in training
    assert artifact_test_accuracy(tmp_path / "run", run_cfg) == pytest.approx(summary["test/acc"], abs=1e-6)
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    assert data["labels"] == labels
    if cfg.data.get("knowledge"):
        assert data["knowledge"]["matched"] == sum(s["size"] for s in data["splits"].values())
        assert data["knowledge"]["masked_words"] == data["knowledge"]["matched"]  # one label word per explanation
