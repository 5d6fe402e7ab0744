"""The server of `python -m senti_lit.serve`: a LitServer around `SentimentAPI`, plus what LitServe does not do.

LitServe gives: `POST /predict` with dynamic batching (`max_batch_size`, `batch_timeout`), inference workers per
device, `GET /health` (200 only once every worker has loaded its model), `GET /info` (our model description as its
`model_metadata`), the body-size limit (413) and the OpenAPI page at `/docs`. FastAPI is used directly, on
LitServe's app, only for:
  - the web page at `/` and its files under `/static` (LitServe's `/` answers a fixed "litserve running");
  - `POST /read`: an uploaded file read by the training reader, for the page (LitServe routes go to the model);
  - error answers: LitServe has no hook for the status of a body that fails validation (FastAPI's 422 for
    everything), so the size limits become 413 and every 4xx carries a one-line `detail`;
  - the API key: LitServe's own (`LIT_SERVER_API_KEY`) guards `/health` as well, which load balancers must reach
    without one; `api_key_env` is a middleware that leaves `/health` and the page's static shell open.
Plus, around `LitServer.run`: a clear error for a taken port, and a shutdown order on SIGTERM/SIGINT in which
in-flight requests are answered (LitServe's closes the worker queues before the HTTP servers have drained).
"""
from __future__ import annotations

import errno
import hmac
import logging
import os
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping

from fastapi import File, Form, Request, UploadFile
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from senti_lit.serving.api import SentimentAPI
from senti_lit.serving.guards import BodyGuard, DrainResponder
from senti_lit.serving.litserve_private import OrderedShutdown
from senti_lit.serving.options import ServeOptions
from senti_lit.serving.schema import LIMIT, Limits, PredictRequest
from senti_lit.serving.uvicorn_private import uvicorn_settings

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
OPEN_PATHS = ("/health", "/", "/favicon.ico")  # no API key: the readiness probe and the page's static shell
UPLOAD_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl")  # what rows_to_predict reads
FASTAPI_BODY_ERROR = "There was an error parsing the body"  # FastAPI's detail when the body is not UTF-8 JSON


class PortInUse(ValueError):
    """The port is taken (a ValueError: the command's `user_errors` prints it as one line)."""


def check_port(host: str, port: int) -> None:
    """Bind and release (host, port) as uvicorn will, so a taken port is one clear line before the model loads,
    rather than uvicorn's log line after it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT leftovers do not count
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {port} on {host} is already in use (another server?): stop it, or start "
                                f"this one with port=<another port>") from None
            raise ValueError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def parse_device(device: str) -> tuple[str, int | list[int]]:
    """`cpu`, `cuda` (the first GPU), `cuda:1`, `cuda:0,1` -> LitServer's (accelerator, devices)."""
    name, _, ids = str(device).partition(":")
    if name == "cpu" and not ids:
        return "cpu", 1
    if name in ("cuda", "mps"):
        try:
            return name, [int(i) for i in ids.split(",")] if ids else 1
        except ValueError:
            pass
    raise ValueError(f"device={device!r}: use cpu, cuda, cuda:1 or cuda:0,1")


