"""ONNX export (`senti_lit.export format=onnx`) and the torch-free backend (`backend=onnx`): the exported folder
answers as the torch artifact does, int8 records what it costs, what cannot be exported is refused in one line,
and a predict from an export imports neither torch, transformers nor Lightning."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from helpers.compose import compose_train
from helpers.models import overrides
from senti_lit.inference.artifact import save_artifact
from senti_lit.inference.decisions import describe
from senti_lit.inference.hf_export import NotExportable
from senti_lit.inference.onnx_export import export_onnx
from senti_lit.inference.onnx_predictor import OnnxPredictor, choose_backend
from senti_lit.inference.predictor import Predictor
from senti_lit.training.steps import data_for_run, model_for_run

FIXTURES = Path(__file__).parent / "fixtures"
TEXTS = ["这本书很好，推荐", "失望，很差", "一般般吧", "值得一看的书，开心", "糟糕透了，后悔买了", "ok", "",
         "The plot was thin but the acting was great!", "好" * 200]  # the last one is cut to max_length


def artifact_of(name: str, extra: list[str], local_models: dict[str, Path], folder: Path) -> Path:
    """The artifact of model config `name` on its tiny local model, "trained" by random weight changes (nothing left
    at its initial value), a calibration temperature, and the run's config (so the export re-reads its test split)."""
    cfg = compose_train(overrides(name, local_models, *extra), folder)
    datamodule, tokenizer = data_for_run(cfg)
    spec, model = model_for_run(cfg, datamodule, tokenizer, folder)
    torch.manual_seed(1)
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.1)
    model.temperature.fill_(1.7)
    if datamodule.multi_label:
        model.thresholds.copy_(torch.tensor([0.4, 0.5, 0.6]))
    return save_artifact(folder / "artifact", model, tokenizer, spec, datamodule.inputs, {"test/acc": 0.5}, {},
                         data={"name": "reviews", "path": str(cfg.data.path)},
                         config_yaml=OmegaConf.to_yaml(cfg, resolve=True))


def multi_label_csv(local_models: dict[str, Path], path: Path) -> Path:
    """The tiny models' reviews as multi-label rows: the sentiment, plus `exclaim` for a review ending in ！."""
    reviews = local_models["reviews"]
    rows = [(text, name) for name in ("positive", "negative")
            for text in (reviews / f"{name[:3]}.txt").read_text(encoding="utf-8").splitlines()]
    path.write_text("text,label\n" + "".join(f"{t},{n}{'|exclaim' if t.endswith('！') else ''}\n" for t, n in rows),
                    encoding="utf-8")
    return path


def assert_same_answers(torch_predictor: Predictor, onnx: OnnxPredictor, texts: list[str]) -> float:
    """OnnxPredictor gives the torch Predictor's probabilities within 1e-4 and the same answers (top_k, one text at
    a time and in mixed-length batches); returns the largest probability difference."""
    expected = torch_predictor.probabilities(texts).numpy()
    got = onnx.probabilities(texts, batch_size=4)
    difference = float(np.abs(got - expected).max())
    assert difference <= 1e-4, difference
    assert np.abs(onnx.probabilities(texts[:1], batch_size=1) - expected[:1]).max() <= 1e-4
    assert onnx.predict(texts, top_k=2) == torch_predictor.predict(texts, top_k=2)
    return difference


@pytest.mark.parametrize("labels,threshold", [(("negative", "positive"), None), (("positive", "negative"), 0.7),
                                              (("a", "b", "c"), [0.3, 0.5, 0.7])], ids=["argmax", "binary", "multi"])
