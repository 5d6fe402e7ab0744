"""What protects the server from a slow, oversized, mis-encoded or late request, before FastAPI or LitServe reads it:

  - `BodyGuard` (ASGI middleware): a body whose declared length is over the limit is refused at once (413); the
    body must arrive within `body_timeout` seconds (408, not a worker held for ever); a JSON body must be UTF-8
    (400: json.loads would take UTF-16 and lone surrogates, which the docs and the tokenizer do not);
  - `DrainResponder`: while the server drains after SIGTERM, a connection that arrives gets an immediate 503
    instead of waiting in the listening socket's backlog until the client gives up.
The header timeout and connection limit are uvicorn's settings (`uvicorn_private.py`). No library does these for
an ASGI app (Starlette and uvicorn have no body deadline), hence this module.
"""
from __future__ import annotations

import asyncio
import json
import logging
import selectors
import socket
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

JSON_TYPES = ("application/json", "")  # no Content-Type: FastAPI reads the body as JSON all the same


def json_response(status: int, detail: str, extra_headers: list[tuple[bytes, bytes]] = ()) -> list[dict]:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *extra_headers]
    return [{"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body}]


class BodyGuard:
    """ASGI middleware for requests with a body (POST, PUT, PATCH): read it whole, within limits, then replay it."""

    def __init__(self, app: Any, max_body: int, body_timeout: float) -> None:
        self.app, self.max_body, self.body_timeout = app, int(max_body), float(body_timeout)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        refused = self.check_length(headers.get(b"content-length"))
        if refused is None:
            body, refused = await self.read_body(receive)
        if refused is None and self.is_json(headers) and body:
            refused = self.check_utf8(body)
        if refused is not None:
            for message in json_response(*refused):
                await send(message)
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # the client's disconnect, if it comes

        await self.app(scope, replay, send)

    def check_length(self, declared: bytes | None) -> tuple[int, str] | None:
        if declared is None:
            return None
        try:
            length = int(declared)
        except ValueError:
            return 400, "Content-Length is not a number"
        if length > self.max_body:
            return 413, (f"the request body ({length} bytes) is over this server's max_body_mb="
                         f"{self.max_body / 2**20:g} MiB: send less per request")
        return None

    async def read_body(self, receive: Any) -> tuple[bytes, tuple[int, str] | None]:
        chunks, size = [], 0
        deadline = time.monotonic() + self.body_timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                return b"", (408, f"the request body did not arrive within body_timeout={self.body_timeout:g} s")
            if message["type"] == "http.disconnect":
                return b"", (400, "the client disconnected before its body arrived")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", (413, f"the request body is over this server's max_body_mb={self.max_body / 2**20:g} MiB:"
                                  " send less per request")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks), None

    @staticmethod
    def is_json(headers: dict[bytes, bytes]) -> bool:
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().decode("latin-1").lower()
        return kind in JSON_TYPES

    @staticmethod
    def check_utf8(body: bytes) -> tuple[int, str] | None:
        try:
            body.decode("utf-8")  # strict: no UTF-16, no encoded surrogates (ED A0 80)
        except UnicodeDecodeError as e:
            return 400, (f"the body is not UTF-8 ({e.reason} at byte {e.start}): send UTF-8 encoded JSON with "
                         "Content-Type: application/json")
        return None


class DrainResponder:
    """While the server drains: accept on its listening sockets and answer every new connection 503 at once (the
    HTTP processes no longer accept; without this a new request waits in the backlog until its client times out).
    Bounded: each connection gets `read_timeout` seconds to send its request line, and the thread ends on `stop`."""

    RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\n"
                b"connection: close\r\ncontent-length: 63\r\n\r\n"
                b'{"detail": "the server is shutting down: retry on another one"}')

    def __init__(self, sockets: list[socket.socket], read_timeout: float = 1.0) -> None:
        self.sockets, self.read_timeout = [s for s in sockets if s.fileno() >= 0], read_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="senti-lit-drain-503", daemon=True)

    def start(self) -> DrainResponder:
        if self.sockets:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self.sockets:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    try:
                        conn, _ = key.fileobj.accept()
                    except (BlockingIOError, OSError):
                        continue  # an HTTP process took it, or the socket closed
                    self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(self.read_timeout)
            try:
                conn.recv(65536)  # the request (or its start): answered whatever it is
            except OSError:
                pass
            try:
                conn.sendall(self.RESPONSE)
            except OSError:
                pass
