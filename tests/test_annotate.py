"""senti_lit.annotate against a local HTTP server speaking the chat-completions protocol: a 429 then success, a
text that always gets a malformed reply, the cache that makes a re-run ask only what is missing; the local
causal-LM annotator on a tiny model."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hydra.utils import instantiate

from helpers.compose import compose_config
from senti_lit.data.annotation import AnnotationFailed, LocalCausalLM, build_messages, run
from senti_lit.data.knowledge import Knowledge
from senti_lit.data.labels import LabelSpace


class ChatServer:
    """POST /v1/chat/completions: the first request gets 429; a text containing 坏回复 gets a reply that is not
    JSON; everything else gets an explanation that quotes the last user message."""

    def __init__(self, refuse: str | None = None) -> None:
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                user = body["messages"][-1]["content"]
                if refuse and refuse in user:  # a refusal that no retry helps (content policy)
                    self.send_response(400)
                    self.end_headers()
                    self.wfile.write(b'{"error": "refused"}')
                    return
                if len(server.requests) == 1:
                    self.send_response(429)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                if "坏回复" in user:
                    self.wfile.write(b'{"choices": [{"mess')
                    return
                answer = {"choices": [{"message": {"role": "assistant", "content": f"解释：{user[-12:]}"}}]}
                self.wfile.write(json.dumps(answer, ensure_ascii=False).encode())

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = ChatServer()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def write_data(path: Path) -> Path:
    rows = [f"第{i}条评论很开心,joy" for i in range(12)] + [f"第{i}条评论很难过,sadness" for i in range(12)]
    rows.append("这一条会得到坏回复,joy")
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_openai_annotator_retries_caches_and_resumes(server: ChatServer, tmp_path: Path):
    data = write_data(tmp_path / "reviews.csv")
    cfg = compose_config("annotate", ["data=csv", f"data.path={data}", f"annotator.base_url={server.url}",
                                      "annotator.api_key_env=null", "annotator.backoff=0.01",
                                      "annotator.max_retries=2", "annotator.concurrency=4"], tmp_path / "run")
    with pytest.raises(AnnotationFailed, match=r"1 of 25 texts failed, every one listed in "
                       r".*reviews.knowledge.failed.jsonl \(e.g. '这一条会得到坏回复'.*malformed reply.*re-run"):
        run(cfg)
    first = len(server.requests)
    assert first == 1 + 24 + 3  # the 429, 24 answers, the malformed text's 3 attempts
    output = tmp_path / "reviews.knowledge.jsonl"
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 24 and all(r["knowledge"].startswith("解释：") for r in rows)
    # training rows were asked with their gold label, the others without
    train_texts = {ex.text for ex in instantiate(cfg.data).prepare_splits()["train"]}
    asked = {r["messages"][-1]["content"]: r for r in server.requests[1:]}
    with_label = [c for c in asked if c.startswith("下面这段文字表达的情绪是")]
    assert len(with_label) == len(train_texts) and len(asked) == 25
    assert any("喜悦" in c for c in with_label) and any("悲伤" in c for c in with_label)

    with pytest.raises(AnnotationFailed):  # the same command again: only the failed text is asked
        run(cfg)
    assert len(server.requests) == first + 3
    # what the data module makes of it: the explanations joined, the failed text reported by policy
    knowledge = Knowledge(str(output), missing="drop")
    splits = instantiate(cfg.data).prepare_splits()
    labels = LabelSpace(("joy", "sadness"))
    _, _, report = knowledge.attach(splits, labels)
    assert (report.matched, report.dropped) == (24, 1)


def test_messages_carry_shots_and_label_names():
    prompt = {"system": "S", "free": "F:{text}", "with_label": "L:{labels}:{text}", "label_names": {"joy": "喜悦"},
              "shots": [{"text": "t0", "knowledge": "k0"}]}
    assert build_messages("t", ["joy", "anger"], prompt) == [
        {"role": "system", "content": "S"}, {"role": "user", "content": "F:t0"},
        {"role": "assistant", "content": "k0"}, {"role": "user", "content": "L:喜悦、anger:t"}]
    assert build_messages("t", None, prompt)[-1] == {"role": "user", "content": "F:t"}


def test_missing_key_is_named(monkeypatch):
    from senti_lit.data.annotation import OpenAIChat

    monkeypatch.delenv("SENTI_TEST_KEY", raising=False)
    with pytest.raises(ValueError, match="SENTI_TEST_KEY: the environment variable is not set"):
        OpenAIChat(model="m", api_key_env="SENTI_TEST_KEY")


def test_local_causal_lm_annotator(local_models: dict):
    annotator = LocalCausalLM(str(local_models["gpt2"]), max_new_tokens=5)
    messages = build_messages("很好", None, {"free": "分析：{text}"})
    first = annotator.complete(messages)
    assert isinstance(first, str) and first == annotator.complete(messages)  # greedy: reproducible


def test_hf_annotator_config_composes(local_models: dict, tmp_path: Path):
    cfg = compose_config("annotate", ["annotator=hf", f"annotator.path={local_models['gpt2']}"], tmp_path)
    annotator = instantiate(cfg.annotator)
    assert isinstance(annotator, LocalCausalLM) and annotator.model == str(local_models["gpt2"])


@pytest.mark.slow
def test_refused_texts_through_python_m_keep_the_answers_and_list_every_failure(tmp_path: Path):
    """The command as a user runs it (`python -m`, where Hydra imports the annotator's module a second time): an
    endpoint that refuses 5 texts. The 20 answers are kept, every refused text is listed, exit 1, no traceback."""
    import subprocess
    import sys

    server = ChatServer(refuse="拒绝")
    try:
        rows = [f"第{i}条评论很开心,joy" for i in range(10)] + [f"第{i}条评论很难过,sadness" for i in range(10)]
        rows += [f"第{i}条会被拒绝,joy" for i in range(5)]
        data = tmp_path / "reviews.csv"
        data.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-m", "senti_lit.annotate", "data=csv", f"data.path={data}",
             f"annotator.base_url={server.url}", "annotator.api_key_env=null", "annotator.backoff=0.01",
             "annotator.max_retries=1", f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "5 of 25 texts failed, every one listed in" in result.stderr and "HTTP 400" in result.stderr
    knowledge = [json.loads(line) for line in (tmp_path / "reviews.knowledge.jsonl").read_text("utf-8").splitlines()]
    assert len(knowledge) == 20 and not any("拒绝" in r["text"] for r in knowledge)
    failed = [json.loads(line) for line in
              (tmp_path / "reviews.knowledge.failed.jsonl").read_text("utf-8").splitlines()]
    assert sorted(r["text"] for r in failed) == sorted(f"第{i}条会被拒绝" for i in range(5))
    assert all(r["error"].startswith("HTTP 400") for r in failed)