def test_the_numpy_rule_is_the_networks(labels: tuple, threshold):
    """`inference.decisions` (both predictors' rule) computes what training's torch rule computes."""
    from helpers.models import tiny_bert
    from senti_lit.data.labels import LabelSpace
    from senti_lit.inference import decisions
    from senti_lit.models.network import TextClassifier

    space = LabelSpace(labels, multi_label=len(labels) == 3)
    net = TextClassifier(tiny_bert(), space, threshold=threshold)
    net.temperature.fill_(1.3)
    logits = torch.randn(200, len(labels), generator=torch.Generator().manual_seed(0)) * 4
    probs = net.probabilities(logits)
    assert np.abs(decisions.probabilities(logits.numpy(), 1.3, space.multi_label) - probs.numpy()).max() < 1e-6
    positive = decisions.positive_index(labels, labels[net.positive_index])
    assert positive == net.positive_index
    assert decisions.thresholds_for(labels, space.multi_label, threshold).tolist() == net.thresholds.tolist()
    decided = decisions.decide(probs.numpy(), net.thresholds.numpy(), space.multi_label, positive)
    assert decided.tolist() == net.decide(probs).tolist()


KINDS = [("bert_finetune", []), ("bert_lora", []), ("bert_adapter", []), ("gpt2_lora", []),
         ("bert_finetune", ["model/method=prompt_tuning", "model.method.num_virtual_tokens=4"]), ("multi_label", [])]


@pytest.mark.parametrize("name,extra", KINDS, ids=[n + ("+prompt_tuning" if e else "") for n, e in KINDS])
def test_an_exported_folder_answers_as_the_artifact(name: str, extra: list[str], local_models: dict, tmp_path: Path):
    """BERT `cls` head, LoRA merged, bottleneck adapters traced, GPT2 `last` pooling through merged LoRA, prompt
    tuning's virtual tokens, multi-label with per-label thresholds: probabilities within 1e-4, the same answers."""
    if name == "multi_label":
        name, extra = "bert_finetune", ["data=csv", f"data.path={multi_label_csv(local_models, tmp_path / 'ml.csv')}",
                                        "data.multi_label=true", "data.source.label_separator=|"]
    artifact = artifact_of(name, extra, local_models, tmp_path / "run")
    folder, check = export_onnx(artifact, tmp_path / "run" / "export-onnx")
    assert check["texts"].startswith("the run's test split") and check["max_probability_difference"] <= 1e-4
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "onnx.json", "tokenizer"]
    assert not list(folder.parent.glob(".export-onnx.partial-*"))  # the work folder became the export
    onnx = OnnxPredictor.load(folder)
    assert_same_answers(Predictor.load(artifact), onnx, TEXTS)
    if onnx.multi_label:
        assert onnx.meta["decision"]["thresholds"] == pytest.approx([0.4, 0.5, 0.6])
        assert set(onnx.predict(["很好"])[0]["probs"]) == {"exclaim", "negative", "positive"}


def test_the_default_mini_bert_exports_and_its_rule_is_the_artifacts(tmp_path: Path):
    """The from-scratch mini_bert (mean pooling; the fixture run's data is gone: the check uses the sample texts);
    a threshold given at load time decides as the torch predictor's does; the tokenizer loads with `tokenizers`
    alone."""
    from tokenizers import Tokenizer

    artifact = shutil.copytree(FIXTURES / "artifact_v1", tmp_path / "run" / "artifact")
    folder, check = export_onnx(artifact, tmp_path / "run" / "export-onnx")
    assert "fixed sample texts" in check["texts"] and check["answers_agree"] == 1.0
    Tokenizer.from_file(str(folder / "tokenizer" / "tokenizer.json"))
    meta = json.loads((folder / "onnx.json").read_text(encoding="utf-8"))
    assert meta["labels"]["names"] == ["negative", "positive"] and meta["inputs"]["max_length"] == 32
    assert meta["decision"]["temperature"] == pytest.approx(0.07355746626853943)
    assert meta["metrics"]["test/acc"] == pytest.approx(0.9) and "softmax" in meta["decision"]["rule"]
    predictor, onnx = Predictor.load(artifact), OnnxPredictor.load(folder)
    assert assert_same_answers(predictor, onnx, TEXTS) < 1e-5
    strict = dict(threshold=0.9)
    assert OnnxPredictor.load(folder, **strict).predict(TEXTS) == Predictor.load(artifact, **strict).predict(TEXTS)
    encoded = onnx.encode(TEXTS)
    cut = onnx.truncated(TEXTS, encoded)
    assert cut == predictor.truncated(TEXTS, predictor.encode(TEXTS)) and cut[0] is False and cut[-1] is True
    assert encoded.lengths() == predictor.encode(TEXTS).lengths() and max(encoded.lengths()) == 32


