"""The seeds' research methods as switches: words kept whole, generative augmentation mixed into train only, the
cross-dataset accuracy matrix, one-vs-rest multi-label heads with the seed's four metrics, and data=mix."""
from __future__ import annotations

import csv
import functools
import json
import random
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from tokenizers import ByteLevelBPETokenizer
from transformers import AutoModelForCausalLM, GPT2Config, PreTrainedTokenizerFast

from helpers.checks import artifact_test_accuracy
from helpers.compose import TINY_MODEL, compose_config, compose_train
from helpers.data import NEGATIVE, POSITIVE, review, write_reviews
from helpers.models import overrides
from senti_lit.core.errors import DataError
from senti_lit.data.datamodule import TextClassificationDataModule
from senti_lit.data.mix import MixSource
from senti_lit.data.vocabulary import add_whole_words, init_whole_words
from senti_lit.inference.evaluation import run as evaluate
from senti_lit.inference.predictor import Predictor
from senti_lit.models.heads import OneVsRestHead
from senti_lit.train import train
from senti_lit.training.augmentation import run as augment
from senti_lit.training.steps import data_for_run, model_for_run

# fp32 training: the test metrics then equal what the (fp32) Predictor computes, example for example
QUIET = ["callbacks.rich_progress_bar=null", "model.mlm_warmup.epochs=0", "trainer.precision=32-true"]


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def three_way(path: Path, n: int = 60, seed: int = 1) -> Path:
    """good / bad / neutral reviews: another dataset's label names, and a label the demo model does not know."""
    rng = random.Random(seed)
    rows = [(review(rng, POSITIVE), "good") for _ in range(n)] + [(review(rng, NEGATIVE), "bad") for _ in range(n)]
    rows += [("".join(rng.choices("这本书内容我们的是了在有一个", k=rng.randint(6, 12))) + "。", "neutral")
             for _ in range(n // 2)]
    return write_csv(path, list(dict.fromkeys(rows)))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on the review fixtures (negative/positive): its run directory."""
    root = tmp_path_factory.mktemp("demo")
    reviews = write_reviews(root / "reviews", n_per_label=100)
    cfg = compose_train([f"data.path={reviews}", *TINY_MODEL, *QUIET, "trainer.max_epochs=2"], root / "run")
    train(cfg)
    return root / "run"


# -- words kept whole -------------------------------------------------------------------------------------------
def byte_level_gpt2_tokenizer(folder: Path, texts: list[str]) -> PreTrainedTokenizerFast:
    """A GPT2-style byte-level BPE tokenizer (the English GPT2's kind, unlike the Chinese GPT2's BERT tokenizer)."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")


def test_kept_words_are_one_token_for_bert_and_gpt2_tokenizers(local_models: dict, tmp_path: Path):
    from senti_lit.data.tokenization import build_tokenizer

    words = ["非常满意", "不推荐", "lovely day"]
    reviews = [line for f in ("pos.txt", "neg.txt") for line in (local_models["reviews"] / f).read_text().split()]
    for tokenizer in (build_tokenizer(path=str(local_models["bert"])),
                      byte_level_gpt2_tokenizer(tmp_path, reviews + ["a lovely day"])):
        before = {w: tokenizer(w, add_special_tokens=False)["input_ids"] for w in words}
        assert all(len(ids) > 1 for ids in before.values())
        pieces = add_whole_words(tokenizer, words + ["非常满意"])  # repeats are harmless
        assert pieces == before
        for word in words:
            ids = tokenizer(word, add_special_tokens=False)["input_ids"]
            assert ids == [tokenizer.convert_tokens_to_ids(word)]
        # inside a sentence too
        sentence = tokenizer("我们非常满意", add_special_tokens=False)["input_ids"]
        assert tokenizer.convert_tokens_to_ids("非常满意") in sentence
        assert add_whole_words(tokenizer, words) == {}  # already whole: nothing added twice


def test_embeddings_grow_with_mean_of_pieces_and_train(local_models: dict, tmp_path: Path):
    words = ["非常满意", "很失望"]
    cfg = compose_train(overrides("bert_finetune", local_models, *QUIET, "data.tokenizer.keep_whole=['非常满意','很失望']",
                                  "trainer.max_epochs=1", "+trainer.limit_train_batches=3",
                                  "+trainer.limit_val_batches=1"), tmp_path / "run")
    datamodule, tokenizer = data_for_run(cfg)
    assert set(datamodule.added_words) == set(words)
    model = model_for_run(cfg, datamodule, tokenizer)[1]
    embeddings = model.backbone.get_input_embeddings().weight
    assert embeddings.size(0) == len(tokenizer)
    for word, ids in datamodule.added_words.items():
        row = embeddings[tokenizer.convert_tokens_to_ids(word)]
        assert torch.allclose(row, embeddings[ids].mean(0))
    summary = train(cfg)
    # three steps learn little; the artifact (with the grown vocabulary) must answer the test texts as the run did
    assert artifact_test_accuracy(tmp_path / "run", cfg) == pytest.approx(summary["test/acc"], abs=1e-6)
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    assert set(data["keep_whole_added"]) == set(words)
    predictor = Predictor.load(tmp_path / "run" / "artifact")  # the artifact holds the grown vocabulary
    assert len(predictor.tokenizer) == len(tokenizer)
    assert predictor.predict(["非常满意，推荐"])[0]["label"] in ("negative", "positive")


def test_gpt2_lm_head_rows_follow_the_input_rows(tmp_path: Path):
    texts = ["a lovely day", "a bad day", "lovely lovely"] * 10
    tokenizer = byte_level_gpt2_tokenizer(tmp_path, texts)
    lm = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2))
    pieces = add_whole_words(tokenizer, ["lovely day"])
    init_whole_words(lm, tokenizer, pieces)
    new = tokenizer.convert_tokens_to_ids("lovely day")
    assert lm.get_input_embeddings().weight.size(0) == len(tokenizer)
    expected = lm.get_input_embeddings().weight[pieces["lovely day"]].mean(0)
    assert torch.allclose(lm.get_input_embeddings().weight[new], expected)
    assert torch.allclose(lm.get_output_embeddings().weight[new], expected)  # tied


