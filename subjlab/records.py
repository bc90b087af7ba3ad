"""Records that cross module boundaries, and their JSON Lines / CSV readers and writers.

Shapes (DESIGN.md):
- Example:    {"id", "text", "label", ...}            (real or generated training/test data)
- Judgment:   {"study", "worker", "left", "right", "winner", "created_at"}  (winner = MORE OBJECTIVE task)
- Label:      {"item", "worker", "label", "created_at"} (one crowd label of one instance)
- Prediction: {"id", "label", "prediction", "probs"}   (a classifier's output on one instance)
- Agreement:  {"item", "agreement"}                     (per-instance annotation agreement in [0, 1])

Fields beyond the named ones are kept in `extra` and written back out unchanged.

Readers read the whole file before returning: a malformed line raises `RecordError` naming the file,
the line and the field, and nothing half-read is returned. CSV files (by extension `.csv`) are read
with a header row; all CSV values are strings. Parquet files (`.parquet`) and splits saved by
`datasets`' `save_to_disk` (folders) are read through `subjlab.table_files`, their errors naming the row.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, TypeVar

from subjlab.atomic import atomic_open


class RecordError(ValueError):
    """A record file is malformed. `path`, `line` and `field` say where (line is 1-based; for parquet
    files and saved datasets it is the row, and the message says "row N")."""

    def __init__(self, path: str | Path, line: int | None, field_name: str | None, message: str, unit: str = "line"):
        self.path = str(path)
        self.line = line
        self.field = field_name
        where = self.path if line is None else (f"{self.path}:{line}" if unit == "line" else f"{self.path}: {unit} {line}")
        what = f" field '{field_name}':" if field_name else ""
        super().__init__(f"{where}:{what} {message}")


def now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string with a 'Z' suffix."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Record:
    """Base: typed named fields plus `extra` for everything else."""

    REQUIRED: ClassVar[tuple[str, ...]] = ()
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """Return the record as one flat JSON-ready dict (named fields first, then extra)."""
        out = {k: v for k, v in asdict(self).items() if k != "extra"}
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "_Record":
        """Build a record from a flat dict; raises KeyError/TypeError/ValueError naming the field."""
        names = [f.name for f in fields(cls) if f.name != "extra"]
        for name in cls.REQUIRED:
            if name not in data or data[name] is None:
                raise KeyError(name)
        kwargs = {n: data[n] for n in names if n in data}
        extra = {k: v for k, v in data.items() if k not in names}
        rec = cls(**kwargs, extra=extra)
        rec._check()
        return rec

    def _check(self) -> None:
        """Validate field types; raise ValueError('field: reason')."""


def _need_str(name: str, value: Any, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name}: must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValueError(f"{name}: must not be empty")


@dataclass
class Example(_Record):
    """One labeled (or unlabeled: label None) text."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("id", "text")
    id: str
    text: str
    label: str | None = None

    def _check(self) -> None:
        if isinstance(self.id, int) and not isinstance(self.id, bool):
            self.id = str(self.id)
        _need_str("id", self.id)
        _need_str("text", self.text)
        if self.label is not None:
            _need_str("label", self.label)


@dataclass
class Judgment(_Record):
    """One pairwise judgment: `winner` is the task judged MORE OBJECTIVE of `left` and `right`."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("left", "right", "winner")
    left: str
    right: str
    winner: str
    study: str = ""
    worker: str = ""
    created_at: str = ""

    def _check(self) -> None:
        for name in ("left", "right", "winner"):
            _need_str(name, getattr(self, name))
        for name in ("study", "worker", "created_at"):
            _need_str(name, getattr(self, name), allow_empty=True)
        if self.left == self.right:
            raise ValueError("right: a task cannot be compared with itself")
        if self.winner not in (self.left, self.right):
            raise ValueError(f"winner: {self.winner!r} is neither left ({self.left!r}) nor right ({self.right!r})")

    @property
    def loser(self) -> str:
        """The task judged less objective."""
        return self.right if self.winner == self.left else self.left


@dataclass
class Label(_Record):
    """One crowd worker's label for one item."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("item", "worker", "label")
    item: str
    worker: str
    label: str
    created_at: str = ""

    def _check(self) -> None:
        for name in ("item", "worker"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, str(value))
        for name in ("item", "worker", "label"):
            _need_str(name, getattr(self, name))


@dataclass
class Prediction(_Record):
    """A classifier's prediction for one instance; `probs` maps label -> probability (optional)."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("id", "label", "prediction")
    id: str
    label: str
    prediction: str
    probs: dict[str, float] | None = None

    def _check(self) -> None:
        if isinstance(self.id, int) and not isinstance(self.id, bool):
            self.id = str(self.id)
        for name in ("id", "label", "prediction"):
            _need_str(name, getattr(self, name))
        if self.probs is not None and not isinstance(self.probs, dict):
            raise ValueError("probs: must be an object of label -> probability")


@dataclass
class Agreement(_Record):
    """Per-instance annotation agreement a_i in [0, 1]."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("item", "agreement")
    item: str
    agreement: float

    def _check(self) -> None:
        if isinstance(self.item, int) and not isinstance(self.item, bool):
            self.item = str(self.item)
        _need_str("item", self.item)
        value = self.agreement
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"agreement: not a number: {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ValueError(f"agreement: must be a number in [0, 1], got {self.agreement!r}")
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"agreement: must be in [0, 1], got {value}")
        self.agreement = float(value)