def test_int8_records_what_quantisation_costs(tmp_path: Path):
    """quantize=int8: a smaller model.onnx whose accuracy change against the torch model is in onnx.json."""
    artifact = shutil.copytree(FIXTURES / "artifact_v1", tmp_path / "run" / "artifact")
    fp32, _ = export_onnx(artifact, tmp_path / "run" / "export-onnx")
    int8, check = export_onnx(artifact, tmp_path / "run" / "export-onnx-int8", quantize="int8")
    meta = json.loads((int8 / "onnx.json").read_text(encoding="utf-8"))
    assert meta["check"] == check and meta["model"]["quantize"].startswith("int8")
    assert check["metric"] == "accuracy" and check["torch"] == 1.0  # no gold labels: the torch answers are the gold
    assert check["difference"] == pytest.approx(check["onnx"] - check["torch"])
    assert check["fp32_max_probability_difference"] <= 1e-4 and 0 < check["max_probability_difference"] < 0.2
    assert (int8 / "model.onnx").stat().st_size < (fp32 / "model.onnx").stat().st_size
    labels = [[a["label"] for a in OnnxPredictor.load(f).predict(TEXTS)] for f in (int8, fp32)]
    assert sum(a == b for a, b in zip(*labels)) >= len(TEXTS) - 1  # int8 kernels differ by CPU: one may flip


def test_int8_of_a_bert_runs_fused_attention(local_models: dict, tmp_path: Path):
    """A BERT is traced with eager attention, whose graph onnxruntime's optimizer fuses (traced from sdpa, no
    attention block was fused): the int8 graph runs QAttention, and the fp32 parity still holds."""
    import onnx

    artifact = artifact_of("bert_finetune", [], local_models, tmp_path / "run")
    int8, check = export_onnx(artifact, tmp_path / "run" / "export-onnx-int8", quantize="int8")
    ops = {node.op_type for node in onnx.load(str(int8 / "model.onnx")).graph.node}
    assert "QAttention" in ops and "Softmax" not in ops, ops
    assert json.loads((int8 / "onnx.json").read_text(encoding="utf-8"))["model"]["fused"] is True
    assert check["fp32_max_probability_difference"] <= 1e-4


@pytest.mark.parametrize("refused", ["cloze", "knowledge"])
def test_what_cannot_be_exported_is_refused_in_one_line(refused: str, local_models: dict, tmp_path: Path):
    if refused == "cloze":
        artifact, why = artifact_of("bert_cloze", [], local_models, tmp_path / "run"), "label words off the"
    else:  # an artifact reading an explanation joined to each text
        artifact = shutil.copytree(FIXTURES / "artifact_v1", tmp_path / "run" / "artifact")
        meta = json.loads((artifact / "artifact.json").read_text(encoding="utf-8"))
        meta["inputs"]["knowledge"] = {"join": "pair", "mask_words": []}
        (artifact / "artifact.json").write_text(json.dumps(meta), encoding="utf-8")
        why = "explanation joined to each text"
    with pytest.raises(NotExportable) as error:
        export_onnx(artifact, tmp_path / "run" / "export-onnx")
    message = str(error.value)
    assert "cannot be exported to ONNX" in message and why in message and "\n" not in message
    assert "senti_lit.predict artifact=" in message
    assert not list((tmp_path / "run").glob("*export-onnx*"))  # nothing written, not even a partial folder


