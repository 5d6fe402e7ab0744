"""The private Lightning and LitServe APIs senti_lit relies on live in one adapter module per library
(`training/lightning_private.py`, `serving/litserve_private.py`): here they are checked against the installed
libraries (a release that renames one fails this test, not a user's run), and every other module is checked to use
none of them."""
from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "senti_lit"
ADAPTERS = {"lightning": "senti_lit.training.lightning_private", "litserve": "senti_lit.serving.litserve_private"}
# the signatures the adapters override (parameter names after self)
SIGNATURES = {
    ("lightning.pytorch.callbacks", "ModelCheckpoint", "_save_last_checkpoint"): ["trainer", "monitor_candidates"],
    ("litserve", "LitServer", "_perform_graceful_shutdown"): ["manager", "uvicorn_workers", "shutdown_reason"],
}


def tiny_lit_server():
    import litserve as ls

    class Echo(ls.LitAPI):
        def setup(self, device):
            pass

        def predict(self, x):
            return x

    return ls.LitServer(Echo())


def instances() -> dict[str, list]:
    """A fresh object of each class whose private state the adapters read."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return {"lightning": [ModelCheckpoint()], "litserve": [tiny_lit_server()]}


@pytest.mark.parametrize("library", sorted(ADAPTERS))
def test_each_private_name_an_adapter_uses_still_exists(library: str):
    adapter = importlib.import_module(ADAPTERS[library])
    base = {"lightning": "lightning.pytorch.callbacks.ModelCheckpoint", "litserve": "litserve.LitServer"}[library]
    module, _, name = base.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    for method in adapter.PRIVATE_METHODS:
        assert callable(getattr(cls, method, None)), f"{base}.{method} is gone: update {ADAPTERS[library]}"
    for obj in instances()[library]:
        for attribute in adapter.PRIVATE_ATTRIBUTES:
            assert hasattr(obj, attribute), f"{base}().{attribute} is gone: update {ADAPTERS[library]}"


@pytest.mark.parametrize("where", sorted(SIGNATURES), ids=lambda w: ".".join(w[1:]))
def test_the_overridden_private_methods_keep_their_signature(where):
    module, cls, method = where
    parameters = list(inspect.signature(getattr(getattr(importlib.import_module(module), cls), method)).parameters)
    assert parameters[1:] == SIGNATURES[where], f"{cls}.{method}{parameters}: the adapter's override no longer fits"


def private_names() -> set[str]:
    """Single-underscore names of every Lightning and LitServe class (and of the instances above)."""
    names: set[str] = set()
    modules = ["lightning.pytorch", "lightning.pytorch.callbacks", "lightning.pytorch.loggers",
               "lightning.pytorch.plugins", "lightning.pytorch.strategies", "lightning.fabric.plugins.io", "litserve"]
    objects = [obj for m in modules for obj in vars(importlib.import_module(m)).values()
               if inspect.isclass(obj) and obj.__module__.startswith(("lightning", "litserve"))]
    for obj in objects + [o for group in instances().values() for o in group]:
        names |= {n for n in dir(obj) if n.startswith("_") and not n.startswith("__")}
    return names


def private_uses(path: Path, names: set[str]) -> list[str]:
    """`x._name` reads and `def _name` overrides of `names` in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in names:
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: .{node.attr}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: def {node.name}")
    return found


def test_no_module_but_the_adapters_uses_a_private_lightning_or_litserve_name():
    names = private_names()
    assert {"_save_last_checkpoint", "_shutdown_event", "_start_server"} <= names  # the scan sees them
    adapters = {SRC.joinpath(*m.split(".")[1:]).with_suffix(".py") for m in ADAPTERS.values()}
    assert all(private_uses(path, names) for path in adapters)  # and finds them where they are
    uses = [use for path in sorted(SRC.rglob("*.py")) if path not in adapters for use in private_uses(path, names)]
    assert not uses, "private Lightning/LitServe API outside its adapter module: " + "; ".join(uses)


def test_the_uvicorn_protocol_still_has_what_the_header_timeout_reads():
    """serving/uvicorn_private.py reads `conn` (h11), `transport` and `loop` of uvicorn's H11Protocol."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from senti_lit.serving import uvicorn_private

    source = inspect.getsource(H11Protocol)
    for attribute in uvicorn_private.PRIVATE_ATTRIBUTES:
        assert f"self.{attribute} = " in source, f"H11Protocol.{attribute} is gone: update uvicorn_private.py"
    settings = uvicorn_private.uvicorn_settings(2.5, 10, 3)
    assert issubclass(settings["http"], H11Protocol) and settings["http"].header_timeout == 2.5
