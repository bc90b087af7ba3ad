"""Where task data lives and how to load a task's split as `Example`s.

A data directory holds `<data_name>/train.jsonl` and `<data_name>/test.jsonl` for each task (JSON Lines
with at least `text` and the task's label field). Where a split has no `.jsonl` file, the same rows are
read from `<data_name>/<split>/` (a split saved by `datasets`' `save_to_disk`, as in a DatasetDict saved
per task, which is what `subjlab export` writes), else `<split>.parquet`, else `<split>.csv`
(`SPLIT_FORMATS`, in that order). `resolve_data_dir` finds the directory, in this order: an explicit
path (`--data DIR`), else `$SUBJLAB_DATA`, else the small slices bundled inside this package
(`subjlab/datasets/`: the demo's tasks whose licences allow redistribution, with their notices). Nothing
beside the checkout is ever looked at; full datasets come from `subjlab data fetch` or your own files.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from subjlab.records import Example, RecordError, read_examples
from subjlab.tasks import TaskSpec

SPLITS = ("train", "test")

#: The data slices that ship inside the package (see its manifest.json and each task's NOTICE.md).
BUNDLED_DATA_DIR = Path(__file__).resolve().parent / "datasets"

_HOW_TO_POINT = ("pass --data DIR or set SUBJLAB_DATA=DIR to a directory holding <task>/train.jsonl and "
                 "<task>/test.jsonl, or the same splits saved by datasets or as .parquet/.csv files "
                 "(`subjlab data fetch TASK --out DIR` downloads a task's full data)")

#: How a split may be stored beside `<split>.jsonl`, in the order looked for: `{split}` is the split name.
SPLIT_FORMATS = ("{split}.jsonl", "{split}/", "{split}.parquet", "{split}.csv")


@lru_cache(maxsize=1)
def bundled_tasks() -> tuple[str, ...]:
    """The data names bundled with subjlab, in the manifest's order."""
    manifest = json.loads((BUNDLED_DATA_DIR / "manifest.json").read_text(encoding="utf-8"))
    return tuple(t["task"] for t in manifest["tasks"])


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Return the data directory to use; raise FileNotFoundError naming what was looked for.

    Order: `data_dir` if given, `$SUBJLAB_DATA`, the data bundled with the package.
    """
    if data_dir is not None:
        path = Path(data_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"data directory {path} (--data) does not exist; {_HOW_TO_POINT}")
        return path.resolve()
    env = os.environ.get("SUBJLAB_DATA")
    if env:
        path = Path(env)
        if not path.is_dir():
            raise FileNotFoundError(f"SUBJLAB_DATA={env} is not a directory; {_HOW_TO_POINT}")
        return path.resolve()
    return BUNDLED_DATA_DIR


def data_source(data_dir: str | Path | None = None) -> str:
    """Say in words which data directory `resolve_data_dir(data_dir)` picks and why (for command output)."""
    root = resolve_data_dir(data_dir)
    if data_dir is not None:
        return f"{root} (--data)"
    if os.environ.get("SUBJLAB_DATA"):
        return f"{root} ($SUBJLAB_DATA)"
    return f"the data bundled with subjlab ({root})"


def _find_split(folder: Path, split: str) -> Path | None:
    """The first of SPLIT_FORMATS present in `folder` for `split` (a saved split must hold state.json)."""
    from subjlab.table_files import is_saved_split

    for pattern in SPLIT_FORMATS:
        candidate = folder / pattern.format(split=split).rstrip("/")
        if is_saved_split(candidate) if pattern.endswith("/") else candidate.is_file():
            return candidate
    return None


def split_path(task: TaskSpec, split: str, data_dir: str | Path | None = None) -> Path:
    """Return the path of a task's split (`train` or `test`): its `.jsonl` file, else a saved split
    folder, a `.parquet` or a `.csv` file (SPLIT_FORMATS); raise FileNotFoundError if none is there.

    The error says where it looked, which tasks the bundled data has, and how to point at other data."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = resolve_data_dir(data_dir)
    path = root / task.data_name / f"{split}.jsonl"
    found = _find_split(root / task.data_name, split)
    if found is not None:
        return found
    where = data_source(data_dir)
    if root == BUNDLED_DATA_DIR:
        have = (f"subjlab bundles data only for {', '.join(bundled_tasks())}"
                if task.data_name not in bundled_tasks() else f"the bundled data has no {split} split for it")
        raise FileNotFoundError(
            f"task {task.name!r}: no {split} data in {where}: {have}; {_HOW_TO_POINT}")
    others = ", ".join(p.format(split=split) for p in SPLIT_FORMATS[1:])
    raise FileNotFoundError(
        f"task {task.name!r}: {path} is missing (data directory {where}), and so are {others} beside it"
        f"{_saved_splits_hint(root / task.data_name, split)}; {_HOW_TO_POINT}")


