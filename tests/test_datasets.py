"""Every named data config reads its dataset's published files (written here in the exact formats, with their
quirks) into the expected records, labels and splits; bad files give errors that name the file and the fix."""
from __future__ import annotations

import json
import sys
import types
from collections import Counter
from pathlib import Path

import pytest
from hydra.utils import instantiate

from helpers.compose import compose_train
from senti_lit.core.errors import DataError


def datamodule(name: str, path: Path, *overrides: str):
    cfg = compose_train([f"data={name}", f"data.path={path}", *overrides], path.parent / f"out_{path.name}")
    return instantiate(cfg.data)


def records(dm) -> dict[str, list[tuple[str, object]]]:
    return {name: sorted((ex.text, ex.label) for ex in part) for name, part in dm.prepare_splits().items()}


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


# -- weibo ----------------------------------------------------------------------------------------------------------
def weibo_rows(n: int, start: int = 0) -> list[tuple[str, str]]:
    return [(str(i % 2), f"微博{i}[哈哈]@朋友 http://t.cn/x{i}") for i in range(start, start + n)]


def test_weibo_full_csv(tmp_path: Path):
    rows = weibo_rows(40)
    lines = ["label,review", *(f"{l},{t}" for l, t in rows),
             '1,"转发,""好""开心"', "0,同一句话", "1,同一句话", "1,微博1[哈哈]@朋友 http://t.cn/x1"]
    folder = tmp_path / "weibo"
    write(folder / "weibo_senti_100k.csv", "\n".join(lines) + "\n")
    dm = datamodule("weibo", folder)
    splits = records(dm)
    everything = [r for part in splits.values() for r in part]
    assert ('转发,"好"开心', "positive") in everything
    assert ("微博1[哈哈]@朋友 http://t.cn/x1", "positive") in everything
    assert not any(text == "同一句话" for text, _ in everything)  # labelled both ways: dropped
    report = dm.summary()
    assert (report["rows_read"], report["kept"], report["dropped"]["duplicates"],
            report["dropped"]["contradictory_rows"]) == (44, 41, 1, 2)
    assert report["labels"] == ["negative", "positive"] and report["source"].endswith("layout=full)")
    assert {k: len(v) for k, v in splits.items()} == {"train": 32, "val": 4, "test": 5}


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_weibo_split_copies_are_tab_separated_with_quotes_in_texts(suffix: str, tmp_path: Path):
    folder = tmp_path / "weibo"
    parts = {"train": (f"train{suffix}", "x_train", 20, 0), "val": (f"dev{suffix}", "x_valid", 6, 100),
             "test": (f"test{suffix}", "x_test", 6, 200)}
    for name, (file_name, header, n, start) in parts.items():
        rows = [f"{l}\t{t}" for l, t in weibo_rows(n, start)]
        rows.append(f'1\t"引号开头 {name}')  # an unbalanced quote: only a no-quoting reader keeps this row intact
        write(folder / file_name, f"label\t{header}\n" + "\n".join(rows) + "\n")
    splits = records(datamodule("weibo", folder))
    assert {k: len(v) for k, v in splits.items()} == {"train": 21, "val": 7, "test": 7}  # published splits kept
    assert ('"引号开头 val', "positive") in splits["val"]


def test_weibo_single_split_file_is_read_unsplit(tmp_path: Path):
    f = write(tmp_path / "dev.tsv", "label\tx_valid\n" + "\n".join(f"{l}\t{t}" for l, t in weibo_rows(30)) + "\n")
    dm = datamodule("weibo", f)
    assert sum(len(v) for v in records(dm).values()) == 30
    assert dm.summary()["source"].endswith("layout=split_tsv)")


# -- chnsenticorp ---------------------------------------------------------------------------------------------------
def baidu_file(folder: Path, name: str, n: int, start: int) -> None:
    rows = [f"房间{'很好' if i % 2 else '很差'}{i}\t{'positive' if i % 2 else 'negative'}" for i in range(start, start + n)]
    rows.append('他说"不错\tpositive')  # quote characters inside the text: the file must be read with no quoting
    write(folder / name, "\n".join(rows) + "\n")


