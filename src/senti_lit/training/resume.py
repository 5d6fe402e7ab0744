"""Resuming an interrupted run: which directory and checkpoint, atomic checkpoint files, RNG state in checkpoints.

`resume=auto` makes re-running the same command continue where it stopped:
- `hydra.run.dir` resolves (`${resume_run_dir:...}`, in `senti_lit.core.config`) to the newest earlier run of the same overrides that has a
  `checkpoints/last.ckpt` and no `metrics.json`, so the continued run keeps one directory, one TensorBoard log;
- `train` fits from that `last.ckpt` (a sweep job re-run with `hydra.sweep.dir=<sweep>` finds its own);
- checkpoints are written to a temporary file in the same folder, synced and renamed, so a kill during a write never
  leaves a half-written `last.ckpt` (Lightning's own save stages the file in /tmp and *moves* it, which is a copy
  when /tmp is another file system);
- the RNG states (Python, numpy, torch) travel in the checkpoint, so dropout and the shuffling of the epochs
  after the resume are those of an uninterrupted run with the same seed.
"""
from __future__ import annotations

import logging
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback

from senti_lit.core.config import LAST
from senti_lit.core.files import atomic_write

log = logging.getLogger(__name__)


def resume_checkpoint(resume: str | None, output_dir: Path) -> Path | None:
    """The checkpoint to continue from: `resume=auto` -> this run's `last.ckpt` if there is one; a path -> that
    file; null -> None (a fresh start)."""
    if not resume:
        return None
    if resume == "auto":
        path = output_dir / LAST
        if not path.is_file():
            log.info("resume=auto: no %s yet, starting from scratch", path)
            return None
    else:
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"resume={resume}: no such checkpoint; give a .ckpt file or resume=auto")
    _check_complete(path)
    return path


def _check_complete(path: Path) -> None:
    """A torch checkpoint is a zip archive: a truncated or damaged one fails its CRC check here, with the file
    named, instead of deep inside Lightning's restore."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as e:
        bad = str(e)
    if bad is not None:
        raise ValueError(f"{path} is damaged ({bad}); delete it to start over, or pass resume=<another .ckpt> "
                         f"(the other checkpoints are in {path.parent})")


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary file beside the target, fsync, then rename over it: the target is always either
    the previous complete file or the new complete file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if "://" in str(path) or storage_options is not None:  # remote storage: Lightning's fsspec path
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_write(Path(path), lambda f: torch.save(checkpoint, f))


class RngState(Callback):
    """Python, numpy and torch (CPU and CUDA) RNG states saved with every checkpoint and restored when fitting
    resumes from it. Under DDP the checkpoint holds rank 0's states."""

    def state_dict(self) -> dict[str, Any]:
        # tensors and plain values only: checkpoints stay loadable with torch.load(weights_only=True)
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state = {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos,
                                                         has_gauss, gauss], "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        random.setstate(state["python"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
