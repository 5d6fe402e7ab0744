"""A flat command's settings without Hydra or OmegaConf (predict's one-text answer: their imports and Hydra's
composition were ~0.6 s of it). Only yaml and re: this module is imported before anything else a command needs."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import yaml


def config_dir() -> str:
    here = Path(__file__).resolve().parents[1]  # the package (senti_lit/), above core/
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"senti_lit configs not found in {here / 'conf'} or {here.parents[1] / 'conf'}")


CONFIG_DIR = config_dir()


class Settings(dict):
    """The settings as attributes too (`cfg.text`), as a DictConfig reads."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


SIMPLE_VALUE = re.compile(r"(-?(0|[1-9]\d*)(\.\d*)?([eE][-+]?\d+)?|[A-Za-z_][\w:./-]*)\Z")  # 03: a string to Hydra
NOT_STRINGS = {"inf", "nan"}  # Hydra reads these as floats


def simple_value(value: str) -> Any:
    """A value `SIMPLE_VALUE` matched, as Hydra's override grammar reads it (null and booleans in any case)."""
    lower = value.lower()
    if lower in ("null", "true", "false"):
        return None if lower == "null" else lower == "true"
    if value[:1].isalpha() or value[:1] == "_":
        return value
    return int(value) if re.fullmatch(r"-?\d+", value) else float(value)


def flat_config(app: str, argv: Sequence[str], free_text: Sequence[str] = ()) -> Settings | None:
    """The config of `app` without Hydra, for a command line of plain `key=value` settings of its own top-level
    keys (predict: ~0.5 s of a one-text answer were Hydra's import and composition); None for anything else (a
    flag, a group, a new or nested key, a repeated key, a quoted or list value), which goes through Hydra, its
    checks and messages. Values read as Hydra reads these simple ones: null, true/false, numbers, plain words; the
    `free_text` keys take the value as typed (what `predict.quote_free_text` makes Hydra do)."""
    path = Path(CONFIG_DIR) / f"{app}.yaml"
    base = yaml.safe_load(path.read_text(encoding="utf-8"))
    base.pop("defaults", None)
    if any(isinstance(v, (dict, list)) for v in base.values()):
        return None
    seen = set()
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in base or key in seen:
            return None
        seen.add(key)
        if key in free_text:
            if value[:1] in ("'", '"'):
                return None
            base[key] = value
        elif SIMPLE_VALUE.match(value) and value.lower() not in NOT_STRINGS:
            base[key] = simple_value(value)
        else:
            return None
    if any(v == "???" for v in base.values()):  # a required setting missing: Hydra says which
        return None
    return Settings(base)
