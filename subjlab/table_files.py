"""Rows of the columnar files that `subjlab export` writes and the Hugging Face Hub serves.

Two kinds, read as `(row number, dict)` like the JSONL/CSV readers of `subjlab.records`:

- a parquet file (`*.parquet`), read with pyarrow alone (no `datasets` import, no cache);
- a split saved by `datasets`' `save_to_disk` (a folder holding `state.json`; a DatasetDict's split
  folders are such folders), read with `datasets.load_from_disk`, memory-mapped in place.

Rows are numbered from 1. `ClassLabel` columns (integers with names, the Hub's usual label type) are
read as their names (for parquet from the `datasets` features stored in the file's schema metadata;
-1, the Hub's "no label", reads as no value). A null reads as an absent field (a columnar file cannot
tell the two apart), so a row written from a record without some field reads back without it.
Problems raise `TableError` (a ValueError) with the path and, where known, the row and the field;
`subjlab.records` turns it into its RecordError. This module imports nothing of subjlab.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

#: Rows decoded per batch: enough to amortise the Arrow-to-Python conversion, little memory.
_BATCH_ROWS = 4096


class TableError(ValueError):
    """A parquet file or saved split cannot be read: `path`, `row` (1-based, or None) and `field` say where."""

    def __init__(self, path: str | Path, row: int | None, field_name: str | None, message: str):
        self.path, self.row, self.field, self.message = str(path), row, field_name, message
        where = self.path if row is None else f"{self.path}: row {row}"
        super().__init__(f"{where}:{f' field {field_name!r}:' if field_name else ''} {message}")


def is_saved_split(path: str | Path) -> bool:
    """True when `path` is a folder written by `datasets`' `Dataset.save_to_disk` (it holds state.json)."""
    path = Path(path)
    return path.is_dir() and (path / "state.json").is_file()


def is_table_file(path: str | Path) -> bool:
    """True for the inputs this module reads: a `.parquet` path or a saved split folder."""
    return Path(path).suffix.lower() == ".parquet" or is_saved_split(path)


def iter_table_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(row number, row dict)` from a parquet file or a saved split folder."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        yield from _parquet_rows(path)
    elif is_saved_split(path):
        yield from _saved_split_rows(path)
    else:
        raise TableError(path, None, None, "not a parquet file nor a folder saved by datasets' save_to_disk "
                                            "(no state.json)")


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise TableError(path, None, None, "no such file")
    try:
        reader = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise TableError(path, None, None, f"not a readable parquet file ({exc})") from None
    names = _class_names_from_metadata(reader.schema_arrow.metadata)
    row = 0
    try:
        for batch in reader.iter_batches(batch_size=_BATCH_ROWS):
            for values in batch.to_pylist():
                row += 1
                yield row, _decode(path, row, values, names)
    except pa.ArrowException as exc:
        raise TableError(path, row + 1, None, f"unreadable parquet data ({exc})") from None


def _saved_split_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    from datasets import ClassLabel, load_from_disk

    try:
        dataset = load_from_disk(str(path))
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise TableError(path, None, None, f"not a readable saved dataset ({exc})") from None
    names = {col: tuple(f.names) for col, f in dataset.features.items() if isinstance(f, ClassLabel)}
    row = 0
    for batch in dataset.with_format("arrow").iter(batch_size=_BATCH_ROWS):
        for values in batch.to_pylist():
            row += 1
            yield row, _decode(path, row, values, names)


def _class_names_from_metadata(metadata: dict[bytes, bytes] | None) -> dict[str, tuple[str, ...]]:
    """ClassLabel names per column from the `datasets` features a parquet file's metadata carries."""
    raw = (metadata or {}).get(b"huggingface")
    if not raw:
        return {}
    try:
        features = json.loads(raw.decode("utf-8")).get("info", {}).get("features", {})
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return {}
    return {col: tuple(f["names"]) for col, f in features.items()
            if isinstance(f, dict) and f.get("_type") == "ClassLabel" and isinstance(f.get("names"), list)}


def _decode(path: Path, row: int, values: dict[str, Any], names: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col, value in values.items():
        if value is None:
            continue
        if col in names and isinstance(value, int) and not isinstance(value, bool):
            if value == -1:  # the Hub's "no label"
                continue
            if not 0 <= value < len(names[col]):
                raise TableError(path, row, col, f"class index {value} is outside its names {list(names[col])}")
            value = names[col][value]
        out[col] = value
    return out