R = TypeVar("R", bound=_Record)


def iter_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, row dict) from a JSONL or CSV file; raise RecordError on a malformed line.

    Blank lines in JSONL are skipped. CSV line numbers count the header as line 1. Parquet files and
    saved `datasets` splits yield (row number, row dict) (see `subjlab.table_files`).
    """
    path = Path(path)
    if _row_unit(path) == "row":
        yield from _table_rows(path)
        return
    if not path.is_file():
        raise RecordError(path, None, None, "no such file")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                raise RecordError(path, 1, None, "CSV file has no header row")
            for row in reader:
                if None in row:
                    raise RecordError(path, reader.line_num, None, "more values than header columns")
                yield reader.line_num, {k: v for k, v in row.items()}
        return
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordError(path, lineno, None, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise RecordError(path, lineno, None, f"expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def _row_unit(path: Path) -> str:
    """"row" for the columnar inputs of `subjlab.table_files`, "line" for JSONL/CSV."""
    from subjlab.table_files import is_table_file

    return "row" if is_table_file(path) else "line"


def _table_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    from subjlab.table_files import TableError, iter_table_rows

    try:
        yield from iter_table_rows(path)
    except TableError as exc:
        raise RecordError(exc.path, exc.row, exc.field, exc.message, unit="row") from None


def read_records(path: str | Path, cls: type[R], defaults: Callable[[int, dict[str, Any]], None] | None = None) -> list[R]:
    """Read every record of type `cls` from `path` (JSONL or CSV); all or nothing.

    `defaults(lineno, row)` may fill missing fields in place before validation (e.g. an id).
    Raises RecordError(file, line, field) on the first bad line.
    """
    out: list[R] = []
    unit = _row_unit(Path(path))
    for lineno, row in iter_rows(path):
        if defaults is not None:
            defaults(lineno, row)
        try:
            out.append(cls.from_dict(row))  # type: ignore[arg-type]
        except KeyError as exc:
            raise RecordError(path, lineno, str(exc.args[0]), "required field is missing", unit) from None
        except (TypeError, ValueError) as exc:
            msg = str(exc)
            name, _, reason = msg.partition(": ")
            if reason and name.isidentifier():
                raise RecordError(path, lineno, name, reason, unit) from None
            raise RecordError(path, lineno, None, msg, unit) from None
    return out


def read_examples(path: str | Path, id_prefix: str | None = None) -> list[Example]:
    """Read examples; rows without an `id` get `<id_prefix or file stem>:<line>`."""
    prefix = id_prefix if id_prefix is not None else Path(path).stem

    def fill(lineno: int, row: dict[str, Any]) -> None:
        if "id" not in row or row["id"] in (None, ""):
            row["id"] = f"{prefix}:{lineno}"

    return read_records(path, Example, fill)


def read_judgments(path: str | Path) -> list[Judgment]:
    """Read pairwise judgments (JSONL or CSV)."""
    return read_records(path, Judgment)


def read_labels(path: str | Path) -> list[Label]:
    """Read crowd labels (JSONL or CSV)."""
    return read_records(path, Label)


def read_predictions(path: str | Path) -> list[Prediction]:
    """Read classifier predictions (JSONL or CSV)."""
    return read_records(path, Prediction)


def read_agreements(path: str | Path) -> list[Agreement]:
    """Read per-instance agreement values (JSONL or CSV)."""
    return read_records(path, Agreement)


def _to_row(record: _Record | dict[str, Any]) -> dict[str, Any]:
    return record.to_dict() if isinstance(record, _Record) else dict(record)


def write_records(path: str | Path, records: Iterable[_Record | dict[str, Any]]) -> int:
    """Write records to `path` (JSONL, or CSV by extension) atomically; return the count written.

    The file is written to a temporary sibling and renamed, so a crash never leaves half a file.
    """
    path = Path(path)
    rows = [_to_row(r) for r in records]
    with atomic_open(path, "w", newline="") as fh:
        if path.suffix.lower() == ".csv":
            columns: list[str] = []
            for row in rows:
                columns.extend(k for k in row if k not in columns)
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_value(v) for k, v in row.items()})
        else:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


def _csv_value(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value


def append_record(fh, record: _Record | dict[str, Any]) -> None:
    """Append one record as a JSON line to an open text file and flush it to disk (crash-safe append)."""
    fh.write(json.dumps(_to_row(record), ensure_ascii=False) + "\n")
    fh.flush()
    os.fsync(fh.fileno())