def test_chnsenticorp_baidu_tsvs_keep_official_splits(tmp_path: Path):
    folder = tmp_path / "chnsenticorp"
    baidu_file(folder, "train.tsv", 30, 0)
    baidu_file(folder, "dev.tsv", 8, 100)
    baidu_file(folder, "test.tsv", 8, 200)
    write(folder / "ChnSentiCorp_htl_all.csv", "label,review\n1,酒店不错\n0,太吵\n")  # both forms: the user says
    with pytest.raises(DataError, match=r"holds 2 of this dataset's layouts: baidu \(train.tsv, dev.tsv, test.tsv\); "
                                        r"htl_all \(ChnSentiCorp_htl_all.csv\); choose one with "
                                        r"data.source.layout=baidu"):
        datamodule("chnsenticorp", folder).prepare_splits()
    dm = datamodule("chnsenticorp", folder, "data.source.layout=baidu")
    splits = records(dm)
    # the quoted row is in all three files: test keeps it, train and val lose it (counted as duplicates)
    assert {k: len(v) for k, v in splits.items()} == {"train": 30, "val": 8, "test": 9}
    assert ('他说"不错', "positive") in splits["test"]
    assert ("房间很好101", "positive") in splits["val"]
    assert dm.summary()["dropped"]["cross_split"] == 2 and dm.summary()["source"].endswith("layout=baidu)")


def test_chnsenticorp_htl_all_drops_the_empty_review(tmp_path: Path):
    rows = ["label,review", *(f"{i % 2},\"酒店{i}，{'好' if i % 2 else '差'}\"" for i in range(30)), "1,"]
    folder = tmp_path / "chnsenticorp"
    write(folder / "ChnSentiCorp_htl_all.csv", "\ufeff" + "\n".join(rows) + "\n")  # saved with a BOM
    dm = datamodule("chnsenticorp", folder)
    splits = records(dm)
    assert dm.summary()["dropped"]["empty"] == 1 and sum(map(len, splits.values())) == 30
    assert ("酒店1，好", "positive") in [r for part in splits.values() for r in part]


def test_a_file_that_fits_no_layout_names_the_layouts(tmp_path: Path):
    f = write(tmp_path / "reviews.jsonl", '{"text": "好", "label": 1}\n')
    with pytest.raises(DataError, match=r"reviews\.jsonl: matches none of this dataset's layouts \(baidu: train\.tsv"
                                        r" \+ dev\.tsv \+ test\.tsv; or htl_all: ChnSentiCorp_htl_all\.csv\)"):
        datamodule("chnsenticorp", f).prepare_splits()


# -- ocemotion ------------------------------------------------------------------------------------------------------
OCEMOTION_LABELS = ["sadness", "happiness", "disgust", "anger", "like", "surprise", "fear"]


def test_ocemotion_tianchi_tsv_without_header(tmp_path: Path):
    rows = [f"{i}\t今天{label}{i}[泪]\t{label}" for i in range(20) for label in OCEMOTION_LABELS]
    rows.append('99\t"嗯"好吧\tlike')
    folder = tmp_path / "ocemotion"
    write(folder / "OCEMOTION_train1128.csv", "\n".join(rows) + "\n")
    dm = datamodule("ocemotion", folder)
    splits = records(dm)
    assert Counter(l for part in splits.values() for _, l in part)["joy"] == 20  # happiness -> joy
    assert ('"嗯"好吧', "like") in [r for part in splits.values() for r in part]
    assert dm.summary()["labels"] == ["sadness", "joy", "disgust", "anger", "like", "surprise", "fear"]


def test_ocemotion_clue_json_lines_keep_their_splits(tmp_path: Path):
    folder = tmp_path / "ocemotion"
    for file_name, n in (("train.txt", 6), ("valid.txt", 2), ("test.txt", 2)):
        lines = [json.dumps({"id": i, "content": f"{file_name}{label}{i}", "label": label}, ensure_ascii=False)
                 for i in range(n) for label in OCEMOTION_LABELS]
        write(folder / file_name, "\n".join(lines) + "\n")
    splits = records(datamodule("ocemotion", folder))
    assert {k: len(v) for k, v in splits.items()} == {"train": 42, "val": 14, "test": 14}
    assert ("valid.txthappiness0", "joy") in splits["val"]


