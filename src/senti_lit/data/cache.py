"""The data cache's keys and files, torch-free: short stable hashes of config values and file contents, and the
JSON the examples cache is written in. `data.splits` (no torch) and `data.encoding` (token ids) both use them."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from senti_lit.core.files import atomic_write, read_json

CACHE_VERSION = 5  # bump when what is cached, or how it is computed, changes (5: duplicate key without Cf, spaces)


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def digest(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (config values, file digests)."""
    text = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def files_digest(paths: Iterable[Path]) -> list[tuple[str, str]]:
    return [(p.name, file_digest(p)) for p in paths]


def save_json(path: Path, obj: Any) -> None:
    """JSON, not pickle, in the cache: a cache file someone else wrote must never be able to run code here."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, ensure_ascii=False).encode("utf-8")))


def load_json(path: Path) -> Any:
    return read_json(path)  # a damaged cache file is named
