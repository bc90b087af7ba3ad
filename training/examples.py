"""Training/eval examples: reading files, checking labels against the task, carving a validation split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

from subjlab.records import Example, iter_rows, read_examples


def check_labels(examples: Sequence[Example], labels: Sequence[str], source: str) -> None:
    """Raise ValueError naming `source`, the example id and the label when an example's label is
    missing or not one of `labels` (a label outside the task is an error, never a new class)."""
    known = set(labels)
    for ex in examples:
        if ex.label not in known:
            _raise_bad_label(source, ex, labels)


def _raise_bad_label(source: str, ex: Example, labels: Sequence[str]) -> None:
    if ex.label is None:
        raise ValueError(f"{source}: example {ex.id!r} has no label (the task's labels are {list(labels)})")
    raise ValueError(
        f"{source}: example {ex.id!r} has label {ex.label!r}, which is not one of the task's labels {list(labels)}"
    )


def read_labeled_file(path: str | Path, labels: Sequence[str]) -> list[Example]:
    """Read a JSONL/CSV examples file whose `label` field must hold one of `labels`.

    Malformed rows raise RecordError (file:line: field); a label outside `labels` raises ValueError
    naming the file, the line, the example id and the label.
    """
    examples = read_examples(path)
    known = set(labels)
    for position, ex in enumerate(examples):
        if ex.label not in known:
            lineno = _line_of(path, position)
            _raise_bad_label(f"{path}:{lineno}", ex, labels)
    return examples


def _line_of(path: str | Path, position: int) -> int:
    """Return the 1-based line of the `position`-th record of a file (readers keep file order)."""
    for i, (lineno, _row) in enumerate(iter_rows(path)):
        if i == position:
            return lineno
    raise IndexError(position)


def check_unique_ids(examples: Sequence[Example], source: str) -> None:
    """Raise ValueError when two examples share an id (predictions are keyed by id)."""
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise ValueError(f"{source}: duplicate example id {ex.id!r} (predictions are keyed by id)")
        seen.add(ex.id)


def split_validation(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Return (train, validation): a stratified, seeded hold-out of `fraction` of `examples`.

    fraction 0 returns (all examples, []). Raises ValueError when the data are too small to hold out
    at least one example of every label while keeping one of each for training.
    """
    from sklearn.model_selection import train_test_split

    examples = list(examples)
    if fraction <= 0:
        return examples, []
    counts = Counter(ex.label for ex in examples)
    try:
        train, val = train_test_split(
            examples, test_size=fraction, random_state=seed, stratify=[ex.label for ex in examples]
        )
    except ValueError as exc:
        raise ValueError(
            f"cannot hold out a stratified validation split of {fraction:g} from {len(examples)} training "
            f"examples (per label: {dict(sorted(counts.items()))}): {exc}. Give more training data or "
            "set the validation fraction to 0"
        ) from None
    return list(train), list(val)