# -- goemotions -----------------------------------------------------------------------------------------------------
GOEMOTIONS = ["admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
              "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief",
              "joy", "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness",
              "surprise", "neutral"]


def goemotions_folder(folder: Path, header_on: tuple[str, ...] = ("dev.tsv",)) -> Path:
    write(folder / "labels.txt", "\n".join(GOEMOTIONS) + "\n")
    for file_name, n in (("train.tsv", 40), ("dev.tsv", 8), ("test.tsv", 8)):
        rows = [f"{file_name} comment {i} \"quoted content\t{i % 28},{(i + 5) % 28}\t{file_name}{i}" for i in range(n)]
        rows[0] = f"[NAME] is great lol\t27\t{file_name}x"
        head = "text\tlabels\tid\n" if file_name in header_on else ""
        write(folder / file_name, head + "\n".join(rows) + "\n")
    return folder


def test_goemotions_ids_into_labels_txt_with_or_without_header(tmp_path: Path):
    dm = datamodule("goemotions", goemotions_folder(tmp_path / "goemotions"))
    splits = records(dm)
    assert {k: len(v) for k, v in splits.items()} == {"train": 39, "val": 7, "test": 8}
    assert ('train.tsv comment 2 "quoted content', ("anger", "curiosity")) in splits["train"]  # ids 2 and 7
    assert ("[NAME] is great lol", ("neutral",)) in splits["test"]  # in all three files: the test copy is kept
    assert dm.label_space.multi_label and dm.label_space.names == tuple(GOEMOTIONS)


def test_goemotions_bad_label_id_and_mismatched_labels_txt(tmp_path: Path):
    folder = goemotions_folder(tmp_path / "goemotions")
    write(folder / "test.tsv", "fine\t3\tid1\nbroken\t3,28\tid2\n")
    with pytest.raises(DataError, match=r"test\.tsv:2: bad label id: '28' \(expected 0\.\.27"):
        datamodule("goemotions", folder).prepare_splits()
    write(folder / "labels.txt", "\n".join(reversed(GOEMOTIONS)) + "\n")
    with pytest.raises(DataError, match=r"labels\.txt: names \['neutral', .* differ from data\.source\.label_ids"):
        datamodule("goemotions", folder).prepare_splits()


def test_multilabel_split_keeps_rare_labels_in_every_split(tmp_path: Path):
    folder = tmp_path / "goemotions"
    write(folder / "labels.txt", "\n".join(GOEMOTIONS) + "\n")
    rows = [f"common comment {i}\t{27 if i % 3 else 0},{i % 4 + 1}\tid{i}" for i in range(300)]
    rows += [f"rare grief {i}\t16,27\tg{i}" for i in range(6)]  # 6 examples of a label in 306
    write(folder / "train.tsv", "\n".join(rows) + "\n")  # no dev/test: split off train, stratified
    splits = datamodule("goemotions", folder).prepare_splits()
    assert all(sum("grief" in ex.label for ex in part) >= 1 for part in splits.values())
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == 306 and 0.75 < sizes["train"] / 306 < 0.85 and sizes["val"] > 20


# -- cecps8 ---------------------------------------------------------------------------------------------------------
CECPS = ["Love", "Joy", "Anxiety", "Sorrow", "Expect", "Hate", "Surprise", "Anger"]
CECPS_ROWS = [("现在 好 终于 如愿以偿", ("Joy",)), ("感受 着 小手 温度", ("Love", "Joy", "Anxiety")),
              ("美国 医生 说 ： Ｉｔ ’ ｓ　ｍｅ ．", ("Love", "Joy")), ("唉 冷漠 啊", ("Hate", "Anxiety", "Sorrow")),
              ("２亿 这个 数字 已经 无异于 掠夺", ("Anger",)), ("车 人 静静 注视", ("Surprise", "Hate")),
              ("既然 做 就 尽力 去 做好 吧", ("Expect",))]


def cecps_rows(n: int, start: int = 0) -> list[tuple[str, tuple[str, ...]]]:
    return [(f"{text} {i}", labels) for i in range(start, start + n) for text, labels in CECPS_ROWS]