def test_keep_whole_words_from_a_file_and_a_clear_error(tmp_path: Path):
    from senti_lit.data.vocabulary import read_words

    (tmp_path / "words.txt").write_text("# sentiment words\n非常满意\n\n不推荐\n非常满意\n", encoding="utf-8")
    assert read_words(str(tmp_path / "words.txt")) == ["非常满意", "不推荐"]
    with pytest.raises(FileNotFoundError, match="keep_whole=.*nope.txt: no such file"):
        read_words(str(tmp_path / "nope.txt"))


# -- generative augmentation ------------------------------------------------------------------------------------
@pytest.mark.slow  # LM fine-tuning and generation: ~20 s
def test_augment_generates_new_texts_for_train_only(local_models: dict, demo_run: Path, tmp_path: Path):
    reviews = local_models["reviews"]
    cfg = compose_config("augment", [f"data.path={reviews}", f"lm.path={local_models['gpt2']}", "lm.epochs=1",
                                     "lm.batch_size=16", "n_per_label=6", "batch_size=8", "max_rounds=3",
                                     "min_chars=2", "progress_bar=false", "trainer.accelerator=cpu",
                                     f"output={tmp_path / 'synthetic.csv'}"], tmp_path / "aug")
    report = augment(cfg)
    rows = read_rows(tmp_path / "synthetic.csv")
    assert rows and {r["source"] for r in rows} == {"synthetic"} and len(rows) == report["rows"]
    assert {r["label"] for r in rows} <= {"negative", "positive"}
    for label, counts in report["counts"].items():  # every generated text is accounted for
        assert counts["generated"] >= counts["kept"] + counts.get("too_short", 0) + counts.get(
            "duplicate_or_in_data", 0)
        assert counts["kept"] == sum(r["label"] == label for r in rows) <= 6
    datamodule = instantiate(compose_train([f"data.path={reviews}"], tmp_path / "plain").data)
    splits = datamodule.prepare_splits()
    every_text = {ex.text for part in splits.values() for ex in part}
    assert not every_text & {r["text"] for r in rows}  # nothing already in the data
    assert len(set(r["text"] for r in rows)) == len(rows)  # no repeats

    mixed = instantiate(compose_train([f"data.path={reviews}", f"data.augment.path={tmp_path / 'synthetic.csv'}"],
                                      tmp_path / "mixed").data)
    mixed_splits = mixed.prepare_splits()
    assert len(mixed_splits["train"]) == len(splits["train"]) + len(rows)
    for name in ("val", "test"):  # never into evaluation
        assert [ex.text for ex in mixed_splits[name]] == [ex.text for ex in splits[name]]
    assert mixed.summary()["augment"]["added_to_train"] == len(rows)

    # a classifier filter at an unreachable confidence keeps nothing and says so
    strict = compose_config("augment", [*cfg_overrides(cfg), f"filter.artifact={demo_run / 'artifact'}",
                                        "filter.min_confidence=1.0", f"output={tmp_path / 'strict.csv'}"],
                            tmp_path / "aug2")
    report = augment(strict)
    assert report["rows"] == 0
    assert sum(c.get("rejected_by_classifier", 0) for c in report["counts"].values()) > 0


