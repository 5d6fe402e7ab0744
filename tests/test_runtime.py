"""Process settings the commands apply: torch's threads (`threads=auto|N|null`)."""
from __future__ import annotations

import os

import pytest

from senti_lit.core import runtime


@pytest.mark.parametrize(("idle", "expected"), [(0.0, 1), (0.4, 1), (1.2, 1), (1.6, 2), (2.0, 2), (7.8, 8)])
def test_auto_threads_follow_the_idle_cores(monkeypatch: pytest.MonkeyPatch, idle: float, expected: int):
    """Both cores busy with other work: one thread (OpenMP threads waiting on each other were the slowdown); an
    idle machine: one per core."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "idle_cores", lambda: idle)
    assert runtime.choose_threads("auto") == expected


def test_a_number_or_the_environment_overrides_auto(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runtime, "idle_cores", lambda: 0.0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert runtime.choose_threads(3) == 3 and runtime.choose_threads(None) is None
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert runtime.choose_threads("auto") is None  # the user's environment wins over auto
    assert runtime.choose_threads(1) == 1  # an explicit threads= wins over the environment
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(ValueError, match="threads="):
            runtime.choose_threads(bad)


def test_idle_cores_is_measured_not_guessed():
    idle = runtime.idle_cores(0.05)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 0.0 <= idle <= cores


def test_apply_threads_sets_torch(monkeypatch: pytest.MonkeyPatch):
    import torch

    before = torch.get_num_threads()
    try:
        assert runtime.apply_threads(1) == 1 and torch.get_num_threads() == 1
        assert runtime.apply_threads(None) is None and torch.get_num_threads() == 1  # null leaves it alone
    finally:
        torch.set_num_threads(before)


def test_returned_memory_leaves_the_process(tmp_path):
    """keep_freed_memory=false: a freed 8 MB block leaves the process at once, also after glibc has seen blocks of
    that size freed (which, left to itself, raises its mmap threshold and keeps such blocks in the heap)."""
    import subprocess
    import sys
    import textwrap

    probe = textwrap.dedent("""
        import ctypes, sys
        from senti_lit.core.runtime import return_freed_memory
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * 4096
        if sys.argv[1] == "return":
            assert return_freed_memory()
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        size = 8 << 20
        libc.free(libc.malloc(size))                  # glibc's default now serves 8 MB blocks from the heap
        blocks = [libc.malloc(size) for _ in range(24)]
        for b in blocks:
            ctypes.memset(b, 1, size)
        before = rss()
        for b in blocks[:-1]:                         # the last stays: the heap's top cannot shrink past it
            libc.free(b)
        print((before - rss()) >> 20)
    """)
    freed = {mode: int(subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True,
                                      check=True).stdout) for mode in ("default", "return")}
    assert freed["return"] >= 150 > freed["default"], freed  # 23 x 8 MB = 184 MB back to the OS, or kept
