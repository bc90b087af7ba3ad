"""Files of a run folder: safe names for step folders, JSON-able values, JSON written atomically
(`subjlab.atomic`: a crash never leaves half a file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from subjlab.atomic import write_json_atomic


def slug(text: str) -> str:
    """Return `text` made safe for a folder or file name."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_") or "x"


def to_jsonable(value: Any) -> Any:
    """Return `value` with Paths as strings and tuples as lists (so step keys are stable JSON);
    raise ValueError on NaN, which JSON cannot hold."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        raise ValueError("step parameters and results must not contain NaN")
    return value


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` (Paths and tuples allowed) as indented JSON with a final newline to `path`, atomically."""
    write_json_atomic(path, to_jsonable(obj))
