"""`python -m senti_lit.serve artifact=<ONNX export>` (issue 39): the server on the export of tests/fixtures' tiny
artifact answers what the server on the artifact itself answers (same JSON, probabilities within 1e-4, per-request
threshold and top_k, the same errors for crafted requests), and its processes never import torch. Also the
length-aware forward batches of the worker (`forward_batches`) and the backend choice at start-up."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from helpers.serving import ARTIFACT, BAD, KEY, SETTINGS, TEXTS
from senti_lit.serving.api import SentimentAPI, forward_batches
from senti_lit.serving.process import running_server
from senti_lit.serving.schema import Limits, PredictRequest

# servers in subprocesses, each loading a model (~40 s here): make test-all (and CI) runs them
pytestmark = pytest.mark.slow

TOLERANCE = 1e-4  # what the export itself checks against the artifact


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from senti_lit.inference.onnx_export import export_onnx

    run = tmp_path_factory.mktemp("onnx_run")
    artifact = shutil.copytree(ARTIFACT, run / "artifact")
    return export_onnx(artifact, run / "export-onnx")[0]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, export: Path):
    """{"torch": a server on the artifact, "onnx": a server on its export (backend=auto)}, both with tests/
    test_serve.py's settings."""
    logs = tmp_path_factory.mktemp("serve_onnx")
    env = {"SENTI_TEST_KEY": KEY}
    with running_server(ARTIFACT, logs / "torch.log", *SETTINGS, env=env) as torch_server, \
            running_server(export, logs / "onnx.log", *SETTINGS, env=env) as onnx_server:
        yield {"torch": torch_server, "onnx": onnx_server}


@pytest.fixture(scope="module")
def clients(servers):
    with httpx.Client(base_url=servers["torch"].url, headers={"X-API-Key": KEY}, timeout=60) as torch_client, \
            httpx.Client(base_url=servers["onnx"].url, headers={"X-API-Key": KEY}, timeout=60) as onnx_client:
        yield {"torch": torch_client, "onnx": onnx_client}


def assert_same_answer(onnx: dict, torch: dict) -> None:
    """The same JSON: keys, labels, truncation and top labels equal; probabilities within TOLERANCE."""
    assert onnx.keys() == torch.keys()
    assert onnx.get("label") == torch.get("label") and onnx.get("labels") == torch.get("labels")
    assert onnx["truncated"] == torch["truncated"]
    assert onnx["probs"].keys() == torch["probs"].keys()
    assert onnx["probs"] == pytest.approx(torch["probs"], abs=TOLERANCE)
    if "confidence" in torch:
        assert onnx["confidence"] == pytest.approx(torch["confidence"], abs=TOLERANCE)
    assert [name for name, _ in onnx.get("top", [])] == [name for name, _ in torch.get("top", [])]
    for (_, p), (_, q) in zip(onnx.get("top", []), torch.get("top", [])):
        assert p == pytest.approx(q, abs=TOLERANCE)


def both(clients: dict, body: dict) -> tuple[dict, dict]:
    answers = [clients[b].post("/predict", json=body) for b in ("onnx", "torch")]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    return answers[0].json(), answers[1].json()


def test_the_onnx_server_answers_as_the_torch_server(clients: dict):
    """One text, several, top_k, and a request's own threshold (which leaves the next request's rule alone)."""
    for text in TEXTS:
        assert_same_answer(*both(clients, {"text": text}))
    onnx, torch = both(clients, {"texts": TEXTS, "top_k": 2})
    assert [a["truncated"] for a in onnx["predictions"]] == [False, False, False, False, True]
    for o, t in zip(onnx["predictions"], torch["predictions"]):
        assert_same_answer(o, t)
    positive = [a["probs"]["positive"] for a in torch["predictions"]]
    for cut in (min(positive) + 1e-3, max(positive) + 1e-3, 0.5):
        onnx, torch = both(clients, {"texts": TEXTS, "threshold": cut})
        for o, t in zip(onnx["predictions"], torch["predictions"]):
            assert_same_answer(o, t)
            assert o["label"] == ("positive" if o["probs"]["positive"] >= cut else "negative")
    default = clients["onnx"].post("/predict", json={"texts": TEXTS}).json()["predictions"]
    assert [a["label"] for a in default] == [a["label"] for a in both(clients, {"texts": TEXTS})[1]["predictions"]]


