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
