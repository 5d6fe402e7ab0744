"""The repository's promises about itself: CI runs the whole test suite (slow tests too), the default `make test`
leaves the slow ones out, and test modules share code through tests/helpers and conftest fixtures only."""
import ast
import re
from pathlib import Path

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


def test_every_benchmark_script_imports():
    """A benchmark is run by hand, rarely: an import it lost (a helper moved in a refactor) must fail here first."""
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    names = sorted(p.stem for p in (root / "benchmarks").glob("*.py"))
    code = (f"import sys; sys.path[:0] = [{str(root / 'benchmarks')!r}, {str(root / 'tests')!r}, "
            f"{str(root / 'src')!r}]\nfor name in {names}: __import__(name)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