def test_concurrent_requests_batched_on_onnx_keep_their_own_threshold_and_top_k(clients: dict):
    """24 requests at once (batched by the server, their texts cut into forward batches by length), each with its
    own threshold or top_k: every answer equals the torch server's for the same request alone."""
    bodies = [{"text": TEXTS[i % len(TEXTS)], "top_k": 2} if i % 3 == 0 else
              {"texts": TEXTS[i % len(TEXTS):], "threshold": 0.3 + 0.02 * i} if i % 3 == 1 else
              {"text": TEXTS[i % len(TEXTS)] * (1 + i % 4)} for i in range(24)]
    results: dict[int, dict] = {}

    def ask(i: int) -> None:
        results[i] = clients["onnx"].post("/predict", json=bodies[i]).json()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, body in enumerate(bodies):
        expected = clients["torch"].post("/predict", json=body).json()
        pairs = zip(results[i]["predictions"], expected["predictions"]) if "texts" in body else [(results[i],
                                                                                                   expected)]
        for o, t in pairs:
            assert_same_answer(o, t)


CRAFTED = {
    **BAD,
    "a huge text": ({"text": "好" * 2001}, None, 413, "max_chars=2000"),
    "a text of wrong type among many": ({"texts": ["好", None]}, None, 422, "texts[1] is not a string"),
    "threshold as a string": ({"text": "好", "threshold": "0.5"}, None, 422, "threshold"),
    "top_k as a float": ({"text": "好", "top_k": 2.0}, None, 422, "top_k"),
}


def test_crafted_requests_get_the_same_errors_as_on_torch(clients: dict):
    """Every refused body of tests/test_serve.py, and more: the same status and the same JSON from both backends;
    a long text within the limits is answered (truncated) by both."""
    for case, (body, content_type, status, detail) in CRAFTED.items():
        answers = []
        for backend in ("onnx", "torch"):
            if content_type is None:
                answers.append(clients[backend].post("/predict", json=body))
            else:
                answers.append(clients[backend].post("/predict", content=body,
                                                     headers={"Content-Type": content_type}))
        onnx, torch = answers
        assert onnx.status_code == torch.status_code == status, (case, onnx.text)
        assert onnx.json() == torch.json(), case
        assert detail in onnx.json()["detail"], (case, onnx.json()["detail"])
    onnx, torch = both(clients, {"text": "好" * 1999})
    assert onnx["truncated"] and torch["truncated"]
    assert_same_answer(onnx, torch)


def test_info_names_the_backend(clients: dict, export: Path):
    onnx, torch = (clients[b].get("/info").json()["model"] for b in ("onnx", "torch"))
    assert (onnx["backend"], torch["backend"]) == ("onnx", "torch")
    assert onnx["name"] == export.parent.name and onnx["quantize"] is None  # the run's name, as for its artifact
    for key in ("labels", "task", "metrics", "max_length", "decision", "limits", "method"):
        assert onnx[key] == torch[key], key


def test_no_process_of_the_onnx_server_loads_torch(servers: dict):
    """The server's main, HTTP and worker processes: none has torch's library mapped; the worker has
    onnxruntime's (Linux /proc)."""
    psutil = pytest.importorskip("psutil")
    if not Path("/proc/self/maps").is_file():
        pytest.skip("needs Linux /proc")
    main = psutil.Process(servers["onnx"].process.pid)
    mapped = {p.pid: Path(f"/proc/{p.pid}/maps").read_text() for p in [main, *main.children(recursive=True)]}
    assert not [pid for pid, maps in mapped.items() if "libtorch" in maps]
    assert len([pid for pid, maps in mapped.items() if "onnxruntime" in maps]) == 1
    torch_main = psutil.Process(servers["torch"].process.pid)  # the check sees torch where it is loaded
    assert any("libtorch" in Path(f"/proc/{p.pid}/maps").read_text() for p in torch_main.children(recursive=True))


WORKER = """
import sys
import senti_lit.serve  # the spawned worker's __main__ (LitServe starts workers with multiprocessing's spawn)
from senti_lit.serving.api import SentimentAPI
from senti_lit.serving.schema import Limits, PredictRequest
api = SentimentAPI(sys.argv[1], backend="onnx", threads=1)
api.setup("cpu")
answer = api.predict(PredictRequest(text="这本书很好", top_k=2))
print(answer["label"], sorted(m for m in ("torch", "transformers", "lightning", "peft") if m in sys.modules))
"""


