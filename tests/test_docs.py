"""README.md and docs/*.md: every `python -m senti_lit.<cmd> ...` they show composes with the current conf/ (as
tests/test_bench_rows.py does for the benchmark rows), so the docs cannot drift from the configs; plus the README's
shape (length, first screen, a link to every docs page) and no reference to files users do not have.

Commands are taken from fenced code blocks (backslash continuations joined, `# comments` and `&&`/`;` chains cut)
and from inline code spans that start with `python -m senti_lit.`. Placeholders such as `<time>` or `<run A>` are
replaced by a plain word first (Hydra's grammar has no `<`); composition reads no files, so paths need not exist."""
from __future__ import annotations

import importlib.util
import itertools
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf

import senti_lit.serving.options  # noqa: F401  (registers the schema conf/serve.yaml composes with)
from senti_lit.core.command_line import widen
from senti_lit.core.config import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

# python -m senti_lit.<module> -> its Hydra primary config (conf/<name>.yaml); report is argparse
HYDRA_CONFIGS = {"train": "train", "pretrain": "pretrain", "predict": "predict", "export": "export",
                 "evaluate": "evaluate", "annotate": "annotate", "augment": "augment", "serve": "serve"}
ARGPARSE = {"report", "build_e5"}
# Hydra's own command-line flags: not overrides (the ones taking a value drop it too)
FLAGS = {"-m", "--multirun", "--help", "-h", "--hydra-help", "--info", "--resolve", "--run", "-r"}
FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-path", "-cp",
                    "--config-dir", "-cd"}
PLACEHOLDER = re.compile(r"<[^<>`\n]+>")
START = re.compile(r"python -m senti_lit\.\w")  # `python -m senti_lit...` in prose is not a command


@dataclass
class Command:
    page: str     # path relative to the repo
    line: int     # 1-based line where the command starts
    text: str     # the command as written (continuations joined)
    fenced: bool  # in a code block: a whole command (inline, `python -m senti_lit.export` may just name one)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _cut(text: str) -> str:
    """The command alone: from `python -m senti_lit.` up to a comment or the next command of a chain."""
    lexer = shlex.shlex(text, posix=False)
    lexer.whitespace_split = True
    lexer.commenters = ""
    raw = []
    for token in lexer:
        if token.startswith("#") or token in {"&&", "||", ";", "|"}:
            break
        if token.endswith(";") and not token.endswith("\\;"):
            raw.append(token[:-1])
            break
        raw.append(token)
    return " ".join(raw)


def _from_line(page: str, number: int, line: str, fenced: bool = True) -> list[Command]:
    out = []
    for match in START.finditer(line):
        # inside a quoted string, e.g. echo "python -m ...", a command is not run: skip those
        if line[:match.start()].count('"') % 2 or line[:match.start()].count("'") % 2:
            continue
        out.append(Command(page, number, _cut(line[match.start():]), fenced))
    return out