def model_info(meta: Mapping[str, Any], artifact: Path, limits: Limits, backend: str = "torch") -> dict[str, Any]:
    """What `GET /info` says about the model (LitServe's `model_metadata`): name, task, labels, the test metrics
    saved with the artifact, the input length, the decision rule and the backend that answers."""
    labels = meta["labels"]["names"]
    multi = bool(meta["labels"].get("multi_label"))
    decision = meta.get("decision", {})
    thresholds = decision.get("thresholds") or []
    if multi:
        rule = "every label whose probability reaches its threshold"
    elif thresholds:
        rule = f"{decision.get('positive_label')} when its probability is at least {thresholds[0]:.4g}"
    else:
        rule = "the likeliest label"
    in_run = artifact.name == "artifact" or artifact.name.startswith("export-onnx")  # <run>/export-onnx(-int8) too
    run = artifact.parent.name if in_run else artifact.name
    model = meta.get("model", {}) if backend == "onnx" else meta  # onnx.json keeps the source's under "model"
    backbone = (model.get("backbone") or {}).get("path") or "from scratch"
    return {
        "name": run,
        "artifact": str(artifact),
        "backbone": backbone,
        "method": (model.get("method") or {}).get("name"),
        "backend": backend,
        "quantize": model.get("quantize") if backend == "onnx" else None,
        "data": (meta.get("data") or {}).get("name"),
        "task": "multi-label" if multi else ("binary" if len(labels) == 2 else "multi-class"),
        "labels": labels,
        "metrics": {k: v for k, v in meta.get("metrics", {}).items() if k.startswith("test/")},
        "max_length": limits.max_length,
        "knowledge": limits.knowledge,
        "decision": {"rule": rule, "thresholds": thresholds, "temperature": decision.get("temperature")},
        "limits": limits.to_dict(),
    }


