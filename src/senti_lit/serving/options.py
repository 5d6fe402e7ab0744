"""The options of `python -m senti_lit.serve`, defined once: this dataclass is the Hydra schema of conf/serve.yaml
(registered below as `serve_options`: import this module before composing `serve`), the command's config and
`build_server`'s argument."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class ServeOptions:
    artifact: str = MISSING  # a training run's artifact/ directory, or its ONNX export (senti_lit.export format=onnx)
    # auto: onnx for a folder with onnx.json (onnxruntime; the server never imports torch), else torch
    backend: str = "auto"  # auto | torch | onnx
    host: str = "127.0.0.1"  # this machine only; 0.0.0.0 (or ::) listens on every interface (behind a proxy: docs)
    port: int = 8000
    device: str = "cpu"  # cpu | cuda | cuda:1 | cuda:0,1 (workers on each listed GPU)
    workers: int = 1  # inference workers per device, each with its own copy of the model
    # torch threads (onnx: onnxruntime's intra-op threads) per worker (None: the backend's default with one worker,
    # cores / workers with more)
    threads: Optional[int] = None
    max_batch_size: int = 8  # dynamic batching: up to this many requests in one model call (1: no batching)
    batch_timeout: float = 0.01  # seconds a worker waits for more requests to fill a batch
    # at most this many texts per forward pass inside one model call (sorted by length, cut where padding would cost
    # more than a pass of its own: serving/api.py forward_batches)
    batch_size: int = 64
    timeout: float = 30  # seconds a request may wait for a worker before a 504
    max_texts: int = 256  # texts per request (more: 413)
    max_chars: int = 200_000  # characters per request, texts and knowledge together (more: 413)
    max_body_mb: float = 16  # request body size, uploads included (more: 413)
    header_timeout: float = 10  # seconds a request's headers may take to arrive (then 408, connection closed)
    body_timeout: float = 30  # seconds a request's body may take to arrive (then 408)
    max_connections: int = 512  # open connections per HTTP process (more: 503 at once)
    keep_alive: float = 5  # seconds an idle kept-alive connection stays open
    api_key_env: Optional[str] = None  # NAME of an environment variable holding an API key: all but /health need it
    log_level: str = "info"  # uvicorn's access and error log: debug | info | warning | error
    trust_remote_code: bool = False  # run Python code shipped with the model (never because the artifact asks)
    # the artifact's decision rule overridden for every request (a request's own threshold wins): binary P(positive)
    # cut, or for multi-label one value or one per label
    threshold: Optional[Any] = None
    precision: str = "32"  # backend=torch: 32 | bf16 | auto (as senti_lit.predict)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> ServeOptions:
        """From a composed config (or any mapping): its keys that are options; an unknown key fails."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown serve option(s) {unknown}; the options are {sorted(names)}")
        return cls(**dict(values))


ConfigStore.instance().store(name="serve_options", node=ServeOptions)  # conf/serve.yaml: `defaults: [serve_options]`
