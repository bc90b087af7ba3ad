"""How many torch threads a study run uses: the cores not busy with other work (`auto_threads`)."""

from __future__ import annotations

import os

#: seconds over which `busy_cores` samples the machine's CPU use
SAMPLE_SECONDS = 0.5


def usable_cores() -> int:
    """Return the number of CPU cores this process may run on (its affinity mask where known)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float:
    """Return how many cores' worth of CPU time the machine used over the next `seconds` (psutil's
    system-wide CPU share times the number of cores).

    Measured now rather than read from the load average: the 1-minute load average still counts the
    `pip install` that `make demo` runs just before (and tasks waiting on disk), which used to make a run
    on an idle 2-core machine take one thread for its whole length."""
    import psutil

    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    return psutil.cpu_percent(interval=seconds) / 100.0 * (os.cpu_count() or 1)


def auto_threads(cores: int | None = None, busy: float | None = None) -> int:
    """Return how many torch threads a run should use: the cores not busy with other work, at least 1.

    `cores` defaults to `usable_cores()`, `busy` to `busy_cores()` (the cores' worth of CPU other
    processes use right now). On a quiet 2-core machine that is 2; with other jobs keeping a core or
    more busy it is 1, because OpenMP threads that wait on each other on oversubscribed cores are
    slower than one thread (docs/runner.md has the measurement).
    """
    cores = usable_cores() if cores is None else cores
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    if busy is None:
        busy = busy_cores()
    if busy < 0:
        raise ValueError(f"busy must be >= 0, got {busy}")
    return max(1, min(cores, int(cores - busy + 0.5)))
