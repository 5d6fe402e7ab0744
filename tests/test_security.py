"""An artifact is data: loading one never runs code it ships, unless the command line says trust_remote_code=true;
and the files the project writes are as readable as any other file."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from senti_lit.core.files import atomic_write
from senti_lit.data.inputs import InputSpec
from senti_lit.inference.artifact import load_artifact, save_artifact
from senti_lit.inference.predictor import Predictor
from senti_lit.models.spec import ModelSpec

FIXTURES = Path(__file__).parent / "fixtures"


def hostile_artifact(folder: Path, marker: Path) -> Path:
    """The fixture artifact made to ask for remote code: trust_remote_code in its settings, an auto_map in its backbone
    config, and the module that auto_map names, which leaves `marker` behind when it is imported."""
    shutil.copytree(FIXTURES / "artifact_v1", folder)
    meta = json.loads((folder / "artifact.json").read_text(encoding="utf-8"))
    meta["backbone"]["model_kwargs"]["trust_remote_code"] = True
    (folder / "artifact.json").write_text(json.dumps(meta), encoding="utf-8")
    config = json.loads((folder / "backbone" / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (folder / "backbone" / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "backbone" / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import BertConfig as EvilConfig, BertModel as EvilModel\n", encoding="utf-8")
    return folder


def test_a_file_asking_for_remote_code_runs_none(tmp_path: Path):
    marker = tmp_path / "ran.txt"
    folder = hostile_artifact(tmp_path / "artifact", marker)
    expected = json.loads((FIXTURES / "artifact_v1_expected.json").read_text(encoding="utf-8"))
    predictor = Predictor.load(folder)
    assert predictor.predict(expected["texts"]) == expected["answers"]  # loads as the plain model it is
    assert not marker.exists()


def test_trusting_remote_code_is_explicit_and_warned(tmp_path: Path, capsys: pytest.CaptureFixture):
    """The warning goes to stderr whatever the logging level (predict and serve turn the log off) and names the
    Python files that may run; transformers' misleading "has no effect here" line is not shown."""
    import shutil

    folder = tmp_path / "artifact"  # a plain artifact with a Python file beside its tokenizer (nothing auto-mapped:
    shutil.copytree(FIXTURES / "artifact_v1", folder)  # the hostile one's code would run in this test process)
    (folder / "tokenizer" / "tokenization_custom.py").write_text("# shipped code\n", encoding="utf-8")
    logging.getLogger().setLevel(logging.CRITICAL)  # as predict's disabled logging
    try:
        Predictor.load(folder, trust_remote_code=True)
    finally:
        logging.getLogger().setLevel(logging.WARNING)
    err = capsys.readouterr().err
    assert "warning: trust_remote_code=true" in err and "only artifacts you trust" in err, err
    scripts = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.py"))
    assert scripts and all(name in err for name in scripts), (scripts, err)
    assert "has no effect here" not in err


def test_written_files_get_the_mode_a_plain_open_gives(tmp_path: Path):
    """safetensors and tempfile create files 0600; what the project writes follows the umask like any file."""
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.ckpt", lambda f: torch.save({"x": 1}, f))
        model, tokenizer, meta = load_artifact(FIXTURES / "artifact_v1")
        spec, inputs = ModelSpec.from_dict(meta), InputSpec.from_dict(meta["inputs"])
        save_artifact(tmp_path / "artifact", model, tokenizer, spec, inputs, {}, {})
    finally:
        os.umask(old)
    for path in (tmp_path / "a.ckpt", tmp_path / "artifact" / "model.safetensors",
                 tmp_path / "artifact" / "artifact.json"):
        assert oct(path.stat().st_mode & 0o777) == oct(0o644), path


class Payload:
    """What a hostile checkpoint carries: unpickling it runs `Path(marker).write_text`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path, reviews_dir: Path):
    from helpers.compose import TINY_MODEL, compose_train
    from senti_lit.train import train

    marker, ckpt = tmp_path / "ran.txt", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Payload(marker)}, ckpt)
    cfg = compose_train([f"data.path={reviews_dir}", *TINY_MODEL, "model.mlm_warmup.epochs=0",
                         "trainer.max_epochs=1", f"resume={ckpt}"], tmp_path / "run")
    with pytest.raises(Exception, match="Weights only load failed|weights_only"):
        train(cfg)
    assert not marker.exists()


def test_the_data_cache_holds_no_pickle(tmp_path: Path, reviews_dir: Path):
    """The cache folder may be shared: what is in it is read as data (JSON, numpy without pickle), never run."""
    import numpy as np
    from hydra.utils import instantiate

    from helpers.compose import TINY_MODEL, compose_train
    from senti_lit.training.steps import data_for_run

    cfg = compose_train([f"data.path={reviews_dir}", *TINY_MODEL], tmp_path / "run")
    datamodule, _ = data_for_run(cfg)
    folder = datamodule.cache_folder()
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert "examples.json" in files and any(f.endswith(".npz") for f in files), files
    assert all(f.endswith((".json", ".npz", ".txt")) for f in files), files
    json.loads((folder / "examples.json").read_text(encoding="utf-8"))
    for npz in folder.rglob("*.npz"):
        with np.load(npz, allow_pickle=False) as arrays:
            assert set(arrays.files) == {"ids", "offsets", "labels"}
    again = instantiate(cfg.data)  # a second run reads the same splits back from the cache
    again.prepare_splits()
    assert again.cache_hits["examples"]
    assert [(ex.text, ex.label, ex.origin) for ex in again.splits["train"]] == [
        (ex.text, ex.label, ex.origin) for ex in datamodule.splits["train"]]
