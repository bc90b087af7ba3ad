"""Small helpers shared by the runner's modules: code versions, slugs, JSON files, CPU threads."""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any


def versions(*names: str) -> dict[str, str]:
    """Return name -> installed version of each distribution ("not installed" when absent)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def embedder_id() -> str:
    """Return the fingerprint of the embedding model used for diversity (part of its step key)."""
    from analysis.embeddings import model_id

    return model_id()


def slug(text: str) -> str:
    """Return `text` made safe for a folder or file name."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_") or "x"


def to_jsonable(value: Any) -> Any:
    """Return `value` with Paths as strings and tuples as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)


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
