"""`python -m senti_lit.serve` (issue 26): a real server process on a free loopback port, one per module, serving the
tiny trained artifact of tests/fixtures; its answers against `Predictor`'s, every refused input, the file reader, the
API key, the page's files. The browser test is tests/test_serve_browser.py."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from helpers.serving import ARTIFACT, BAD, KEY, SETTINGS, TEXTS
from senti_lit.inference.predictor import Predictor
from senti_lit.serving.process import HOST, free_port, running_server, start_server
from senti_lit.serving.schema import Limits, PredictRequest


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """Batching on (a batch fills for 50 ms), small limits to test, and an API key."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with running_server(ARTIFACT, log, *SETTINGS, env={"SENTI_TEST_KEY": KEY}) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load(ARTIFACT)


def assert_same(served: dict, offline: dict) -> None:
    assert served.keys() - {"truncated"} == offline.keys()
    assert served["label"] == offline["label"]
    assert served["confidence"] == pytest.approx(offline["confidence"], abs=1e-6)
    assert served["probs"] == pytest.approx(offline["probs"], abs=1e-6)
    for (name, p), (name2, q) in zip(served.get("top", []), offline.get("top", [])):
        assert name == name2 and p == pytest.approx(q, abs=1e-6)


def test_answers_equal_the_predictor(client: httpx.Client, predictor: Predictor):
    offline = predictor.predict(TEXTS)
    one = [client.post("/predict", json={"text": t}).json() for t in TEXTS]
    many = client.post("/predict", json={"texts": TEXTS}).json()["predictions"]
    for served in (one, many):
        for s, o in zip(served, offline):
            assert_same(s, o)
    # the over-long text is truncated as in training, and the answer says so
    assert [a["truncated"] for a in many] == [False, False, False, False, True]
    top = client.post("/predict", json={"texts": TEXTS[:2], "top_k": 2}).json()["predictions"]
    for s, o in zip(top, predictor.predict(TEXTS[:2], top_k=2)):
        assert_same(s, o)


def test_a_request_threshold_decides_that_request_only(client: httpx.Client, predictor: Predictor):
    probs = predictor.probabilities(TEXTS)[:, 1]
    cut = float(probs.max()) + 1e-4  # no text reaches it
    strict = client.post("/predict", json={"texts": TEXTS, "threshold": cut}).json()["predictions"]
    assert [a["label"] for a in strict] == ["negative"] * len(TEXTS)
    assert [a["probs"] for a in strict] == [a["probs"] for a in client.post(
        "/predict", json={"texts": TEXTS}).json()["predictions"]]
    default = [a["label"] for a in client.post("/predict", json={"texts": TEXTS}).json()["predictions"]]
    assert default == [a["label"] for a in predictor.predict(TEXTS)]


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(client: httpx.Client, predictor: Predictor):
    offline = predictor.predict(TEXTS)
    results: dict[int, dict] = {}

    def ask(i: int) -> None:
        body = {"text": TEXTS[i % len(TEXTS)]} if i % 2 else {"texts": [TEXTS[i % len(TEXTS)]], "top_k": 2}
        answer = client.post("/predict", json=body).json()
        results[i] = answer if i % 2 else answer["predictions"][0]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 24
    for i, answer in results.items():
        expected = offline[i % len(TEXTS)]
        assert answer["label"] == expected["label"] and answer["probs"] == pytest.approx(expected["probs"], abs=1e-6)
        assert ("top" in answer) == (i % 2 == 0)


def test_health_and_info(server, client: httpx.Client):
    health = httpx.get(f"{server.url}/health", timeout=10)  # no key: load balancers probe it
    assert health.status_code == 200 and health.text == "ok"
    model = client.get("/info").json()["model"]
    meta = json.loads((ARTIFACT / "artifact.json").read_text())
    assert model["labels"] == ["negative", "positive"] and model["task"] == "binary"
    assert model["metrics"]["test/acc"] == pytest.approx(meta["metrics"]["test/acc"])
    assert "best/val/acc" not in model["metrics"]
    assert model["max_length"] == 32 and model["decision"]["rule"] == "the likeliest label"
    assert model["limits"] == {"max_texts": 16, "max_chars": 2000, "max_length": 32}




