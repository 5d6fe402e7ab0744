"""The repository's promises about itself: CI runs exactly the README's test command."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))]
    assert ci == ["make test"]
    first_block = readme.split("```")[1]
    assert any(line.startswith("make test") for line in first_block.splitlines())


def test_install_pins_cpu_torch():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet torch==2.13.0" in makefile
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()