def test_the_export_replaces_only_an_earlier_export(tmp_path: Path):
    """output= is replaced whole: never the artifact or a folder holding it, nor a folder of something else."""
    artifact = shutil.copytree(FIXTURES / "artifact_v1", tmp_path / "run" / "artifact")
    for output in (artifact, tmp_path / "run"):
        with pytest.raises(ValueError, match="holds the artifact"):
            export_onnx(artifact, output)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(FileExistsError, match="is not an ONNX export"):
        export_onnx(artifact, tmp_path / "notes")
    assert (tmp_path / "notes" / "mine.txt").is_file() and (artifact / "model.safetensors").is_file()
    export_onnx(artifact, tmp_path / "run" / "export-onnx")
    assert export_onnx(artifact, tmp_path / "run" / "export-onnx")[0].is_dir()  # an earlier export is replaced


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the fixture artifact, its fp32 ONNX export)."""
    root = tmp_path_factory.mktemp("exported")
    artifact = shutil.copytree(FIXTURES / "artifact_v1", root / "run" / "artifact")
    return artifact, export_onnx(artifact, root / "run" / "export-onnx")[0]


def run_predict(*args: str, importtime: bool = False) -> subprocess.CompletedProcess:
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-m", "senti_lit.predict", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_an_onnx_predict_imports_no_torch_and_answers_as_torch(exported: tuple[Path, Path]):
    artifact, folder = exported
    text = "这本书很好，推荐"
    result = run_predict(f"artifact={folder}", f"text={text}", "top_k=2", importtime=True)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "onnxruntime" in imported and "tokenizers" in imported  # importtime's output is read
    assert not imported & {"torch", "transformers", "lightning"}, sorted(imported & {"torch", "transformers",
                                                                                     "lightning"})
    assert result.stdout == describe(Predictor.load(artifact).predict([text], top_k=2)[0]) + "\n"


def test_a_backend_the_folder_cannot_serve_is_one_line(exported: tuple[Path, Path]):
    artifact, folder = exported
    assert (choose_backend("auto", folder), choose_backend("auto", artifact)) == ("onnx", "torch")
    with pytest.raises(ValueError, match=r"holds no onnx\.json .*export it first: python -m senti_lit\.export "
                                         rf"artifact={artifact} format=onnx"):
        choose_backend("onnx", artifact)
    with pytest.raises(ValueError, match="is an ONNX export: use backend=onnx"):
        choose_backend("torch", folder)
    with pytest.raises(ValueError, match="device=cuda: backend=onnx runs on the CPU"):
        OnnxPredictor.load(folder, device="cuda")


@pytest.mark.parametrize("damage", ["missing model.onnx", "corrupt onnx.json", "garbage model.onnx",
                                    "garbage tokenizer.json"])
def test_a_damaged_export_names_its_file(damage: str, exported: tuple[Path, Path], tmp_path: Path):
    folder = shutil.copytree(exported[1], tmp_path / "export-onnx")
    broken = folder / damage.split()[-1] if "tokenizer" not in damage else folder / "tokenizer" / "tokenizer.json"
    if damage.startswith("missing"):
        broken.unlink()
    elif damage.startswith("corrupt"):
        broken.write_bytes(broken.read_bytes()[:50])
    else:
        broken.write_bytes(b"\x00\xffnot what it should be")
    with pytest.raises((ValueError, FileNotFoundError), match=str(broken)):
        OnnxPredictor.load(folder)
    if damage in ("missing model.onnx", "corrupt onnx.json"):  # as the command says it: one line, no traceback
        result = run_predict(f"artifact={folder}", "text=很好")
        assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr
        assert result.stderr.splitlines()[0].startswith(f"error: {broken}")
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr


def test_evaluate_scores_an_export_as_its_artifact(exported: tuple[Path, Path], local_models: dict, tmp_path: Path):
    """The accuracy matrix of a torch artifact and of its ONNX export (backend=auto picks per folder): equal."""
    from hydra import compose, initialize_config_dir

    from senti_lit.core.config import CONFIG_DIR
    from senti_lit.inference.evaluation import run

    artifact, folder = exported
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("evaluate", overrides=[
            f"artifacts=[{artifact},{folder}]", "datasets=[demo]", f"paths.output_dir={tmp_path}",
            f"+data_overrides.demo=['data.path={local_models['reviews']}']", f"paths.cache_dir={tmp_path / 'cache'}"])
    cells = run(cfg)
    torch_cell, onnx_cell = (cells[name]["demo"] for name in cells)
    assert len(cells) == 2 and torch_cell["evaluated"] == onnx_cell["evaluated"] > 0
    assert torch_cell == onnx_cell


@pytest.mark.slow  # two export subprocesses: ~25 s
def test_the_export_command(tmp_path: Path, local_models: dict):
    """`senti_lit.export format=onnx quantize=int8` prints where and what int8 cost; a refused model: one line."""
    artifact = shutil.copytree(FIXTURES / "artifact_v1", tmp_path / "run" / "artifact")
    result = subprocess.run([sys.executable, "-m", "senti_lit.export", f"artifact={artifact}", "format=onnx",
                             "quantize=int8"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"exported to {tmp_path / 'run' / 'export-onnx-int8'}" in result.stdout
    assert "int8 vs torch: accuracy" in result.stdout
    cloze = artifact_of("bert_cloze", [], local_models, tmp_path / "cloze")
    refused = subprocess.run([sys.executable, "-m", "senti_lit.export", f"artifact={cloze}", "format=onnx"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert refused.stderr.startswith("senti_lit.export: this model cannot be exported to ONNX")


def test_an_onnx_evaluate_imports_no_torch_and_scores_as_torch(exported: tuple[Path, Path], tmp_path: Path):
    """`senti_lit.evaluate` of an export reads its datasets with the torch-free DataSplits (the data module's examples
    without tokenizer or batches): neither torch, transformers nor Lightning is imported, and the matrix is the torch
    artifact's on the same data."""
    import csv

    from hydra import compose, initialize_config_dir

    from helpers.data import write_reviews
    from senti_lit.core.config import CONFIG_DIR
    from senti_lit.inference.evaluation import run

    artifact, folder = exported
    reviews = write_reviews(tmp_path / "reviews", n_per_label=60)
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label")] + [
            (text, label) for label in ("positive", "negative")
            for text in (reviews / f"{label[:3]}.txt").read_text(encoding="utf-8").splitlines()])
    args = ["datasets=[csv]", f"+data_overrides.csv=['data.path={data}']"]
    out = tmp_path / "onnx"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "senti_lit.evaluate", f"artifacts=[{folder}]", *args,
         f"paths.output_dir={out}", f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={out / 'cache'}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "onnxruntime" in imported and "tokenizers" in imported  # importtime's output is read
    heavy = {"torch", "transformers", "lightning"}
    assert not imported & heavy, sorted(imported & heavy)
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"artifacts=[{artifact}]", *args, f"paths.output_dir={tmp_path / 'torch'}",
                                             f"paths.cache_dir={tmp_path / 'torch' / 'cache'}"])
    torch_cells = json.loads(json.dumps(run(cfg)))  # through JSON, as evaluate.json holds them
    onnx_cells = json.loads((out / "evaluate.json").read_text(encoding="utf-8"))["cells"]
    assert torch_cells["run"]["csv"]["evaluated"] > 0 and onnx_cells == torch_cells
    assert (out / "matrix.csv").read_text(encoding="utf-8") == (tmp_path / "torch" / "matrix.csv").read_text(
        encoding="utf-8")