@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_gets_its_4xx_and_the_next_request_succeeds(client: httpx.Client, case: str):
    body, content_type, status, detail = BAD[case]
    if content_type is None:
        response = client.post("/predict", json=body)
    else:
        response = client.post("/predict", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    message = response.json()["detail"]
    assert isinstance(message, str) and "\n" not in message and detail in message, message
    assert len(response.content) < 4000  # the refused input is not echoed back
    good = client.post("/predict", json={"text": "这本书很好"})
    assert good.status_code == 200 and good.json()["label"] in ("negative", "positive")


def test_the_api_key_guards_every_route_but_health_and_the_page(server):
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/").status_code == 200 and anonymous.get("/static/app.js").status_code == 200
        for method, path in (("POST", "/predict"), ("GET", "/info"), ("POST", "/read"), ("GET", "/docs"),
                             ("GET", "/openapi.json")):
            response = anonymous.request(method, path, json={"text": "好"} if method == "POST" else None)
            assert response.status_code == 401, (path, response.text)
            assert "X-API-Key" in response.json()["detail"]
        wrong = anonymous.post("/predict", json={"text": "好"}, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
        for scheme in ("Bearer", "bearer", "BEARER"):  # the scheme is case-insensitive (RFC 7235)
            bearer = anonymous.post("/predict", json={"text": "好"}, headers={"Authorization": f"{scheme} {KEY}"})
            assert bearer.status_code == 200, scheme
        bare = anonymous.post("/predict", json={"text": "好"}, headers={"Authorization": KEY})  # no scheme: no key
        assert bare.status_code == 401


def test_an_uploaded_file_is_read_by_the_training_reader(client: httpx.Client, tmp_path: Path):
    csv = "text,stars\n这本书很好,5\n\"unclosed,1\n很差劲,1\n".encode("gb18030")  # as Windows saves Chinese
    read = client.post("/read", files={"file": ("评论.csv", csv)}).json()
    assert read["file"] == "评论.csv"
    assert [(r["line"], r["text"]) for r in read["rows"]] == [(2, "这本书很好"), (4, "很差劲")]
    assert [s["line"] for s in read["skipped"]] == [3] and "quote" in read["skipped"][0]["reason"]
    jsonl = client.post("/read", files={"file": ("in.jsonl", b'{"text": "a"}\n{oops\n{"text": ""}\n')}).json()
    assert [r["line"] for r in jsonl["rows"]] == [1]
    assert [(s["line"], s["reason"]) for s in jsonl["skipped"]][1] == (3, "empty text")
    column = client.post("/read", files={"file": ("r.csv", b"review\ngood\n")}, data={"text_column": "review"})
    assert [r["text"] for r in column.json()["rows"]] == ["good"]
    missing = client.post("/read", files={"file": ("r.csv", b"review\ngood\n")})
    assert missing.status_code == 400 and "lacks column" in missing.json()["detail"]
    assert "/tmp" not in missing.json()["detail"]  # the client's file name, not the server's temporary path
    other = client.post("/read", files={"file": ("notes.docx", b"x")})
    assert other.status_code == 415 and ".jsonl" in other.json()["detail"]


def test_the_page_works_offline(client: httpx.Client):
    html = client.get("/").text
    assert "<textarea" in html and "/static/app.js" in html
    for path in ("/", "/static/style.css", "/static/app.js"):
        text = client.get(path).text
        external = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, flags=re.I)
        assert not external, f"{path} loads from {external}: the page must work offline"
        assert "@import" not in text and "url(http" not in text


def test_a_taken_port_is_one_clear_error(server):
    port = int(server.url.rsplit(":", 1)[1])
    result = subprocess.run([sys.executable, "-m", "senti_lit.serve", f"artifact={ARTIFACT}", f"port={port}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: port {port} on {HOST} is already in use"), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_missing_api_key_variable_is_a_clear_error():
    result = subprocess.run([sys.executable, "-m", "senti_lit.serve", f"artifact={ARTIFACT}", f"port={free_port()}",
                             "api_key_env=SENTI_NO_SUCH_VARIABLE"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("error: api_key_env=SENTI_NO_SUCH_VARIABLE")


@pytest.mark.slow
def test_a_folder_that_is_no_artifact_is_a_clear_error(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "senti_lit.serve", f"artifact={tmp_path}", f"port={free_port()}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "not a senti_lit artifact" in result.stderr


def test_request_rules_of_other_tasks():
    """Multi-label and knowledge models (the served fixture is binary): the same checks, in the HTTP process."""
    try:
        PredictRequest.configure(Limits(labels=("joy", "anger", "fear"), multi_label=True, knowledge=True))
        assert PredictRequest.model_validate({"text": "好", "threshold": [0.2, 0.5, 0.9], "knowledge": "k"})
        assert PredictRequest.model_validate({"texts": ["a", "b"], "threshold": 0.3, "knowledge": ["k", None]})
        for body, message in (({"text": "a", "threshold": [0.2, 0.5]}, "one per label"),
                              ({"texts": ["a", "b"], "knowledge": ["k"]}, "a list of 2"),
                              ({"text": "a", "knowledge": ["k"]}, "one string")):
            with pytest.raises(ValueError, match=message):
                PredictRequest.model_validate(body)
        PredictRequest.configure(Limits(labels=("a", "b", "c")))
        with pytest.raises(ValueError, match="takes no \"threshold\""):
            PredictRequest.model_validate({"text": "x", "threshold": 0.5})
    finally:
        PredictRequest.configure(Limits())


@pytest.mark.slow
def test_sigterm_answers_the_requests_in_flight(tmp_path: Path):
    """A request waiting for its batch to fill (batch_timeout=2) when SIGTERM comes is still answered; then the
    server and its workers exit 0."""
    server = start_server(ARTIFACT, tmp_path / "server.log", "max_batch_size=64", "batch_timeout=2")
    answers = []
    thread = threading.Thread(target=lambda: answers.append(
        httpx.post(f"{server.url}/predict", json={"text": "这本书很好"}, timeout=60)))
    thread.start()
    time.sleep(0.5)
    assert server.stop() == 0, server.output()
    thread.join()
    assert answers[0].status_code == 200 and answers[0].json()["label"] in ("negative", "positive")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=2)
    assert "Traceback" not in server.output() and "Forcibly" not in server.output(), server.output()


SLOW_EXIT = """
import time, litserve as ls
original = ls.LitServer._perform_graceful_shutdown
def slow_exit(self, *args, **kwargs):  # a loaded machine: the process exits seconds after the manager stopped
    original(self, *args, **kwargs)
    time.sleep(self.monitor_internal + 1)
ls.LitServer._perform_graceful_shutdown = slow_exit
if __name__ == "__main__":
    from senti_lit.serving.app import serve
    from senti_lit.serving.options import ServeOptions
    serve(ServeOptions(artifact={artifact!r}, port={port}, log_level="warning"))
"""


@pytest.mark.slow
def test_a_slow_exit_after_sigterm_logs_no_monitor_traceback(tmp_path: Path):
    """LitServe's worker monitor polls the manager every `monitor_internal` s; a poll after the manager stopped (the
    process slow to exit) logged "Monitoring worker crashed" with a traceback (the flaky SIGTERM test above)."""
    port = free_port()
    script = tmp_path / "slow_exit.py"
    script.write_text(SLOW_EXIT.format(artifact=str(ARTIFACT), port=port), encoding="utf-8")
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, str(script)], stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.25)
    process.terminate()
    assert process.wait(60) == 0, log.read_text()
    assert "Traceback" not in log.read_text() and "crashed" not in log.read_text(), log.read_text()


def test_a_refused_body_gets_a_small_answer_and_health_stays_quick(server, client: httpx.Client):
    """A body whose pydantic errors would be one per item (150,000 numbers, 60,000 unknown keys) is refused with
    the first errors and a count, in bounded time; /health answers meanwhile."""
    health: list[float] = []

    def probe() -> None:
        start = time.monotonic()
        httpx.get(f"{server.url}/health", timeout=30)
        health.append(time.monotonic() - start)

    # each under the server's max_body_mb=1
    for body in (json.dumps({"texts": [7] * 150_000}).encode(), json.dumps({f"k{i}": 1 for i in range(60_000)}).encode()):
        thread = threading.Thread(target=probe)
        start = time.monotonic()
        thread.start()
        response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
        elapsed = time.monotonic() - start
        thread.join()
        assert response.status_code in (413, 422), response.text[:300]
        assert len(response.content) < 4000 and elapsed < 10, (len(response.content), elapsed)
    assert max(health) < 2, health


def raw_exchange(url: str, chunks: list[bytes], pause: float, wait: float = 10) -> tuple[bytes, float]:
    """Send `chunks` over one connection, `pause` s apart; what came back and when (s after the first chunk)."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        start = time.monotonic()
        received = b""
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:
                break  # the server closed it: read what it said
            time.sleep(pause)
        try:
            while data := sock.recv(65536):
                received += data
        except OSError:
            pass
        return received, time.monotonic() - start


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory):
    """Short header and body timeouts, to test them (the defaults are 10 s and 30 s)."""
    log = tmp_path_factory.mktemp("serve_strict") / "server.log"
    with running_server(ARTIFACT, log, "header_timeout=1", "body_timeout=1", "log_level=warning") as running:
        yield running


@pytest.mark.slow
def test_slow_headers_get_a_408_and_their_connection_closed(strict_server):
    """Slowloris: headers one byte every 0.2 s. The connection gets 408 and is closed after header_timeout (1 s),
    not held while the client trickles."""
    request = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    received, elapsed = raw_exchange(strict_server.url, [bytes([b]) for b in request], pause=0.2)
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert elapsed < 0.2 * len(request), elapsed  # closed before the client was done


@pytest.mark.slow
@pytest.mark.parametrize("declared,answer,within", [
    (1000, b"HTTP/1.1 408", 5),  # declares 1 KB, sends 10 bytes: 408 after body_timeout (1 s)
    (50_000_000, b"HTTP/1.1 413", 2),  # declares 50 MB: refused at once, before any body is read
])
def test_a_body_that_does_not_arrive_or_is_too_large_is_answered(strict_server, declared: int, answer: bytes,
                                                                 within: float):
    head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
            + str(declared).encode() + b"\r\n\r\n")
    received, elapsed = raw_exchange(strict_server.url, [head + b'{"text": "'], pause=0)
    assert received.startswith(answer) and (b"body_timeout=1" in received or b"max_body_mb=16" in received), \
        received[:300]
    assert elapsed < within, elapsed
    assert httpx.post(f"{strict_server.url}/predict", json={"text": "好"}, timeout=30).status_code == 200


def test_one_poisoned_request_never_fails_the_others_of_its_batch(client: httpx.Client):
    """30 good requests and one whose text is a lone surrogate, at once (batching on): the poisoned one is refused
    with a 4xx naming the text, and every good one is answered (three rounds)."""
    from concurrent.futures import ThreadPoolExecutor

    poisoned = b'{"texts": ["ok", "\\ud800"]}'
    for _ in range(3):
        with ThreadPoolExecutor(31) as pool:
            good = [pool.submit(client.post, "/predict", json={"text": f"这本书很好 {i}"}) for i in range(30)]
            bad = pool.submit(client.post, "/predict", content=poisoned,
                              headers={"Content-Type": "application/json"})
        assert bad.result().status_code == 422 and "texts[1]" in bad.result().json()["detail"]
        assert [f.result().status_code for f in good] == [200] * 30


def test_a_failing_batch_is_answered_request_by_request(predictor: Predictor):
    """In the worker: when the model fails on a batch, each request is answered on its own; the one that fails
    alone gets a 500 of its own, the others their answers (whatever the failure: here a text the model raises on)."""
    from senti_lit.serving.api import SentimentAPI

    class Fragile:
        def __getattr__(self, name):
            return getattr(predictor, name)

        def probabilities(self, texts, *args, **kwargs):
            if "POISON" in texts:
                raise RuntimeError("the tokenizer choked")
            return predictor.probabilities(texts, *args, **kwargs)

    api = SentimentAPI(str(ARTIFACT))
    api.predictor = Fragile()
    requests = [PredictRequest(text="这本书很好"), PredictRequest(texts=["好", "POISON"]), PredictRequest(text="很差")]
    outputs = api.predict(requests)
    assert outputs[0]["label"] == predictor.predict(["这本书很好"])[0]["label"]
    assert outputs[2]["probs"] == pytest.approx(predictor.predict(["很差"])[0]["probs"], abs=1e-6)
    failed = api.encode_response(outputs[1])
    assert failed.status_code == 500 and b"failed on this request" in failed.body
    assert api.encode_response(outputs[0]) is outputs[0]
    with pytest.raises(RuntimeError):  # one request alone (max_batch_size=1): LitServe's own 500
        api.predict(PredictRequest(text="POISON"))


def test_an_upload_with_a_lone_surrogate_skips_that_row_and_json_is_refused(client: httpx.Client):
    rows = b'{"text": "\xe5\xa5\xbd"}\n{"text": "bad \\ud800 text"}\n{"text": "\xe5\xb7\xae"}\n'
    read = client.post("/read", files={"file": ("x.jsonl", rows)})
    assert read.status_code == 200, read.text
    assert [r["line"] for r in read.json()["rows"]] == [1, 3]
    assert [(s["line"], "surrogate" in s["reason"]) for s in read.json()["skipped"]] == [(2, True)]
    refused = client.post("/read", files={"file": ("x.json", b'[{"text": "a"}]')})
    assert refused.status_code == 415 and ".jsonl" in refused.json()["detail"]


@pytest.mark.slow
def test_a_request_during_the_drain_gets_503_at_once(tmp_path: Path):
    """While SIGTERM drains a request in flight (its batch waits 3 s to fill), new requests are answered 503 (or
    refused once the socket is closed): none waits for its client's timeout (10 s here). A request that an HTTP
    process accepted just before it stopped accepting may be closed by uvicorn's shutdown instead (a quick error)."""
    server = start_server(ARTIFACT, tmp_path / "server.log", "max_batch_size=64", "batch_timeout=3")
    try:
        in_flight = threading.Thread(target=lambda: httpx.post(f"{server.url}/predict", json={"text": "好"},
                                                               timeout=60))
        in_flight.start()
        time.sleep(0.5)
        server.process.send_signal(__import__("signal").SIGTERM)
        time.sleep(0.3)
        seen, waits = [], []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            start = time.monotonic()
            try:
                seen.append(httpx.post(f"{server.url}/predict", json={"text": "好"}, timeout=10).status_code)
            except httpx.ConnectError:
                seen.append("refused")
            except httpx.TransportError as e:
                seen.append(type(e).__name__)
            waits.append(time.monotonic() - start)
            time.sleep(0.1)
        in_flight.join()
        assert server.process.wait(60) == 0, server.output()
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)
    assert max(waits) < 8, (seen, waits)  # never the client's timeout
    assert 503 in seen and set(seen) <= {503, "refused", "ReadError", "RemoteProtocolError"}, seen