def test_the_worker_setup_on_onnx_imports_no_torch(export: Path):
    """What the worker process runs (the command's module, the API's setup, a request) leaves torch,
    transformers, Lightning and peft unimported."""
    done = subprocess.run([sys.executable, "-c", WORKER, str(export)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    label, imported = done.stdout.split(" ", 1)
    assert label in ("negative", "positive") and imported.strip() == "[]", done.stdout


def test_forward_batches_sort_by_length_and_bound_the_padding():
    lengths = [128, 8, 9, 40, 8, 127, 10, 41, 12]
    batches = forward_batches(lengths, batch_size=3, call_tokens=16)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths) and max(map(len, batches)) <= 3
    for b in batches:  # each text joined a batch only while the padding it added stayed within a call's cost
        for k in range(1, len(b)):
            assert k * (lengths[b[k]] - lengths[b[k - 1]]) <= 16
    # by length: 8 8 9 | 10 12 (the first is full) | 40 41 (padding 2 x 28 > 16) | 127 128
    assert batches == [[1, 4, 2], [6, 8], [3, 7], [5, 0]]
    assert forward_batches(lengths, batch_size=4, call_tokens=None) == [[1, 4, 2, 6], [8, 3, 7, 5], [0]]
    assert forward_batches([], 8) == []


def test_a_batch_of_requests_answers_as_each_request_alone(export: Path):
    """In the worker: requests of many lengths, thresholds and top_k in one batch (several forward batches) get
    what each gets alone (one forward batch)."""
    from senti_lit.inference.onnx_predictor import OnnxPredictor

    api = SentimentAPI(str(export), backend="onnx")
    api.predictor = OnnxPredictor.load(export, threads=1)
    try:
        PredictRequest.configure(Limits(labels=("negative", "positive")))
        requests = [PredictRequest(texts=TEXTS, top_k=2), PredictRequest(text="好" * 30, threshold=0.6),
                    PredictRequest(text="一般"), PredictRequest(texts=["很差", "The room was clean." * 5],
                                                              threshold=0.2)]
    finally:
        PredictRequest.configure(Limits())
    assert len(forward_batches(api.predictor.encode([t for r in requests for t in r.items]).lengths(), 64)) > 1
    together = api.predict(requests)
    alone = [api.predict(r) for r in requests]
    assert json.dumps(together) == json.dumps(alone)


def test_a_backend_the_folder_cannot_serve_is_one_clear_error(export: Path):
    from senti_lit.serving.app import build_server
    from senti_lit.serving.options import ServeOptions

    for options, message in ((dict(artifact=str(export), backend="torch"), "is an ONNX export: use backend=onnx"),
                             (dict(artifact=str(ARTIFACT), backend="onnx"), "holds no onnx.json"),
                             (dict(artifact=str(export), device="cuda"), "backend=onnx runs on the CPU"),
                             (dict(artifact=str(export), backend="tensorrt"), "must be one of auto, torch, onnx")):
        with pytest.raises(ValueError, match=message):
            build_server(ServeOptions(**options))


def test_the_auth_hook_is_a_coroutine_that_still_checks_litserves_own_key(monkeypatch: pytest.MonkeyPatch):
    """`SentimentAPI.authorize` replaces LitServe's thread-pooled default; LIT_SERVER_API_KEY, when set, still
    guards every route it guarded (a 401 without the key)."""
    import asyncio
    import inspect

    from fastapi import HTTPException
    from starlette.requests import Request

    def request(key: str | None) -> Request:
        headers = [(b"x-api-key", key.encode())] if key is not None else []
        return Request({"type": "http", "method": "POST", "path": "/predict", "headers": headers})

    api = SentimentAPI(str(ARTIFACT))
    assert inspect.iscoroutinefunction(api.authorize)
    monkeypatch.delenv("LIT_SERVER_API_KEY", raising=False)
    assert asyncio.run(api.authorize(request(None))) is None
    monkeypatch.setenv("LIT_SERVER_API_KEY", "lit-key")
    for wrong in (None, "nope", ""):
        with pytest.raises(HTTPException) as refused:
            asyncio.run(api.authorize(request(wrong)))
        assert refused.value.status_code == 401
    assert asyncio.run(api.authorize(request("lit-key"))) is None
