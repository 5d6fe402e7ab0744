"""A command's overrides checked before Hydra runs it, so that a typo is one line with a "did you mean", exit 1,
instead of Hydra's paragraph of advice (`+trainer.max_epoch=1`, which would fail later) or its list of search paths.
Also what a user may write without Hydra's `+`/`++`: any argument of `lightning.Trainer` as `trainer.<arg>=…`
(validated against the Trainer's signature) and new label aliases as `data.aliases.<label>=…` or
`data.aliases={0:negative,1:positive}`. Hydra has no suggestion mechanism of its own, hence this module."""
from __future__ import annotations

import ast
import difflib
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf

from senti_lit.core.config import CONFIG_DIR, compose_config

OPEN_DICTS = ("data.aliases",)  # dict settings a user adds keys to on the command line


@lru_cache(maxsize=1)
def trainer_arguments() -> tuple[str, ...]:
    """The parameters of `lightning.Trainer.__init__`, read from its source (importing Lightning takes seconds)."""
    spec = importlib.util.find_spec("lightning")
    if spec is None or not spec.submodule_search_locations:
        return ()
    source = Path(list(spec.submodule_search_locations)[0]) / "pytorch" / "trainer" / "trainer.py"
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef) and node.name == "Trainer":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return tuple(a.arg for a in item.args.args[1:] + item.args.kwonlyargs)
    return ()


def key_of(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def widen(overrides: Sequence[str]) -> list[str]:
    """`trainer.<Trainer argument>=…` and `data.aliases…=…` as Hydra needs them (`++`: set, or add if absent)."""
    out = []
    for arg in overrides:
        key = key_of(arg)
        if arg[:1] not in "+~" and "=" in arg and (
                key.startswith(tuple(f"{d}." for d in OPEN_DICTS)) or key in OPEN_DICTS
                or key.startswith("trainer.") and key.split(".")[1] in trainer_arguments() and key.count(".") == 1):
            arg = "++" + arg
        out.append(arg)
    return out


def flat_keys(value: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a config as plain containers (`OmegaConf.to_container(..., resolve=False)`)."""
    keys = []
    for k, v in value.items() if isinstance(value, dict) else []:
        keys.append(f"{prefix}{k}")
        keys += flat_keys(v, f"{prefix}{k}.")
    return keys


def suggestion(app: str, override: str, base: Sequence[str]) -> str | None:
    """One line for an override that does not compose: the closest key or group option."""
    key = key_of(override)
    group = Path(CONFIG_DIR) / key.replace(".", "/")
    if "=" in override and group.is_dir():  # a group choice: model=bert_lorra
        options = sorted(p.stem for p in group.glob("*.yaml"))
        wanted = override.split("=", 1)[1]
        close = difflib.get_close_matches(wanted, options, n=1, cutoff=0.5)
        hint = f"did you mean `{key}={close[0]}`? " if close else ""
        return f"{key}={wanted}: no such option; {hint}the options are {', '.join(options)}"
    try:
        keys = flat_keys(OmegaConf.to_container(compose_config(app, base), resolve=False))
    except Exception:  # noqa: BLE001 - the base itself does not compose: leave the message to Hydra
        return None
    if key in keys:
        return None
    candidates = keys + [f"trainer.{a}" for a in trainer_arguments()]
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return (f"{key}: no such setting; {hint}(`python -m senti_lit.{app} --cfg job` prints them all; `+{key}=…` "
            "adds a new key on purpose)")


def first_values(overrides: Sequence[str]) -> list[str]:
    """A multirun's overrides with each sweep (`seed=1,2,3`) cut to its first value: what one job composes."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, out = OverridesParser.create(), []
    for text in overrides:
        override = parser.parse_override(text)
        if override.is_sweep_override():
            value = next(iter(override.sweep_string_iterator()))
            prefix = "++" if override.is_force_add() else "+" if override.is_add() else ""
            text = f"{prefix}{override.key_or_group}{'@' + override.package if override.package else ''}={value}"
        out.append(text)
    return out


def check_command_line(app: str, argv: Sequence[str]) -> list[str]:
    """`argv` (without the program) as Hydra should get it; a typo exits 1 with one line. Flags other than
    -m/--multirun (--help, --cfg, -sc ...) and hydra.* overrides are left to Hydra."""
    return checked_config(app, argv)[0]


def checked_config(app: str, argv: Sequence[str]) -> tuple[list[str], Any]:
    """`check_command_line`, and the config it composed to check it when the command line is plain overrides (no
    flag, no hydra.* key, no sweep): the config the command runs with, composed once (None otherwise)."""
    args = widen(argv)
    overrides = [a for a in args if not a.startswith("-")]
    if [a for a in args if a.startswith("-")] == ["--help"]:
        print_help(app, overrides)
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in args):
        return args, None
    checked = [o for o in overrides if not key_of(o).startswith(("hydra.", "hydra/"))]
    try:
        plain_run = checked == overrides == args and first_values(checked) == checked
        checked = first_values(checked)
        cfg = compose_config(app, checked)
        return args, cfg if plain_run else None
    except Exception:  # noqa: BLE001 - find the override that does not compose, and say why in one line
        base: list[str] = []
        for override in checked:
            try:
                compose_config(app, [*base, override])
            except Exception as error:  # noqa: BLE001
                line = suggestion(app, override, base) or str(error).splitlines()[0]
                print(f"error: {line}", file=sys.stderr)
                raise SystemExit(1) from None
            base.append(override)
    return args, None


def print_help(app: str, overrides: list[str]) -> None:
    """`--help` as Hydra prints it with our template (`core.config.help_text`), then exit 0, without Hydra's own
    help: that lists every config group's options for its `$APP_CONFIG_GROUPS` whether the template shows them or
    not (~2 s of a 2.5 s `serve --help` here)."""
    from omegaconf import OmegaConf

    from senti_lit.core.config import help_text

    cfg = compose_config(app, overrides)
    print(help_text(app).replace("$CONFIG", OmegaConf.to_yaml(cfg)))
    raise SystemExit(0)