def cfg_overrides(cfg) -> list[str]:
    return [f"data.path={cfg.data.path}", f"lm.path={cfg.lm.path}", "lm.epochs=1", "n_per_label=3", "batch_size=8",
            "max_rounds=1", "min_chars=2", "progress_bar=false", "trainer.accelerator=cpu"]


def test_augment_rows_with_an_unknown_label_are_named(tmp_path: Path, reviews_dir: Path):
    extra = write_csv(tmp_path / "extra.csv", [("全新的一条好评", "positive"), ("奇怪的标签", "mixed")])
    datamodule = instantiate(compose_train([f"data.path={reviews_dir}", f"data.augment.path={extra}"],
                                           tmp_path / "run").data)
    with pytest.raises(DataError, match=r"extra.csv:3.*'mixed'.*data.augment rows must use this dataset's labels"):
        datamodule.prepare_splits()


# -- cross-dataset matrix ---------------------------------------------------------------------------------------
def test_cross_dataset_matrix(demo_run: Path, tmp_path: Path):
    other = three_way(tmp_path / "three.csv")
    other_run = tmp_path / "other_run"
    train(compose_train(["data=csv", f"data.path={other}", *TINY_MODEL, *QUIET, "trainer.max_epochs=1"], other_run))
    reviews = demo_run.parent / "reviews"
    cfg = compose_config("evaluate", [f"artifacts=[{demo_run / 'artifact'},{other_run / 'artifact'}]",
                                      "datasets=[demo,csv]", f"+data_overrides.demo=['data.path={reviews}']",
                                      f"+data_overrides.csv=['data.path={other}']",
                                      "+label_map={good: positive, bad: negative, positive: good, negative: bad}"],
                         tmp_path / "eval")
    cells = evaluate(cfg)
    demo, three = cells["run"], cells["other_run"]
    # the demo model learned its fixture: test/acc 0.95 (20 texts) at the default seed 42; 0.40-0.50 with the labels
    # shuffled. Two epochs do not learn it at every seed (seeds 1-5: 1.0, 0.95, 0.95, 0.65, 1.0): the bound is for 42
    assert demo["demo"]["accuracy"] >= 0.8, demo
    # the diagonal is each model's own test split: the run's test accuracy
    assert demo["demo"]["accuracy"] == pytest.approx(json.loads((demo_run / "metrics.json").read_text())["test/acc"])
    assert three["csv"]["accuracy"] == pytest.approx(json.loads((other_run / "metrics.json").read_text())["test/acc"])
    # labels the demo model does not have are reported, not mapped
    test_split = instantiate(compose_train(["data=csv", f"data.path={other}"], tmp_path / "x").data).prepare_splits()
    neutral = sum(ex.label == "neutral" for ex in test_split["test"])
    assert neutral > 0 and demo["csv"]["absent"] == {"neutral": neutral}
    assert demo["csv"]["evaluated"] == len(test_split["test"]) - neutral
    assert demo["csv"]["mapping"] == {"bad": "negative", "good": "positive", "neutral": None}
    assert three["demo"]["absent"] == {} and three["demo"]["evaluated"] > 0
    out = tmp_path / "eval"
    table = (out / "matrix.md").read_text()
    assert "| run |" in table and "labels absent from the model, left out: {'neutral'" in table
    assert (out / "matrix.png").stat().st_size > 1000
    rows = [list(r.values()) for r in read_rows(out / "matrix.csv")]
    assert read_rows(out / "matrix.csv")[0].keys() == {"model (trained on)", "demo", "csv"}
    assert rows[0][0] == "run" and float(rows[0][1]) == demo["demo"]["accuracy"]


# -- one-vs-rest and the seed's four metrics ---------------------------------------------------------------------
def multi_label_csv(path: Path, n: int = 90, seed: int = 2) -> Path:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        labels = sorted(rng.sample(["joy", "love", "anger"], rng.randint(1, 2)))
        words = {"joy": "开心", "love": "喜欢", "anger": "生气"}
        text = "".join(rng.choices("这本书内容我们的是了在有一个", k=rng.randint(4, 8))) + "".join(words[l] for l in labels)
        rows.append((text + str(rng.randint(0, 999)), ",".join(labels)))
    return write_csv(path, rows)