def extract(path: Path) -> list[Command]:
    page = str(path.relative_to(ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    commands: list[Command] = []
    prose: list[tuple[int, str]] = []  # (line number, text) outside fenced blocks
    fence = None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif fence is not None:
            start = i
            while line.endswith("\\") and i + 1 < len(lines):  # shell line continuation
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            commands += _from_line(page, start + 1, line)
        else:
            prose.append((i + 1, line))
        i += 1
    # inline code spans (they may wrap across lines in the markdown source)
    text = "\n".join(line for _, line in prose)
    numbers = [n for n, _ in prose]
    for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
        span = " ".join(match.group(1).split())
        if START.match(span):
            line_index = text.count("\n", 0, match.start())
            commands.append(Command(page, numbers[line_index], _cut(span), fenced=False))
    return commands


COMMANDS = [c for page in PAGES for c in extract(page)]


def _ids(commands: list[Command]) -> list[str]:
    """page:line, and page:line#2 for a second command on the same line."""
    ids, count = [], {}
    for c in commands:
        count[c.id] = count.get(c.id, 0) + 1
        ids.append(c.id if count[c.id] == 1 else f"{c.id}#{count[c.id]}")
    return ids


def split_command(command: Command) -> tuple[str, list[str]]:
    """(module, arguments) with placeholders replaced."""
    argv = shlex.split(PLACEHOLDER.sub("X", command.text))
    assert argv[:2] == ["python", "-m"], command.text
    module = argv[2].removeprefix("senti_lit.")
    return module, argv[3:]


def hydra_overrides(args: list[str]) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in FLAGS:
            continue
        elif arg in FLAGS_WITH_VALUE:
            skip = True
        elif arg.startswith("-"):
            raise AssertionError(f"unknown flag {arg!r}")
        else:
            out.append(arg)
    return widen(out)  # as the command itself passes them on (senti_lit.core.command_line)


PARSER = OverridesParser.create()


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """A multirun's overrides as the jobs it launches: every combination of the comma lists (`seed=1,2,3`)."""
    choices = []
    for text in overrides:
        override = PARSER.parse_override(text)
        if override.is_sweep_override():
            prefix = "++" if override.is_force_add() else "+" if override.is_add() else ""
            key = override.key_or_group + (f"@{override.package}" if override.package else "")
            choices.append([f"{prefix}{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([text])
    return [list(job) for job in itertools.product(*choices)]


def is_group(override) -> bool:
    key = override.key_or_group
    return override.package is not None or "/" in key or (Path(CONFIG_DIR) / key).is_dir()


def plain(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(plain(v) for v in value)
    if isinstance(value, dict):
        return all(plain(v) for v in value.values())
    return value is None or isinstance(value, (bool, int, float)) or (isinstance(value, str) and "${" not in value)


def check_values(cfg: DictConfig, overrides: list[str], where: str) -> None:
    """Each plain `key=value` of the command is what the composed config holds at that key (the doc's override
    lands where the doc says it does; group choices, deletions and interpolations are not compared)."""
    for text in overrides:
        override = PARSER.parse_override(text)
        if override.is_delete() or is_group(override):
            continue
        value = override.value()
        if not plain(value):
            continue
        found = OmegaConf.select(cfg, override.key_or_group, default="<missing>")
        if isinstance(found, (DictConfig, ListConfig)):
            found = OmegaConf.to_container(found)
        assert found == value, f"{where}: {text} composed to {override.key_or_group}={found!r}"


def missing_values(node, prefix: str = "") -> list[str]:
    """Keys left `???`, found without resolving interpolations (`${hydra:...}` has no value outside a run)."""
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    out = []
    for key in keys:
        if not prefix and key == "hydra":
            continue
        if OmegaConf.is_missing(node, key):
            out.append(f"{prefix}{key}")
        elif not OmegaConf.is_interpolation(node, key) and isinstance(node[key], (DictConfig, ListConfig)):
            out += missing_values(node[key], f"{prefix}{key}.")
    return out


@pytest.fixture(autouse=True)
def _clean_hydra():
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


def test_commands_are_found():
    assert len(COMMANDS) >= 20, "the docs' commands were not found: has the extraction broken?"
    assert {split_command(c)[0] for c in COMMANDS} >= {"train", "pretrain", "predict", "export", "report"}


@pytest.mark.parametrize("command", COMMANDS, ids=_ids(COMMANDS))
def test_doc_command_composes(command: Command, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    module, args = split_command(command)
    assert importlib.util.find_spec(f"senti_lit.{module}") is not None, f"{command.id}: no module senti_lit.{module}"
    if module == "build_e5":  # parsed, not run (it downloads and builds a model)
        from senti_lit.build_e5 import parser
        try:
            parser().parse_args(args)
        except SystemExit as error:
            pytest.fail(f"{command.id}: {command.text}\n  senti_lit.build_e5 rejects its arguments ({error})")
        return
    if module in ARGPARSE:
        check_report(command, args, monkeypatch, tmp_path)
        return
    assert module in HYDRA_CONFIGS, f"{command.id}: senti_lit.{module} is neither a Hydra nor a known command"
    overrides = hydra_overrides(args)
    if module == "predict":  # senti_lit.predict quotes its free-text keys itself before Hydra reads them
        from senti_lit.predict import quote_free_text
        overrides = quote_free_text(overrides)
    multirun = "-m" in args or "--multirun" in args
    jobs = expand_sweeps(overrides) if multirun else [overrides]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for job in jobs:
            where = f"{command.id}: {command.text}\n  job {job}"
            try:
                cfg = compose(HYDRA_CONFIGS[module], overrides=job,
                              return_hydra_config=any(o.lstrip("+~").startswith("hydra") for o in job))
            except Exception as error:  # noqa: BLE001 - say which doc line
                pytest.fail(f"{where}\n  does not compose: {type(error).__name__}: {error}")
            check_values(cfg, job, where)
            if command.fenced:  # a command to copy: every mandatory value (`???`, e.g. artifact=) is given
                missing = missing_values(cfg)
                assert not missing, f"{where}\n  leaves mandatory values unset: {missing}"


def check_report(command: Command, args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`senti_lit.report` parses its own argv (argparse): run its main() on the doc's arguments, with the sweep
    directory made empty-but-present and the report writing replaced."""
    from senti_lit import report

    monkeypatch.chdir(tmp_path)
    for arg in args:
        if not arg.startswith("-"):
            Path(arg).mkdir(parents=True, exist_ok=True)
    written = []
    monkeypatch.setattr(report, "job_dirs", lambda sweep: [sweep])
    monkeypatch.setattr(report, "write_report", lambda sweep, *a, **k: written.append(sweep))
    monkeypatch.setattr(sys, "argv", ["senti_lit.report", *args])
    try:
        report.main()
    except SystemExit as error:
        pytest.fail(f"{command.id}: {command.text}\n  senti_lit.report rejects its arguments ({error})")
    assert written, f"{command.id}: senti_lit.report wrote no report"


# --- the README's shape ------------------------------------------------------------------------------------------

def test_readme_is_short_and_starts_with_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines (at most 150: the rest belongs in docs/)"
    first = "\n".join(lines[:40])
    assert "make train" in first and "make test" in first


def test_readme_links_every_docs_page():
    assert DOCS, "docs/ has no pages"
    text = README.read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((docs/[^)#\s]+\.md)(?:#[^)]*)?\)", text))
    missing = [str(p.relative_to(ROOT)) for p in DOCS if str(p.relative_to(ROOT)) not in linked]
    assert not missing, f"README.md does not link {missing}"


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces -> '-', repeats numbered."""
    seen: dict[str, int] = {}
    out = set()
    fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,6} ", line):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return out


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page: Path):
    """Links to files of the repository (and headings of its markdown pages) exist."""
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = page if not file else page.parent / file
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links to missing files or headings {broken}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_nothing_refers_to_shared(page: Path):
    hits = [n for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1) if "../shared" in line]
    assert not hits, f"{page.relative_to(ROOT)} lines {hits} refer to ../shared, which users do not have"


def test_the_serve_options_table_matches_the_options_and_their_defaults():
    """docs/serving.md's options table names every `ServeOptions` field (but the artifact) with its default."""
    from dataclasses import MISSING as NO_DEFAULT
    from dataclasses import fields

    from senti_lit.serving.options import ServeOptions

    text = (Path(__file__).parents[1] / "docs" / "serving.md").read_text(encoding="utf-8")
    table = text.split("Options (`conf/serve.yaml`")[1].split("\n\n")[1]
    documented = {}
    for row in table.splitlines()[2:]:
        keys, defaults = row.split("|")[1:3]
        names = [k.strip(" `") for k in keys.split(",")]
        values = [v.strip(" `") for v in defaults.split(",")]
        documented |= dict(zip(names, values, strict=True))

    def shown(value) -> str:
        if value is None or isinstance(value, bool):
            return {None: "null", False: "false", True: "true"}[value]
        return str(int(value)) if isinstance(value, float) and value == int(value) else str(value)

    expected = {f.name: shown(f.default) for f in fields(ServeOptions) if f.default is not NO_DEFAULT
                and f.name != "artifact"}
    expected.pop("threads")  # documented with `workers`: null (torch's default) / cores per worker
    assert {k: documented.get(k) for k in expected} == expected
