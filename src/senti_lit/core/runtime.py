"""Process set-up for the commands: which warnings are not the user's business, the allocator policy, the CPU's
bf16 support."""
from __future__ import annotations

import functools
import logging
import os
import sys
import time
import warnings
from typing import Any, Callable


def quiet_known_warnings() -> None:
    """Silence only third-party warnings (and doubled log lines) that are not ours to fix and say nothing about the
    user's run."""
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
    # transformers says trust_remote_code "has no effect here" when a concrete config class gets it, although the
    # model's shipped code did run: misleading next to our own warning (inference.artifact.warn_remote_code)
    logging.getLogger("transformers.configuration_utils").addFilter(_drop_no_effect)
    # Lightning advertises a cloud logger at every Trainer start.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_drop_advert)
    # Lightning warns when an epoch has fewer batches than log_every_n_steps, but it counts that interval over the
    # whole fit, not per epoch: short epochs are still logged (every few epochs), and the progress lines show each.
    warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")
    # `import lightning` gives the `lightning` logger a console handler of its own; under Hydra's logging (a root
    # handler) every Lightning line would print twice.
    if logging.getLogger().hasHandlers():
        for handler in list(logging.getLogger("lightning").handlers):
            if type(handler) is logging.StreamHandler:
                logging.getLogger("lightning").removeHandler(handler)
    # The tokenizers library's thread pool and forked DataLoader workers do not mix.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def notice(message: str) -> None:
    """A warning the user must see whatever the logging set-up (predict and serve turn the log off): on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _drop_no_effect(record: logging.LogRecord) -> bool:
    return "has no effect here and is ignored" not in str(record.msg)


def _drop_advert(record: logging.LogRecord) -> bool:
    return "litlogger" not in str(record.msg)


def cpu_has_native_bf16() -> bool:
    """avx512_bf16 or AMX tiles: the CPUs on which oneDNN runs bf16 kernels natively (elsewhere bf16 is emulated,
    and slow)."""
    import torch

    # private torch API: absent on some builds
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()) or cpu_has_amx()


def cpu_has_amx() -> bool:
    """AMX tiles (Intel Sapphire Rapids and later): oneDNN's bf16 matmuls run on them, several times faster than fp32."""
    import torch

    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())  # private torch API, as above


def _mallopt():
    """glibc's mallopt, or None (not Linux, or another C library: musl, ...)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None


def return_freed_memory(threshold: int = 2**20) -> bool:
    """The other side of `keep_freed_memory` (`keep_freed_memory: false`): every block of `threshold` bytes or more
    is mapped on its own and unmapped when freed, so the process's peak memory is what it holds at once. glibc's
    default raises that threshold as blocks are freed (up to 32 MB): a training step's activations then stay in
    the heap, scattered, and an e5_small fit peaked ~2.4 GB above what it held (docs/performance.md). The cost:
    fresh pages are zeroed by the kernel at every step (that fit ran ~1.9x longer)."""
    mallopt = _mallopt()
    M_MMAP_THRESHOLD = -3
    return mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, threshold))


def keep_freed_memory() -> bool:
    """Keep freed memory in the process heap for reuse (glibc only; returns whether it applied).

    glibc serves big blocks with mmap and unmaps them on free, so each training step maps fresh pages for a large
    gradient and the kernel zeroes every page on first touch: for multilingual-e5-small's 250k x 384 word-embedding
    gradient that was ~1 s per step here (aten::fill_ in `python benchmarks/cpu_kernels.py`'s profile). Served from
    the heap and not trimmed, the pages stay mapped and are reused. The cost: the process keeps its peak memory
    until it exits.
    """
    mallopt = _mallopt()
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    return mallopt is not None and bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


ONEDNN_CACHE = 8  # primitives: a step's shapes recur within the step (every layer's GELU, forward and backward)


def limit_onednn_cache(capacity: int = ONEDNN_CACHE) -> None:
    """Keep few oneDNN primitives cached (its default is 1024; an ONEDNN_PRIMITIVE_CACHE_CAPACITY already in the
    environment wins). On CPU torch runs GELU through oneDNN, which caches a primitive per input shape, and
    dynamic padding gives a new shape with every batch length (and the MLM head one per count of masked tokens):
    each cached GELU pinned about the size of its input, so the 1024 entries grew the default job to 4.2 GB RSS
    (`python benchmarks/memory_bench.py`). Creating a GELU primitive costs microseconds, a step tens of
    milliseconds. oneDNN reads the variable when it creates its first primitive: call this before any tensor
    work (the commands' `main`)."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))


def idle_cores(sample_seconds: float = 0.2) -> float:
    """How many of this process's cores other work leaves idle now: the idle share of /proc/stat over a short
    sample times the cores (Linux); elsewhere the cores less the 1-minute load average. A load average lags by a
    minute, so busy loops started just before a run would not show in it; the sample does."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def times() -> tuple[int, int] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                values = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        return values[3] + values[4], sum(values[:8])  # idle + iowait, everything but guest time

    before = times()
    if before is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return max(0.0, cores - load)
    time.sleep(sample_seconds)
    after = times()
    busy_total = max(after[1] - before[1], 1)
    machine = os.cpu_count() or cores
    idle = (after[0] - before[0]) / busy_total * machine  # idle cores of the whole machine
    return min(float(cores), idle)


def choose_threads(setting: Any) -> int | None:
    """The intra-op threads for `threads=` (train, pretrain): an int as given; `auto`: one per idle core (at
    least 1). Why: torch starts one OpenMP thread per core, and when other processes keep those cores busy its
    threads wait for each other at every operation (a small fit ran 3-9x slower than with one thread); on an idle
    machine every core helps. None: leave torch's default (an OMP_NUM_THREADS in the environment also wins)."""
    if setting is None or (setting == "auto" and os.environ.get("OMP_NUM_THREADS")):
        return None
    if setting == "auto":
        return max(1, round(idle_cores()))
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"threads={setting!r}: give auto, null (torch's default) or a number of threads >= 1")
    return setting


def apply_threads(setting: Any) -> int | None:
    """`choose_threads`, applied to torch (process-wide: the commands call it, not `train()`)."""
    threads = choose_threads(setting)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
        logging.getLogger(__name__).info("threads: %d (threads=%s; %d cores)", threads, setting, os.cpu_count() or 0)
    return threads


USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)


def user_error_text(error: BaseException) -> str:
    """A known user error as one line: a file-system error names its file and what to do."""
    if isinstance(error, OSError) and error.filename is not None and not str(error).startswith(str(error.filename)):
        fixes = {PermissionError: "check the permissions of it (and of its folder), or choose another path",
                 IsADirectoryError: "give a file, not a folder", FileExistsError: "remove it or choose another path"}
        fix = next((v for k, v in fixes.items() if isinstance(error, k)), "")
        return f"{error.filename}: {(error.strerror or str(error)).lower()}{'; ' + fix if fix else ''}"
    return str(error)


def user_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """A command's task (inside `@hydra.main`): a known user error (bad data, a missing or unreadable file or model,
    a bad value) prints its message in one line and exits 1; the traceback only with HYDRA_FULL_ERROR=1 or
    hydra.verbose."""

    @functools.wraps(task)
    def run(cfg: Any) -> Any:
        try:
            return task(cfg)
        except USER_ERRORS as e:
            from hydra.core.hydra_config import HydraConfig

            verbose = HydraConfig.initialized() and HydraConfig.get().verbose
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or verbose:
                raise
            print(f"error: {user_error_text(e)}\n(HYDRA_FULL_ERROR=1 shows where in the code it came from)",
                  file=sys.stderr)
            raise SystemExit(1) from None

    return run
