"""Files of a run folder: safe names for step folders, JSON-able values, atomic writes.

Every JSON and text file the runner writes (done.json, study.json, results.json, the reports) is
written whole to a temporary file beside its target and renamed over it, so a crash never leaves a
half-written file; the file gets the permissions the umask gives (reports are meant to be shared).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping


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


def write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically: a temporary file beside it, flushed, renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any, newline: bool = True) -> None:
    """Write `obj` as indented JSON to `path` atomically (a final newline unless `newline` is False)."""
    text = json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)
    write_text(path, text + ("\n" if newline else ""))