def _saved_splits_hint(folder: Path, split: str) -> str:
    """What is wrong with a saved dataset in `folder` that lacks `split`: a split folder without
    state.json, a DatasetDict saved without that split (it names the splits it has), or a DatasetDict
    saved as the data directory itself instead of in its task's folder."""
    if not folder.exists() and (folder.parent / "dataset_dict.json").is_file():
        return (f" ({folder.parent} is itself a dataset saved by datasets, but a data directory holds one per task: "
                f"save it as DIR/{folder.name} and pass --data DIR)")
    if (folder / split).is_dir():
        return f" ({folder / split} is a folder but not a split saved by datasets: it has no state.json)"
    try:
        splits = json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8")).get("splits")
    except (OSError, ValueError, AttributeError):
        return ""
    return f" (the dataset saved in {folder} has splits {', '.join(map(str, splits))})" if splits else ""


def load_split(
    task: TaskSpec,
    split: str,
    data_dir: str | Path | None = None,
    limit_per_label: int | None = None,
    seed: int = 0,
) -> list[Example]:
    """Load a task's split as Examples with task labels (rows outside the task's labels are dropped).

    Ids are kept when the file has an `id` field, else `<task>:<split>:<line>`. Labels are read from
    `task.label_field` and mapped with `task.label_map`; the raw value stays in `extra["raw_label"]`
    when it differs. `limit_per_label` keeps a seeded random sample of at most that many per label,
    in file order. Raises RecordError (file:line: field) on malformed rows.
    """
    path = split_path(task, split, data_dir)
    raw = read_examples(path, id_prefix=f"{task.name}:{split}")
    out: list[Example] = []
    for ex in raw:
        value = ex.label if task.label_field == "label" else ex.extra.get(task.label_field)
        if value is None:
            raise RecordError(path, None, task.label_field, f"example {ex.id!r} has no label field")
        mapped = task.map_label(str(value))
        if mapped is None:
            continue
        extra = dict(ex.extra)
        if mapped != ex.label and ex.label is not None:
            extra["raw_label"] = ex.label
        out.append(Example(id=ex.id, text=ex.text, label=mapped, extra=extra))
    if limit_per_label is not None:
        out = sample_per_label(out, limit_per_label, seed)
    return out


def sample_per_label(examples: list[Example], n: int, seed: int = 0) -> list[Example]:
    """Keep a seeded random sample of at most `n` examples per label, preserving input order."""
    rng = random.Random(seed)
    by_label: dict[str | None, list[int]] = {}
    for i, ex in enumerate(examples):
        by_label.setdefault(ex.label, []).append(i)
    keep: set[int] = set()
    for label in sorted(by_label, key=str):
        idx = by_label[label]
        keep.update(idx if len(idx) <= n else rng.sample(idx, n))
    return [ex for i, ex in enumerate(examples) if i in keep]


@dataclass(frozen=True)
class SplitCounts:
    """Counts of one task split: total and per label (in the task's label order)."""

    task: str
    split: str
    total: int
    per_label: dict[str, int]


def count_split(task: TaskSpec, split: str, data_dir: str | Path | None = None) -> SplitCounts:
    """Count a task split's examples per label."""
    examples = load_split(task, split, data_dir)
    counts = Counter(ex.label for ex in examples)
    return SplitCounts(task.name, split, len(examples), {lab: counts.get(lab, 0) for lab in task.labels})
