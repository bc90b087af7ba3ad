"""The output file of a run: JSON Lines of `Example` records, appended a group at a time.

`load_output` reads what an earlier (possibly killed) run left, so a re-run resumes: a last line
cut short by a crash is removed (or completed when it is whole JSON missing its newline), every
other line must be a valid record of the same task and mode. `OutputWriter.write_many` appends a
group of records (the engine's round) with one write, one flush and one fsync: a record counts as
written (the engine's counts, the progress bar, the summary) only once that fsync has returned, so
nothing acknowledged is ever lost; a crash before it leaves at most a torn last line, which
`load_output` repairs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Sequence

from subjlab.records import Example, RecordError, read_examples


@dataclass
class ExistingOutput:
    """Records found in an output file, and whether a torn last line had to be repaired."""

    records: list[Example]
    repaired: bool = False


def repair_tail(path: str | Path) -> bool:
    """Make the file end on a whole line: a torn last line (no newline, not valid JSON) is cut off,
    a whole JSON object missing only its newline gets one. Returns True when the file changed."""
    path = Path(path)
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    cut = data.rfind(b"\n") + 1
    tail = data[cut:]
    try:
        whole = isinstance(json.loads(tail.decode("utf-8")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        whole = False
    with path.open("r+b") as fh:
        if whole:
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")
        else:
            fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def load_output(path: str | Path, task: str, mode: str) -> ExistingOutput:
    """Read the records an earlier run of (`task`, `mode`) wrote to `path` (none if it does not exist).

    Raises RecordError naming the file, line and field for a malformed line, and ValueError when
    the file holds records of another task or mode (write those runs to different files).
    """
    path = Path(path)
    if not path.exists():
        return ExistingOutput([])
    if not path.is_file():
        raise ValueError(f"{path}: the output path is not a file")
    repaired = repair_tail(path)
    records = read_examples(path)
    ids: set[str] = set()
    for line, rec in enumerate(records, start=1):
        for name, want in (("task", task), ("mode", mode)):
            got = rec.extra.get(name)
            if got != want:
                raise RecordError(
                    path, line, name, f"record {rec.id!r} is from {name} {got!r}, this run is {want!r}: use another --out"
                )
        if rec.id in ids:
            raise RecordError(path, line, "id", f"duplicate id {rec.id!r}")
        ids.add(rec.id)
    return ExistingOutput(records, repaired)


class OutputWriter:
    """Append records to a JSON Lines file; each `write_many` group is flushed and fsync'd once,
    before it returns."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")

    def write_many(self, records: Sequence[Example]) -> None:
        """Append `records` durably: all lines, then one flush and one fsync (nothing for none)."""
        if not records:
            return
        self._fh.write("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def write(self, record: Example) -> None:
        """Append one record durably."""
        self.write_many([record])

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    def __enter__(self) -> "OutputWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