@pytest.mark.parametrize("strategy", ["sigmoid", pytest.param("one_vs_rest", marks=pytest.mark.slow)])  # ~17 s
def test_multilabel_strategies_report_the_four_metrics(strategy: str, tmp_path: Path):
    data = multi_label_csv(tmp_path / "ml.csv")
    cfg = compose_train(["data=csv", f"data.path={data}", "data.multi_label=true", "data.source.label_separator=','",
                         f"model.multilabel={strategy}", *TINY_MODEL, *QUIET, "trainer.max_epochs=2"], tmp_path / "r")
    summary = train(cfg)
    for metric in ("acc", "label_acc", "micro_f1", "macro_f1"):
        assert 0.0 <= summary[f"test/{metric}"] <= 1.0
    # test/acc counts texts with every label right: the artifact's answers, compared with the gold sets, agree
    assert artifact_test_accuracy(tmp_path / "r", cfg) == pytest.approx(summary["test/acc"], abs=1e-6)
    assert summary["test/label_acc"] == pytest.approx(1 - summary["test/hamming"], abs=1e-6)
    assert summary["test/label_acc"] >= summary["test/acc"]  # every label right implies each label right
    predictor = Predictor.load(tmp_path / "r" / "artifact")
    assert isinstance(predictor.model.head, OneVsRestHead) == (strategy == "one_vs_rest")
    assert set(predictor.predict(["开心喜欢"])[0]["probs"]) == {"anger", "joy", "love"}


def test_one_vs_rest_logit_is_each_binary_classifiers_probability():
    head = OneVsRestHead(8, 3, pooling="mean", dropout=0.0, hidden=4).eval()
    hidden, mask = torch.randn(2, 5, 8), torch.ones(2, 5)
    logits = head(hidden, mask)
    pooled = hidden.mean(1)
    for i, classifier in enumerate(head.classifiers):
        softmax = classifier(pooled).softmax(-1)[:, 1]
        assert torch.allclose(logits[:, i].sigmoid(), softmax, atol=1e-6)


def test_one_vs_rest_needs_multi_label_data(tmp_path: Path, reviews_dir: Path):
    cfg = compose_train([f"data.path={reviews_dir}", "model.multilabel=one_vs_rest", *TINY_MODEL, *QUIET],
                        tmp_path / "r")
    with pytest.raises(ValueError, match="one_vs_rest needs multi-label data"):
        train(cfg)


# -- data=mix ----------------------------------------------------------------------------------------------------
def test_mix_keeps_each_parts_splits_and_counts_dropped_labels(tmp_path: Path, reviews_dir: Path):
    other = three_way(tmp_path / "three.csv")
    demo = instantiate(compose_train([f"data.path={reviews_dir}"], tmp_path / "a").data)
    three = instantiate(compose_train(["data=csv", f"data.path={other}"], tmp_path / "b").data)
    source = functools.partial(MixSource, parts={"demo": demo, "three": three}, labels=["negative", "positive"],
                               aliases={"good": "positive", "bad": "negative"})
    mix = TextClassificationDataModule(source, labels=["negative", "positive"],
                                       aliases={"good": "positive", "bad": "negative"}, per_label=40)
    splits = mix.prepare_splits()
    assert mix.label_space.names == ("negative", "positive")
    for name in ("val", "test"):  # a part's evaluation texts stay evaluation texts
        assert {ex.text for ex in demo.splits[name]} <= {ex.text for ex in splits[name]}
    neutral = sum(ex.label == "neutral" for part in three.splits.values() for ex in part)
    summary = mix.summary()
    assert summary["dropped"]["bad_rows"] == {"three: label 'neutral' not in data.labels": neutral}
    assert summary["splits"]["train"]["labels"] == {"negative": 40, "positive": 40}  # balanced: per_label
    assert {ex.origin.split(":")[0] for ex in splits["test"]} == {"demo", "three"}


def test_mix_configs_compose_with_their_parts(tmp_path: Path):
    cfg = compose_train(["data=mix", "~data@data.source.parts.tweet_emotions", "+data@data.source.parts.more=csv"],
                        tmp_path)
    datamodule = instantiate(cfg.data)
    parts = datamodule.source_factory.keywords["parts"]
    assert set(parts) == {"emotions_in_text", "more"}
    assert all(isinstance(p, TextClassificationDataModule) for p in parts.values())
    assert len(compose_train(["data=mix13"], tmp_path / "13").data.labels) == 13


@pytest.mark.slow  # the evaluate command in a subprocess
def test_evaluate_command_line(demo_run: Path, tmp_path: Path):
    import subprocess
    import sys

    reviews = demo_run.parent / "reviews"
    result = subprocess.run([sys.executable, "-m", "senti_lit.evaluate", f"artifacts=[{demo_run / 'artifact'}]",
                             "datasets=[demo]", f"+data_overrides.demo=['data.path={reviews}']",
                             f"hydra.run.dir={tmp_path / 'out'}", f"paths.data_dir={tmp_path}"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    accuracy = json.loads((demo_run / "metrics.json").read_text())["test/acc"]
    assert f"| run | {accuracy:.4f} |" in (tmp_path / "out" / "matrix.md").read_text()
    assert "Warning" not in result.stderr, result.stderr[-2000:]
