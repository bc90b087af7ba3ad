"""Where task data lives and how to load a task's split as `Example`s.

A data directory holds `<data_name>/train.jsonl` and `<data_name>/test.jsonl` for each task (JSON Lines
with at least `text` and the task's label field). `resolve_data_dir` finds it: an explicit path, else
`$SUBJLAB_DATA`, else `../shared/datasets` next to the current directory or next to this checkout.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from subjlab.records import Example, RecordError, read_examples
from subjlab.tasks import TaskSpec

SPLITS = ("train", "test")


def _candidates() -> list[Path]:
    here = Path(__file__).resolve().parent.parent  # the checkout (or site-packages for an install)
    return [Path.cwd() / ".." / "shared" / "datasets", here / ".." / "shared" / "datasets"]


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Return the data directory to use; raise FileNotFoundError saying how to set one.

    Order: `data_dir` if given, `$SUBJLAB_DATA`, `./../shared/datasets`, `<checkout>/../shared/datasets`.
    """
    if data_dir is not None:
        path = Path(data_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"data directory {path} does not exist")
        return path.resolve()
    env = os.environ.get("SUBJLAB_DATA")
    if env:
        path = Path(env)
        if not path.is_dir():
            raise FileNotFoundError(f"SUBJLAB_DATA={env} is not a directory")
        return path.resolve()
    for cand in _candidates():
        if cand.is_dir():
            return cand.resolve()
    raise FileNotFoundError(
        "no data directory found: pass --data DIR (holding <task>/train.jsonl and <task>/test.jsonl) "
        "or set SUBJLAB_DATA"
    )


def split_path(task: TaskSpec, split: str, data_dir: str | Path | None = None) -> Path:
    """Return the path of a task's split file (`train` or `test`); raise FileNotFoundError if absent."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = resolve_data_dir(data_dir) / task.data_name / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (task {task.name!r}, split {split!r})")
    return path


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
