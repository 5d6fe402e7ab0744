"""Every use of LitServe's private API, in one place. LitServe (0.2) has no public hook for what the server needs
at start-up and shutdown, so `OrderedShutdown` overrides two private methods and reads one private attribute:

  - `LitServer._start_server(port, num_uvicorn_servers, log_level, sockets, ...) -> {id: uvicorn process}`: the
    HTTP server processes, which the shutdown below stops first (LitServe's own shutdown closes the worker queues
    while requests are still in flight), and their listening sockets (answered 503 while the server drains);
  - `LitServer._perform_graceful_shutdown(manager, uvicorn_workers, shutdown_reason)`: LitServe's shutdown, told
    which HTTP processes are still alive;
  - `LitServer._shutdown_event`: the event LitServe's `run` waits on (set: the shutdown begins).

A LitServe release that renames or re-signs any of them fails `tests/test_library_adapters.py` before a user sees
it. Everything else in `serving/` uses LitServe's public API only.
"""
from __future__ import annotations

import inspect
import threading
from typing import Any

import litserve as ls

PRIVATE_METHODS = ("_start_server", "_perform_graceful_shutdown")  # what the adapter test checks
PRIVATE_ATTRIBUTES = ("_shutdown_event",)


class OrderedShutdown(ls.LitServer):
    """A LitServer with public hooks for the start of its HTTP processes and for stopping its workers."""

    def on_http_started(self, processes: list[Any], sockets: list[Any]) -> None:
        """Called once the HTTP server processes run, with their listening sockets."""

    def stop_workers(self) -> None:
        """Begin LitServe's shutdown of the inference workers (its `run` returns once they stopped)."""
        if self._shutdown_event is not None:
            self._shutdown_event.set()

    def _start_server(self, *args: Any, **kwargs: Any) -> dict:
        workers = super()._start_server(*args, **kwargs)
        bound = inspect.signature(super()._start_server).bind(*args, **kwargs)
        self.on_http_started(list(workers.values()), list(bound.arguments.get("sockets") or []))
        return workers

    def _perform_graceful_shutdown(self, manager: Any, uvicorn_workers: dict, shutdown_reason: str = "normal") -> None:
        alive = {i: w for i, w in uvicorn_workers.items() if w.is_alive()}  # drained ones need no second stop
        self._join_monitor()
        super()._perform_graceful_shutdown(manager, alive, shutdown_reason)

    def _join_monitor(self) -> None:
        """Let LitServe's worker monitor see the shutdown before its manager goes: it polls the manager's event
        every `monitor_internal` s, and one poll after `manager.shutdown()` logs a "Monitoring worker crashed"
        traceback at exit (seen on a loaded machine)."""
        if self._shutdown_event is None:
            return
        self._shutdown_event.set()  # already set by a drain; not on LitServe's own paths (a dead worker)
        for thread in threading.enumerate():
            if thread.name == "litserve-monitoring" and thread is not threading.current_thread():
                thread.join(self.monitor_internal + 1)
