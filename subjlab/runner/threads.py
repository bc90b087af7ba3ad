"""How many torch threads a study run uses: the cores not busy with other work (`auto_threads`)."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Return the number of CPU cores this process may run on (its affinity mask where known)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def auto_threads(cores: int | None = None, load: float | None = None) -> int:
    """Return how many torch threads a run should use: the cores not busy with other work, at least 1.

    `cores` defaults to `usable_cores()`, `load` to the 1-minute load average (`os.getloadavg`).
    On a quiet 2-core machine that is 2; with other jobs keeping a core or more busy it is 1, because
    OpenMP threads that wait on each other on oversubscribed cores are slower than one thread
    (docs/runner.md has the measurement).
    """
    cores = usable_cores() if cores is None else cores
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    if load is None:
        load = os.getloadavg()[0]
    if load < 0:
        raise ValueError(f"load must be >= 0, got {load}")
    return max(1, min(cores, int(cores - load + 0.5)))
