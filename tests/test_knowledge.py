"""Knowledge joined to texts: label words cut from explanations, missing-explanation policies, bad lines, encoding."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import BertTokenizerFast

from senti_lit.core.errors import DataError
from senti_lit.data.encoding import encode
from senti_lit.data.examples import Example
from senti_lit.data.inputs import InputSpec
from senti_lit.data.knowledge import Knowledge
from senti_lit.data.labels import LabelSpace

LABELS = LabelSpace(("joy", "sadness"), multi_label=True, aliases={"Sorrow": "sadness"})


def write(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def splits(*texts: str) -> dict[str, list[Example]]:
    return {"train": [Example(t, ("joy",), f"train1.csv:{i + 2}") for i, t in enumerate(texts)]}


def test_label_names_aliases_and_synonyms_are_cut(tmp_path: Path):
    path = write(tmp_path / "k.jsonl", [{"text": "a", "knowledge": "The author feels JOY and sorrow, 喜悦 and 喜悦之情"},
                                        {"text": "b", "knowledge": "平静的叙述"}])
    knowledge = Knowledge(str(path), synonyms={"joy": ["喜悦", "喜悦之情"]})
    kept, explanations, report = knowledge.attach(splits("a", "b"), LABELS)
    inputs = InputSpec(knowledge=knowledge.input_settings(LABELS))  # the words are cut as the inputs are made
    assert [inputs.explanation(k) for k in explanations["train"]] == ["The author feels and , and", "平静的叙述"]
    assert report.masked_words == 4 and report.matched == 2
    unmasked = Knowledge(str(path), mask_labels=False)
    raw = unmasked.attach(splits("a"), LABELS)[1]["train"][0]
    assert "JOY" in InputSpec(knowledge=unmasked.input_settings(LABELS)).explanation(raw)
    with pytest.raises(ValueError, match="unknown labels"):
        Knowledge(str(path), synonyms={"fear": ["怕"]}).attach(splits("a"), LABELS)


def test_missing_explanations_follow_the_policy(tmp_path: Path):
    path = write(tmp_path / "k.jsonl", [{"text": "a", "knowledge": "x"}])
    with pytest.raises(DataError, match=r"no explanation for 1 texts, e.g. train1.csv:3 'b'.*missing=empty\|drop"):
        Knowledge(str(path)).attach(splits("a", "b"), LABELS)
    kept, explanations, report = Knowledge(str(path), missing="empty").attach(splits("a", "b"), LABELS)
    assert [ex.text for ex in kept["train"]] == ["a", "b"] and explanations["train"] == ["x", ""]
    kept, explanations, report = Knowledge(str(path), missing="drop").attach(splits("a", "b"), LABELS)
    assert [ex.text for ex in kept["train"]] == ["a"] and (report.missing, report.dropped) == (1, 1)


def test_bad_lines_and_options_are_named(tmp_path: Path):
    path = write(tmp_path / "k.jsonl", [{"text": "a", "knowledge": "x"}, "", '{"text": "b"}'])
    with pytest.raises(DataError, match=r"k.jsonl:3: expected a JSON object with 'text' and 'knowledge'"):
        Knowledge(str(path)).read()
    with pytest.raises(DataError, match="knowledge file not found"):
        Knowledge(str(tmp_path / "none.jsonl")).read()
    with pytest.raises(ValueError, match="join must be"):
        Knowledge(str(path), join="concat")
    with pytest.raises(ValueError, match="must hold"):
        Knowledge(str(path), join="template", template="{text} only")


def test_pair_and_template_inputs_encode(tmp_path: Path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"好书平静叙述"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(tmp_path / "vocab.txt"))
    pair = InputSpec(knowledge=Knowledge(str(tmp_path / "k.jsonl")).input_settings(LABELS))
    texts, pairs = pair.model_inputs(["好书"], ["平静叙述"])
    ids = encode(tokenizer, texts, None, 16, pairs=pairs)[0]["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "好", "书", "[SEP]", "平", "静", "叙", "述", "[SEP]"]
    short = encode(tokenizer, texts, None, 7, pairs=pairs)[0]["input_ids"]
    assert tokenizer.convert_ids_to_tokens(short)[:4] == ["[CLS]", "好", "书", "[SEP]"]  # the longer part is cut
    template = Knowledge(str(tmp_path / "k.jsonl"), join="template", template="{text}（{knowledge}）")
    assert InputSpec(knowledge=template.input_settings(LABELS)).model_inputs(["好书"], ["平静"]) == (["好书（平静）"], None)
    with pytest.raises(ValueError, match="do not combine"):
        encode(tokenizer, texts, None, 16, prompt="总之很[MASK]。", pairs=pairs)
