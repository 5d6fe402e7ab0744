"""A real `python -m senti_lit.serve` process on a free loopback port: for the server's tests and benchmark, and for
anyone who runs the server from Python."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HOST = "127.0.0.1"  # loopback only, in tests and benchmarks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (the graceful shutdown), then the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the server and its workers only
            raise


def start_server(artifact: Path, log: Path, *overrides: str, env: dict | None = None,
                 timeout: float = 180) -> ServerProcess:
    """Start the server and wait until GET /health answers 200 (the model is loaded)."""
    import httpx  # the serve extra's

    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "senti_lit.serve", f"artifact={artifact}", f"host={HOST}",
                                    f"port={port}", *overrides], stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})}, start_new_session=True)
    server = ServerProcess(f"http://{HOST}:{port}", process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}) before it was ready:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"the server was not ready after {timeout} s:\n{server.output()}")


@contextmanager
def running_server(artifact: Path, log: Path, *overrides: str, env: dict | None = None) -> Iterator[ServerProcess]:
    server = start_server(artifact, log, *overrides, env=env)
    try:
        yield server
    finally:
        server.stop()
