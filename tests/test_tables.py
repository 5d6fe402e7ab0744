"""TableSource (data=csv): CSV/TSV/JSONL files with the quirks real dataset files have."""
from __future__ import annotations

from pathlib import Path

import pytest

from senti_lit.core.errors import DataError
from senti_lit.data.datamodule import TextClassificationDataModule
from senti_lit.data.sources import TableSource, texts_to_predict


def read(path: Path, **kwargs) -> list[tuple[str, object]]:
    return [(ex.text, ex.label) for ex in TableSource(path, **kwargs).read()]


def test_csv_with_bom_quotes_and_embedded_newline(tmp_path: Path):
    f = tmp_path / "reviews.csv"
    f.write_bytes('\ufefflabel,review\n1,"好，很好"\n0,"第一行\n第二行"\n1,\n'.encode("utf-8"))
    rows = read(f, text_column="review", label_column="label")
    assert rows == [("好，很好", "1"), ("第一行\n第二行", "0"), ("", "1")]


def test_tsv_without_quoting_keeps_quote_characters(tmp_path: Path):
    f = tmp_path / "train.tsv"
    f.write_text('text\tlabel\n他说"好"\tpositive\n"差\tnegative\n', encoding="utf-8")
    assert read(f, quoting="none") == [('他说"好"', "positive"), ('"差', "negative")]


def test_gb18030_detected(tmp_path: Path):
    f = tmp_path / "data.csv"
    f.write_bytes("ID,Text,Labels\n1,我很开心,Joy\n".encode("gb18030"))
    assert read(f, text_column="Text", label_column="Labels") == [("我很开心", "Joy")]


def test_jsonl_and_multilabel_forms(tmp_path: Path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"content": "好", "label": "like"}\n\n{"content": "怒", "label": ["anger", "disgust"]}\n',
                 encoding="utf-8")
    assert read(f, text_column="content") == [("好", "like"), ("怒", ("anger", "disgust"))]
    g = tmp_path / "g.tsv"
    g.write_text("a text\t3,27\tid1\n", encoding="utf-8")
    assert read(g, header=False, text_column=0, label_column=1, label_separator=",") == [("a text", ("3", "27"))]
    h = tmp_path / "h.csv"
    h.write_text("Text,'Love','Joy'\n爱 你,1,0\n开心,1,1\n", encoding="utf-8")
    assert read(h, text_column="Text", label_column=None, label_columns=["'Love'", "'Joy'"]) == [
        ("爱 你", ("'Love'",)), ("开心", ("'Love'", "'Joy'"))]


def test_bad_rows_error_names_the_line_or_are_counted(tmp_path: Path):
    f = tmp_path / "x.tsv"
    f.write_text("text\tlabel\nok\tpos\nbroken row\nfine\tneg\nno label\t\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.tsv:3: wrong field count.*on_bad_row=skip"):
        read(f)
    source = TableSource(f, on_bad_row="skip")
    assert [(ex.text, ex.label) for ex in source.read()] == [("ok", "pos"), ("fine", "neg")]
    assert dict(source.skipped) == {"wrong field count": 1, "empty label": 1}