def test_cecps8_one_hot_with_quoted_header_names(tmp_path: Path):
    folder = tmp_path / "cecps8"
    header = "Text," + ",".join(f"'{name}'" for name in CECPS)
    for file_name, n, start in (("train1.csv", 6, 0), ("test.csv", 2, 100)):
        rows = [text + "," + ",".join("1" if name in labels else "0" for name in CECPS)
                for text, labels in cecps_rows(n, start)]
        write(folder / file_name, header + "\n" + "\n".join(rows) + "\n")
    dm = datamodule("cecps8", folder)
    splits = records(dm)
    assert {k: len(v) for k, v in splits.items()} == {"train": 37, "val": 5, "test": 14}  # val split off train
    assert ("唉 冷漠 啊 100", ("anxiety", "hate", "sadness")) in splits["test"]  # Sorrow -> sadness; a sorted set


def test_cecps8_list_labels_in_gb18030_and_join_segmented_words(tmp_path: Path):
    folder = tmp_path / "cecps8"
    rows = [f"{i},{text}," + (f'"{list(labels)}"' if len(labels) > 1 else str(list(labels)))
            for i, (text, labels) in enumerate(cecps_rows(6), start=1)]
    write(folder / "Train.csv", "ID,Text,Labels\n" + "\n".join(rows) + "\n", encoding="gb18030")
    dm = datamodule("cecps8", folder, "data.normalize.join_cjk_words=true", "data.normalize.fullwidth=true")
    texts = {text: labels for part in records(dm).values() for text, labels in part}
    assert texts["现在好终于如愿以偿0"] == ("joy",)
    assert texts["美国医生说:It’s me.3"] == ("joy", "love")  # half-width; the space between Latin words stays
    assert dm.summary()["source"].endswith("layout=list)")


def test_cecps8_bad_list_label_names_the_row(tmp_path: Path):
    write(tmp_path / "cecps8" / "Train.csv", "ID,Text,Labels\n1,好 的,['Joy']\n2,坏 的,Joy]\n", encoding="gb18030")
    with pytest.raises(DataError, match=r"Train\.csv:3: bad label list: 'Joy\]' is not a list literal"):
        datamodule("cecps8", tmp_path / "cecps8").prepare_splits()


# -- the Kaggle emotion sets (one published CSV each) -----------------------------------------------------------------
KAGGLE = {
    # config: (published file name, header, row builder, the published name of joy)
    "emotions_in_text": ("Emotion_final.csv", "Text,Emotion", lambda i, label: f"i feel {label} number {i},{label}",
                         "happy"),
    "tweet_emotions": ("tweet_emotions.csv", "tweet_id,sentiment,content",
                       lambda i, label: f'{1956967341 + i},{label},"@user i am {label}, {i} =["', "happiness"),
    "emotion_sentiment": ("emotion_sentimen_dataset.csv", ",text,Emotion",
                          lambda i, label: f"{i},im so {label} today {i},{label}", "happiness"),
}


@pytest.mark.parametrize("name", sorted(KAGGLE))
def test_kaggle_emotion_configs_read_their_published_files(name: str, tmp_path: Path):
    file_name, header, row, joy = KAGGLE[name]
    folder = tmp_path / name
    cfg = compose_train([f"data={name}"], tmp_path / "out")
    published = [joy if label == "joy" else label for label in cfg.data.labels]
    lines = [header] + [row(i, label) for label in published for i in range(10)]
    write(folder / file_name, "\n".join(lines) + "\n")
    write(folder / "notes.txt", "other files in the folder are ignored\n")
    dm = datamodule(name, folder)
    splits = dm.prepare_splits()
    assert dm.clean_report.kept == 10 * len(published)
    assert all({ex.label for ex in part} == set(cfg.data.labels) for part in splits.values())  # stratified, joy
    if name == "tweet_emotions":
        assert any(ex.text.startswith("@user i am anger, ") for part in splits.values() for ex in part)


def test_emotion_sets_share_label_names():
    names = {}
    for name in ("emotions_in_text", "tweet_emotions", "emotion_sentiment", "ocemotion", "goemotions", "cecps8"):
        names[name] = set(compose_train([f"data={name}"], Path("/nonexistent")).data.labels)
    assert all({"joy", "surprise"} <= labels for labels in names.values())
    assert all("sadness" in labels for labels in names.values())
    assert not any({"happy", "happiness", "Joy", "Sorrow"} & labels for labels in names.values())


