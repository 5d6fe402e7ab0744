"""The repository's promises about itself: CI runs the whole test suite (slow tests too), the default `make test`
leaves the slow ones out, and test modules share code through tests/helpers and conftest fixtures only."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def test_ci_runs_the_whole_suite_and_make_test_the_fast_one():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))]
    assert ci[-1] == "make test-all"
    # before it, only the system packages of the browser test (chromium for Playwright, a CJK font)
    assert all("apt-get install" in line and "chromium" in line for line in ci[:-1]), ci
    makefile = (ROOT / "Makefile").read_text()
    assert "\t$(BIN)/python -m pytest -m '' $(ARGS)" in makefile.split("\ntest-all:")[1].split("\n\n")[0]
    assert "\t$(BIN)/python -m pytest $(ARGS)" in makefile.split("\ntest:")[1].split("\n\n")[0]
    pytest_options = (ROOT / "pyproject.toml").read_text().split("[tool.pytest.ini_options]")[1].split("\n[")[0]
    addopts = re.search(r"^addopts = (.*)$", pytest_options, re.M).group(1)
    assert "-m 'not slow'" in addopts  # what `make test` (plain pytest) leaves out
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```")[1]
    assert any(line.startswith("make test") for line in first_block.splitlines())


def test_install_pins_cpu_torch():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet torch==2.13.0" in makefile
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports: import statements anywhere in it, and __import__/import_module("...") calls."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "id", getattr(node.func, "attr", None)) in ("__import__", "import_module")):
            names.add(node.args[0].value)
    return names


def test_no_test_module_imports_another_test_module_or_conftest():
    files = sorted(TESTS.glob("test_*.py")) + sorted((TESTS / "helpers").glob("*.py")) + [TESTS / "conftest.py"]
    assert len(files) > 10
    bad = {f"{path.relative_to(TESTS)}: {name}" for path in files for name in imported_modules(path)
           if name.split(".")[0].startswith("test_") or name.split(".")[0] == "conftest"}
    assert not bad, "shared code belongs in tests/helpers (plain) or tests/conftest.py (fixtures): " + ", ".join(
        sorted(bad))


def test_the_import_check_sees_every_form(tmp_path: Path):
    module = tmp_path / "test_x.py"
    module.write_text("import test_a\nfrom test_b import f\nfrom conftest import g\ndef h():\n"
                      "    import test_c.sub\n    return __import__('test_d'), importlib.import_module('test_e')\n"
                      "from helpers.data import review\nfrom . import sibling\n")
    assert imported_modules(module) == {"test_a", "test_b", "conftest", "test_c.sub", "test_d", "test_e",
                                        "helpers.data"}


@pytest.mark.slow
def test_every_benchmark_script_imports():
    """A benchmark is run by hand, rarely: an import it lost (a helper moved in a refactor) must fail here first.
    Benchmarks import the installed package and their own folder's modules only: never tests/ (nor src/ by path)."""
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    scripts = sorted((root / "benchmarks").glob("*.py"))
    for path in scripts:
        text = path.read_text(encoding="utf-8")
        assert "sys.path" not in text, f"{path.name} edits sys.path: import the installed senti_lit instead"
        assert not any(m.split(".")[0] in ("helpers", "conftest") for m in imported_modules(path)), path.name
    names = [p.stem for p in scripts]
    code = f"import sys; sys.path[:0] = [{str(root / 'benchmarks')!r}]\nfor name in {names}: __import__(name)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=root / "benchmarks")
    assert result.returncode == 0, result.stderr[-2000:]


# The package's layers, bottom first: a module may import its own layer and the ones below, never one above. The
# commands (modules at the package root) sit on top; nothing imports them. Written once, here.
LAYERS = ("core", "weights", "data", "models", "inference", "training", "serving")
PACKAGE = ROOT / "src" / "senti_lit"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """LAYERS index of a senti_lit module; len(LAYERS) for a command; -1 for the package itself (its version)."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else len(LAYERS)


def import_graph() -> dict[str, set[str]]:
    """Every senti_lit module -> the senti_lit modules it imports anywhere in it (lazy imports inside functions
    too: they tie the modules all the same). `from a import b` counts as a.b when that is a module."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("senti_lit"):
                subs = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
                targets |= subs or {node.module}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("senti_lit")}
        targets |= {m for m in imported_modules(path) if m.startswith("senti_lit")}
        graph[name] = {t for t in targets if t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_and_no_import_from_a_lower_layer_to_a_higher_one():
    graph = import_graph()
    assert len(graph) > 40 and "senti_lit.training.steps" in graph["senti_lit.train"]  # the graph is read
    assert not cycles(graph), f"import circles: {cycles(graph)}"
    upward = sorted(f"{m} ({LAYERS[layer_of(m)]}) imports {t}" for m, ts in graph.items() for t in ts
                    if 0 <= layer_of(m) < layer_of(t))
    assert not upward, "imports from a lower layer to a higher one (tests/test_repo.py LAYERS): " + "; ".join(upward)


def test_the_layer_check_finds_a_circle_and_an_upward_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("senti_lit.models.builder") < layer_of("senti_lit.training.steps") < layer_of("senti_lit.train")


def test_the_package_root_holds_only_commands():
    """Each root module is a command: `python -m senti_lit.<name>` (a `__main__` guard) with a `main`; the library
    lives in the layer packages."""
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages == set(LAYERS), f"packages {sorted(packages)} vs LAYERS {LAYERS}: add the new one to LAYERS"
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        text = path.read_text(encoding="utf-8")
        assert 'if __name__ == "__main__":' in text and "def main(" in text, f"{path.name} is not a command"
        tree = ast.parse(text)
        functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
        assert not classes and len(functions) <= 4, f"{path.name}: library code at the root ({functions + classes})"
