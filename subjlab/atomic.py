"""One way to write a file so that a crash never leaves half of it: `atomic_open`.

The content goes to a temporary sibling in the same folder (so the rename cannot cross file
systems), is flushed and fsync'd, gets the usual permissions (0666 less the umask, where `mkstemp`
would leave 0600; pass `permissions=0o600` for secrets), and is renamed over the target. On any
error the temporary file is removed and the target is untouched. Parent folders are created.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = ["atomic_open", "write_json_atomic", "write_text_atomic"]


def _usual_permissions() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_open(
    path: str | Path,
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    newline: str | None = None,
    permissions: int | None = None,
    suffix: str = ".tmp",
) -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing (`mode` "w" or "wb"); rename it over `path` on
    a clean exit, after flush and fsync. `suffix` names the temporary file (".part" for downloads)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        binary = mode == "wb"
        with os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None if binary else newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _usual_permissions() if permissions is None else permissions)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str, *, permissions: int | None = None) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_open(path, "w", permissions=permissions) as fh:
        fh.write(text)


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 2) -> None:
    """Write `obj` as JSON (no NaN allowed, non-ASCII kept, a final newline) to `path` atomically."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)
    write_text_atomic(path, text + "\n")