class ApiKey:
    """ASGI middleware: every route but `/health` and the page's static shell needs the key, as `X-API-Key: KEY`
    or `Authorization: Bearer KEY` (the page asks for it and sends it with each call)."""

    def __init__(self, app: Any, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-api-key") or bearer_token(headers.get(b"authorization", b""))
        if given and hmac.compare_digest(given, self.key):
            await self.app(scope, receive, send)
            return
        await JSONResponse({"detail": "missing or wrong API key: send it as the X-API-Key header"},
                           status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)


def bearer_token(authorization: bytes) -> bytes:
    """The key of `Authorization: Bearer KEY` (the scheme in any case, RFC 7235); b"" for any other form (a bare
    key without a scheme is not one)."""
    scheme, _, token = authorization.strip().partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else b""


def error_text(error: Mapping[str, Any]) -> str:
    """One pydantic error of the body as a sentence."""
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        fields = ", ".join(PredictRequest.model_fields)
        return f"unknown field {'.'.join(loc)!r} (the fields are {fields})"
    if not loc and kind in ("missing", "model_type", "model_attributes_type", "dict_type"):
        return ("the body must be a JSON object such as {\"text\": \"...\"} or {\"texts\": [\"...\"]}, sent with "
                "Content-Type: application/json")
    if kind == "json_invalid":
        return f"the body is not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{'.'.join(loc)}: {message}" if loc else message


SHOWN_ERRORS = 5  # a refused body's answer lists this many of its errors, and how many there were


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    status = 413 if any(e.get("type") == LIMIT for e in errors) else 400 if any(
        e.get("type") == "json_invalid" for e in errors) else 422
    # the first errors, without their `input` (a refused 200,000-character body is not echoed back), and a count:
    # an answer of a few KB whatever the body held
    texts = list(dict.fromkeys(error_text(e) for e in errors[:50]))
    detail = "; ".join(texts[:SHOWN_ERRORS]) + (f" ({len(errors)} errors in all)" if len(errors) > 1 else "")
    listed = [{"loc": [str(part)[:80] for part in e.get("loc", ())][:5], "msg": str(e.get("msg"))[:300],
               "type": e.get("type")} for e in errors[:SHOWN_ERRORS]]
    return JSONResponse({"detail": detail[:4000], "errors": listed, "error_count": len(errors)}, status_code=status)


def http_error(max_body: int):
    async def handler(request: Request, exc: HTTPException) -> Any:
        if exc.status_code == 400 and exc.detail == FASTAPI_BODY_ERROR:
            exc = HTTPException(400, "the body could not be read as JSON: send UTF-8 encoded JSON with "
                                     "Content-Type: application/json")
        elif exc.status_code == 413:
            exc = HTTPException(413, f"the request body is over this server's max_body_mb="
                                     f"{max_body / 2**20:g} MiB: send less per request")
        return await http_exception_handler(request, exc)

    return handler


def read_upload(file: UploadFile = File(..., description="a .txt (a text per line), .csv/.tsv (a header with "
                                                         "`text_column`) or .jsonl file"),
                text_column: str = Form("text")) -> dict[str, Any]:
    """The rows of an uploaded file as `senti_lit.predict input=` reads them (same reader: encodings, line
    numbers, bad-row rules), for the page to send to /predict; the skipped rows with their line numbers."""
    from senti_lit.core.errors import DataError
    from senti_lit.data.sources import rows_to_predict

    name = Path(file.filename or "upload.txt").name
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise HTTPException(415, f"{name}: use a .txt (a text per line), .csv/.tsv (a {text_column!r} column) or "
                                 ".jsonl ({\"text\": ...} per line) file")
    with tempfile.TemporaryDirectory(prefix="senti_lit_upload_") as folder:
        path = Path(folder) / f"upload{suffix}"  # the reader picks the format by suffix; the client's name is not a path
        with path.open("wb") as f:
            while chunk := file.file.read(1 << 20):
                f.write(chunk)
        try:
            rows, skipped = rows_to_predict(path, text_column)
        except DataError as e:
            raise HTTPException(400, str(e).replace(str(path), name)) from None
    return {
        "file": name,
        "rows": [{"line": ex.line, "text": ex.text, **({"knowledge": ex.knowledge} if ex.knowledge is not None
                                                       else {})} for ex in rows],
        "skipped": [{"line": int(origin.rsplit(":", 1)[1]), "reason": why} for origin, why in skipped],
    }


async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


class Server(OrderedShutdown):
    """LitServer with the page, file reading, error answers and an ordered shutdown (module docstring)."""

    def __init__(self, api: SentimentAPI, *, info: dict[str, Any], max_body: int, body_timeout: float,
                 api_key: str | None = None, banner: str = "", **kwargs: Any) -> None:
        middlewares = [(BodyGuard, {"max_body": max_body, "body_timeout": body_timeout})]
        middlewares += [(ApiKey, {"key": api_key})] if api_key else []
        super().__init__(api, model_metadata=info, max_payload_size=max_body, middlewares=middlewares, **kwargs)
        self.banner = banner
        self.http_workers: list[Any] = []
        self.listening: list[Any] = []
        self._stopping = threading.Event()
        app = self.app
        # LitServe's own `/` ("litserve running") would shadow the page: routes match in order
        app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != "/"]
        app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
        app.add_api_route("/read", read_upload, methods=["POST"], summary="Read a file for prediction (the page's "
                          "upload): its rows and the skipped ones")
        app.add_exception_handler(RequestValidationError, validation_error)
        app.add_exception_handler(HTTPException, http_error(max_body))

    def on_http_started(self, processes: list[Any], sockets: list[Any]) -> None:
        self.http_workers, self.listening = processes, sockets  # for the shutdown order below
        if self.banner:
            print(self.banner, flush=True)

    def run(self, *args: Any, **kwargs: Any) -> None:
        self._main_pid = os.getpid()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            super().run(*args, **kwargs)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._main_pid:
            # a forked HTTP server inherits this handler; uvicorn re-raises the signal after its own graceful exit,
            # expecting the default action (its process ends), not a second shutdown of the whole server
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        if not self._stopping.is_set():
            self._stopping.set()
            log.info("%s: answering the requests in flight, then stopping", signal.Signals(signum).name)
            threading.Thread(target=self._drain, name="senti-lit-drain", daemon=True).start()

    def _drain(self) -> None:
        """HTTP servers first: uvicorn stops accepting and waits for the answers in flight (the workers still run),
        then LitServe's own shutdown stops the workers. Meanwhile a new connection gets an immediate 503."""
        late = DrainResponder(self.listening).start()
        for worker in self.http_workers:
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        for worker in self.http_workers:
            worker.join(self.uvicorn_graceful_timeout + 5)
        late.stop()
        self.stop_workers()