def test_missing_column_and_bad_json_explain_the_fix(tmp_path: Path):
    f = tmp_path / "a.csv"
    f.write_text("Text,Emotion\nhi,joy\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"a\.csv:1: header \['Text', 'Emotion'\] lacks column\(s\) \['text', 'label'\]"):
        read(f)
    j = tmp_path / "b.jsonl"
    j.write_text('{"text": "a", "label": "x"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"b\.jsonl:2: invalid JSON"):
        read(j)


def test_folder_path_needs_exactly_one_data_file(tmp_path: Path):
    with pytest.raises(DataError, match="found none; set data.path to the file"):
        TableSource(tmp_path).file()
    (tmp_path / "only.csv").write_text("text,label\na,b\n", encoding="utf-8")
    assert TableSource(tmp_path).file().name == "only.csv"


def test_datamodule_reports_skipped_rows_and_multilabel_space(tmp_path: Path):
    f = tmp_path / "m.tsv"
    rows = [f"文本{i}\t{'a,b' if i % 2 else 'b'}" for i in range(40)]
    f.write_text("text\tlabel\n" + "\n".join(rows) + "\nbad\n", encoding="utf-8")
    dm = TextClassificationDataModule(
        source=lambda path: TableSource(path, label_separator=",", on_bad_row="skip"), path=str(f),
        multi_label=True)
    dm.prepare_splits()
    summary = dm.summary()
    assert summary["dropped"]["bad_rows"] == {"wrong field count": 1}
    assert summary["labels"] == ["a", "b"] and summary["kept"] == 40


def test_headerless_file_rows_must_match_the_first_rows_field_count(tmp_path: Path):
    f = tmp_path / "train.tsv"
    f.write_text("好\tpositive\n差\tnegative\n有\t制表符\tpositive\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.tsv:3: wrong field count: 3 fields, the first row has 2 \(a separator "
                                        r"inside the text\?\)"):
        read(f, header=False, text_column=0, label_column=1, quoting="none")


def test_unclosed_quote_fails_at_the_line_the_record_starts(tmp_path: Path):
    f = tmp_path / "reviews.csv"
    f.write_text('label,review\n1,好\n0,"引号开头 没关\n1,第三行\n0,第四行\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"reviews\.csv:3: stray quote: a quote opens a field that would swallow line 4, which "
                                        r"reads as a row of its own.*quoting=none"):
        read(f, text_column="review")
    skip = TableSource(f, text_column="review", on_bad_row="skip")
    assert [ex.origin.rsplit(":")[-1] for ex in skip.read()] == ["2", "4", "5"]  # the rows after it are kept
    h = tmp_path / "end.csv"
    h.write_text('label,review\n1,好\n0,"最后一行没关\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"end\.csv:3: stray quote: a quote opens a field that runs to the end of the file"):
        read(h, text_column="review")
    g = tmp_path / "multi.csv"  # a quoted newline is legitimate: the record is named by its first line
    g.write_text('label,review\n1,"第一行\n第二行",extra\n0,好\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"multi\.csv:2: wrong field count: 3 fields, the header has 2"):
        read(g, text_column="review")


def test_label_ids_reject_negative_and_out_of_range(tmp_path: Path):
    f = tmp_path / "train.tsv"
    f.write_text("ok\t0,2\nneg\t-1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.tsv:2: bad label id: '-1' \(expected 0\.\.2"):
        read(f, header=False, text_column=0, label_column=1, label_separator=",", label_ids=["a", "b", "c"])


def test_header_auto_reports_a_bad_first_data_row_instead_of_eating_it(tmp_path: Path):
    f = tmp_path / "train.tsv"
    f.write_text("first comment\t28\tid0\nsecond\t1\tid1\n", encoding="utf-8")
    source = TableSource(f, header="auto", text_column=0, label_column=1, label_separator=",",
                         label_ids=["a", "b"], on_bad_row="skip")
    assert [(ex.text, ex.label) for ex in source.read()] == [("second", ("b",))]
    assert dict(source.skipped) == {"bad label id": 1}
    g = tmp_path / "with_header.tsv"
    g.write_text("text\tlabels\tid\nsecond\t1\tid1\n", encoding="utf-8")
    assert read(g, header="auto", text_column=0, label_column=1, label_ids=["a", "b"]) == [("second", "b")]


def test_configured_field_count_and_column_checks(tmp_path: Path):
    f = tmp_path / "train.tsv"
    f.write_text("好\t的\tpositive\n差\tnegative\n行\tpositive\n", encoding="utf-8")
    source = TableSource(f, header=False, fields=2, text_column=0, label_column=1, quoting="none", on_bad_row="skip")
    assert [(ex.text, ex.label) for ex in source.read()] == [("差", "negative"), ("行", "positive")]
    assert dict(source.skipped) == {"wrong field count": 1}
    with pytest.raises(DataError, match=r"named columns \['text', 'label'\] need a header row"):
        read(f, header=False)


def test_non_string_text_and_blank_one_hot_cells_are_bad_rows(tmp_path: Path):
    j = tmp_path / "d.jsonl"
    j.write_text('{"content": null, "label": "like"}\n{"content": "好", "label": "like"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.jsonl:1: text is not a string: None"):
        read(j, text_column="content")
    h = tmp_path / "h.csv"
    h.write_text("Text,'Love','Joy'\n爱 你,1,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"h\.csv:2: bad one-hot value: \{\"'Joy'\": ''\}"):
        read(h, text_column="Text", label_column=None, label_columns=["'Love'", "'Joy'"])


def test_a_stray_quote_never_merges_rows(tmp_path: Path):
    """A TSV whose line 6 opens a quote that a `"` ending line 10 would close: line 6 is a bad row, every other row
    is read as it stands, line 10 with its literal quote (the csv module alone would make lines 6-10 one text with
    line 6's label)."""
    lines = ["text\tlabel", *(f"好评{i}\tpos" for i in range(2, 13))]
    lines[5], lines[9] = '"坏的开始\tneg', '结束"\tpos'
    f = tmp_path / "train.tsv"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = TableSource(f, on_bad_row="skip")
    rows = list(source.read())
    assert [ex.origin.rsplit(":")[-1] for ex in rows] == ["2", "3", "4", "5", "7", "8", "9", "10", "11", "12"]
    assert all("\n" not in ex.text and len(ex.text) < 10 for ex in rows) and rows[7].text == '结束"'
    assert [(origin.rsplit(":")[-1], "would swallow line 7" in why) for origin, why in source.bad_rows] == [
        ("6", True)]


def test_texts_with_line_breaks_and_literal_quotes_read_as_published(tmp_path: Path):
    """A quoted text over several lines (closing mid-line, before its label; with a blank line inside), and quotes
    inside unquoted fields (5" screens, TSV quotations): read as the csv module reads them, nothing dropped."""
    f = tmp_path / "reviews.csv"
    f.write_text('text,label\n"这家酒店\n很好",pos\n屏幕5" 很大,pos\n"x\n\ny",neg\n"a ""q"" b",neg\n', encoding="utf-8")
    assert read(f) == [("这家酒店\n很好", "pos"), ('屏幕5" 很大', "pos"), ("x\n\ny", "neg"), ('a "q" b', "neg")]
    g = tmp_path / "train.tsv"
    g.write_text('text\tlabel\n他说"好\tpos\n好\tneg\n', encoding="utf-8")
    assert read(g) == [('他说"好', "pos"), ("好", "neg")]


def test_a_stray_quote_in_a_one_column_file_costs_its_own_line(tmp_path: Path):
    """One column: a row cannot be told from a line of text, so a quote left open is a bad row and the thousands of
    lines after it are read, quickly, not merged into one text."""
    from senti_lit.data.sources import texts_to_predict

    f = tmp_path / "in.csv"
    f.write_text("text\n\"stray\n" + "".join(f"line{i}\n" for i in range(20_000)) + 'end"\n', encoding="utf-8")
    reader = texts_to_predict(f)
    rows = list(reader.read())
    assert len(rows) == 20_001 and rows[0].text == "line0" and rows[-1].text == 'end"'
    assert [origin.rsplit(":")[-1] for origin, _ in reader.bad_rows] == ["2"]


def test_a_field_longer_than_the_csv_modules_limit_is_read(tmp_path: Path):
    long = "好" * 200_000  # the csv module stops at 131,072 characters by default
    f = tmp_path / "train.csv"
    f.write_text(f"text,label\n{long},pos\n短评,neg\n", encoding="utf-8")
    assert [(len(ex.text), ex.label) for ex in TableSource(f).read()] == [(200_000, "pos"), (2, "neg")]
    g = tmp_path / "in.csv"
    g.write_text(f'text\n"{long}"\n', encoding="utf-8")
    assert [len(ex.text) for ex in texts_to_predict(g).read()] == [200_000]


def test_prediction_files_read_like_training_files(tmp_path: Path):
    """GB18030 (as Windows saves Chinese), and U+2028, U+0085 and form feed inside texts: one row per line, the
    line numbers of the file."""
    f = tmp_path / "in.txt"
    f.write_bytes("第一\u2028行\n第二\x85行\n第三\x0c行\n".encode("gb18030"))
    assert [(ex.line, ex.text) for ex in texts_to_predict(f).read()] == [
        (1, "第一\u2028行"), (2, "第二\x85行"), (3, "第三\x0c行")]
    g = tmp_path / "in.jsonl"
    g.write_text('{"text": "一\u2028二"}\n{"text": "三"}\n', encoding="utf-8")
    assert [(ex.line, ex.text) for ex in texts_to_predict(g).read()] == [(1, "一\u2028二"), (2, "三")]