# -- Hub fallback -----------------------------------------------------------------------------------------------------
class FakeClassLabel:
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def int2str(self, i: int) -> str:
        return self.names[i]


class FakeSplit(list):
    def __init__(self, rows: list[dict], features: dict) -> None:
        super().__init__(rows)
        self.features = features


def test_hub_fallback_when_files_are_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = []

    def load_dataset(repo_id: str, config: str | None = None):
        calls.append((repo_id, config))
        label = types.SimpleNamespace(feature=FakeClassLabel(GOEMOTIONS))  # Sequence(ClassLabel)
        rows = lambda split, n: [{"text": f"{split} {i}", "labels": [i % 28, 27], "id": i} for i in range(n)]
        return {name: FakeSplit(rows(name, n), {"labels": label})
                for name, n in (("train", 60), ("validation", 10), ("test", 10))}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    dm = datamodule("goemotions", tmp_path / "absent")
    splits = records(dm)
    assert calls == [("google-research-datasets/go_emotions", "simplified")]
    assert {k: len(v) for k, v in splits.items()} == {"train": 60, "val": 10, "test": 10}
    assert ("validation 3", ("annoyance", "neutral")) in splits["val"]
    assert dm.summary()["cache"] == {"examples": False}  # nothing local to key a cache on


def test_offline_hub_error_says_which_files_to_put_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'dirtycomputer/weibo_senti_100k' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(DataError, match=r"could not download dirtycomputer/weibo_senti_100k .*ConnectionError.*; put "
                                        r"full: weibo_senti_100k\.csv; or split_csv: .* in .*absent"):
        datamodule("weibo", tmp_path / "absent").prepare_splits()
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(DataError, match=r"needs the `datasets` package \(pip install 'senti_lit\[hub\]'\); or put"):
        datamodule("weibo", tmp_path / "absent").prepare_splits()
    with pytest.raises(DataError, match=r"no dataset files found; put tianchi: OCEMOTION_train1128\.csv; or clue: "
                                        r"train\.txt \+ valid\.txt \+ test\.txt in .*absent"):
        datamodule("ocemotion", tmp_path / "absent").prepare_splits()  # no Hub copy


def test_local_files_win_over_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=lambda *a, **k: 1 / 0))
    folder = tmp_path / "weibo"
    write(folder / "weibo_senti_100k.csv", "label,review\n" + "\n".join(f"{l},{t}" for l, t in weibo_rows(30)) + "\n")
    assert sum(map(len, records(datamodule("weibo", folder)).values())) == 30


def test_partial_split_folder_names_the_missing_file_and_does_not_download(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=lambda *a, **k: 1 / 0))
    folder = tmp_path / "weibo"
    for name in ("dev.tsv", "test.tsv"):  # what ../shared has of weibo: the dev and test copies only
        write(folder / name, "label\tx_valid\n" + "\n".join(f"{l}\t{t}" for l, t in weibo_rows(20)) + "\n")
    with pytest.raises(DataError, match=r"weibo: has dev\.tsv, test\.tsv of layout split_tsv but not train\.tsv; "
                                        r"add it, or set data\.path to one of the files"):
        datamodule("weibo", folder).prepare_splits()


def test_layout_fit_compares_whole_column_names(tmp_path: Path):
    f = write(tmp_path / "export.csv", "id,reviewer_label,reviews\n1,1,好\n")  # 'label'/'review' only as substrings
    with pytest.raises(DataError, match=r"export\.csv: matches none of this dataset's layouts"):
        datamodule("weibo", f).prepare_splits()


def test_skipped_rows_of_every_file_are_reported(tmp_path: Path):
    folder = tmp_path / "chnsenticorp"
    for name, start in (("train.tsv", 0), ("dev.tsv", 100), ("test.tsv", 200)):
        rows = [f"评论{i}\t{'positive' if i % 2 else 'negative'}" for i in range(start, start + 20)]
        rows.insert(3, "没有标签的一行")
        rows.insert(5, f"多一列\tpositive\t{start}")
        write(folder / name, "\n".join(rows) + "\n")
    dm = datamodule("chnsenticorp", folder, "data.source.on_bad_row=skip")
    assert dm.summary()["dropped"]["bad_rows"] == {"wrong field count": 6}
    assert dm.summary()["kept"] == 60
