"""How the project writes files: atomically, JSON, with the mode a plain open() would give."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping


def umask_mode(*paths: Path) -> None:
    """Give files the mode a plain open() would (0666 less the umask): safetensors and tempfile create theirs 0600,
    which leaves the weights unreadable to the group that shares a results folder."""
    mask = os.umask(0)
    os.umask(mask)
    for path in paths:
        os.chmod(path, 0o666 & ~mask)


def atomic_write(path: Path, write: Callable[[Any], None], replace: bool = True) -> None:
    """Write through a temporary file and rename: a crashed or concurrent run never leaves half a file. With
    `replace=False` the file is linked into place instead, which fails (FileExistsError) if `path` exists by then:
    another writer's file is never replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        umask_mode(Path(tmp))
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)  # gone after a rename; after a link, or a failure, the spare name


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """JSON the project writes (artifact.json, metrics.json, data.json …), atomically: a killed process leaves the
    previous file or the new one, never a 0-byte or half file."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))


def read_json(path: Path) -> Any:
    """A JSON file the project reads back; a truncated, garbled or non-UTF-8 one is a ValueError that names it."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}); the file is damaged (an interrupted write?) or not the "
                         "project's: restore or re-create it") from None
