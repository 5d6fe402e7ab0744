"""Every use of uvicorn's internals, in one place. uvicorn (0.3x-0.5x) has a timeout for idle keep-alive
connections (`timeout_keep_alive`) but none for a request whose headers never finish arriving: 50 connections that
send a header byte a second stay open for ever (slowloris). `HeaderTimeoutH11` is uvicorn's own h11 protocol (the
`http=` class uvicorn.Config takes) with one more timer: from a connection's first byte (or a request's, on a
kept-alive connection) to the end of its headers. It reads `conn` (the h11 connection), `transport` and `loop` of
`H11Protocol`; `tests/test_library_adapters.py` checks them against the installed uvicorn.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

PRIVATE_ATTRIBUTES = ("conn", "transport", "loop")  # of an H11Protocol after connection_made


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol; a request whose headers take longer than `header_timeout` seconds is answered 408
    and its connection closed."""

    header_timeout: float = 10.0  # set per server by `with_header_timeout`

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a request has begun (or the next one on a kept-alive connection): its headers are timed
        else:
            self._disarm()  # the headers are in

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        log.info("closed a connection whose request headers took over header_timeout=%g s", self.header_timeout)
        body = b'{"detail": "the request headers did not arrive within the server\'s header_timeout"}'
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close"
                             b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.transport.close()


def with_header_timeout(seconds: float) -> type[HeaderTimeoutH11]:
    """The protocol class for uvicorn.Config(http=...) with this server's header timeout."""
    return type("HeaderTimeoutH11", (HeaderTimeoutH11,), {"header_timeout": float(seconds)})


def uvicorn_settings(header_timeout: float, max_connections: int, keep_alive: float) -> dict[str, Any]:
    """uvicorn.Config keyword arguments: the header timeout, the connection limit (503 above it), the idle
    keep-alive timeout."""
    return {"http": with_header_timeout(header_timeout), "limit_concurrency": int(max_connections),
            "timeout_keep_alive": float(keep_alive)}