def read_model_meta(artifact: Path, backend: str) -> dict[str, Any]:
    """The folder's metadata, checked: onnx.json for an ONNX export (the server process then never imports torch,
    nor do the HTTP processes it forks), else artifact.json."""
    if backend == "onnx":
        from senti_lit.inference.onnx_predictor import read_meta
    else:
        from senti_lit.inference.artifact import read_meta  # imports torch
    return read_meta(artifact)


def build_server(options: ServeOptions) -> Server:
    """A ready-to-run Server for `options.artifact` (nothing is loaded yet: each worker loads the model in
    `setup`)."""
    from senti_lit.inference.onnx_predictor import choose_backend  # numpy only

    o = options
    api_key = None
    if o.api_key_env:
        api_key = os.environ.get(o.api_key_env)
        if not api_key:
            raise ValueError(f"api_key_env={o.api_key_env}: the environment variable {o.api_key_env} is not set or "
                             f"empty; export {o.api_key_env}=<a secret key> first")
    artifact = Path(o.artifact).resolve()
    backend = choose_backend(str(o.backend), artifact)
    if backend == "onnx" and o.device != "cpu":
        raise ValueError(f"device={o.device}: backend=onnx runs on the CPU (onnxruntime's CPU build); serve the "
                         "training artifact with backend=torch for a GPU")
    meta = read_model_meta(artifact, backend)  # a wrong folder is an error now, not in a worker after the start
    limits = Limits.for_artifact(meta, o.max_texts, o.max_chars)
    PredictRequest.configure(limits)  # before the HTTP processes fork (schema.py says why)
    if o.workers < 1 or o.max_batch_size < 1 or o.batch_timeout < 0:
        raise ValueError(f"workers={o.workers}, max_batch_size={o.max_batch_size} must be at least 1 and "
                         f"batch_timeout={o.batch_timeout} at least 0")
    threads = o.threads
    if threads is None and o.workers > 1:  # workers share the cores instead of each starting one thread per core
        threads = max(1, (os.cpu_count() or 1) // o.workers)
    accelerator, devices = parse_device(o.device)
    api = SentimentAPI(str(artifact), backend=backend, precision=str(o.precision), threshold=o.threshold,
                       trust_remote_code=o.trust_remote_code, batch_size=o.batch_size, threads=threads,
                       max_batch_size=o.max_batch_size, batch_timeout=o.batch_timeout)
    info = model_info(meta, artifact, limits, backend)
    shown = "127.0.0.1" if o.host in ("0.0.0.0", "::") else o.host
    banner = (f"senti_lit.serve: {info['name']} ({info['task']}: {', '.join(info['labels'])}; {backend}) on "
              f"http://{shown}:{o.port}/  (POST /predict, GET /health, GET /info, API docs /docs; Ctrl+C stops)")
    if min(o.header_timeout, o.body_timeout, o.keep_alive) <= 0 or o.max_connections < 1:
        raise ValueError(f"header_timeout={o.header_timeout}, body_timeout={o.body_timeout}, keep_alive="
                         f"{o.keep_alive} must be above 0 and max_connections={o.max_connections} at least 1")
    return Server(api, info=info, max_body=int(o.max_body_mb * 2**20), body_timeout=o.body_timeout, api_key=api_key,
                  banner=banner, accelerator=accelerator, devices=devices, workers_per_device=o.workers,
                  timeout=o.timeout)


def serve(options: ServeOptions) -> None:
    """Build and run the server until SIGTERM/SIGINT."""
    if options.host not in ("127.0.0.1", "0.0.0.0", "::"):  # what LitServe accepts
        raise ValueError(f"host={options.host}: use 127.0.0.1 (this machine only), 0.0.0.0 or :: (every interface)")
    check_port(options.host, int(options.port))
    server = build_server(options)
    server.run(host=options.host, port=int(options.port), log_level=options.log_level, generate_client_file=False,
               **uvicorn_settings(options.header_timeout, options.max_connections, options.keep_alive))
