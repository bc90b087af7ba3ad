"""The rules that turn a task's parsed source rows into train/test files (the rules of ../shared/datasets).

- Dedup (where the task's `dedup` names the split or pool): an exact duplicate text is dropped (first
  kept); a text that occurs with two labels is dropped in every row. A pool without a source split
  always drops texts under two labels, so no text can land on both sides.
- Source with a split: train rows whose exact text is in the test split are dropped; per label a
  shuffle seeded ``'<seed>:<task>:<split>:<label>'`` then the first `max_*_per_label` rows (all rows
  when uncapped).
- Source without a split: per label, rows sharing a text form one group; the groups are shuffled with
  ``'<seed>:<task>:holdout:<label>'`` and taken into test until it holds min(500, n // 3) rows; the
  rest is train. Caps then keep the first rows of each side.
- Rows of the same text in an `alt` pool (FewRel's P403 files) go to the side their text took in the
  main pool; the others are held out by the same rule.
- File order: the per-label lists in sorted label order, shuffled with ``'<seed>:<task>:<split>:order'``.

Each seed string feeds its own `random.Random`, so a run is byte-for-byte reproducible and one task's
choices do not depend on which other tasks were drawn.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from subjlab.sources.parsers import Parsed, Row, label_counts
from subjlab.sources.registry import DEFAULT_SEED, HOLDOUT_PER_LABEL, TaskSource

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DrawSettings:
    """Seed and per-label caps (None = every row the rules keep)."""

    seed: int = DEFAULT_SEED
    max_train_per_label: int | None = None
    max_test_per_label: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_train_per_label", "max_test_per_label"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")

    def cap(self, split: str) -> int | None:
        return self.max_train_per_label if split == "train" else self.max_test_per_label


@dataclass
class Drawn:
    """The drawn files: `splits[split]` rows in file order, `alt[stem][split]` likewise, and the counts."""

    splits: dict[str, list[Row]]
    alt: dict[str, dict[str, list[Row]]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


def dedup_rows(rows: list[Row], *, duplicates: bool = True,
               conflicts: str = "drop") -> tuple[list[Row], dict[str, int]]:
    """Drop repeats of a text (first kept; if `duplicates`) and every row of a text with two labels.

    `conflicts="first"` keeps the first row of a text with two labels instead (iSarcasmEval's rule).
    """
    labels_of: dict[str, set[str]] = defaultdict(set)
    if conflicts == "drop":
        for row in rows:
            labels_of[row["text"]].add(row["label"])
    kept, seen, dup, conflict = [], set(), 0, 0
    for row in rows:
        if len(labels_of[row["text"]]) > 1:
            conflict += 1
        elif duplicates and row["text"] in seen:
            dup += 1
        else:
            seen.add(row["text"])
            kept.append(row)
    return kept, {"dropped_duplicate_rows": dup, "dropped_conflicting_label_rows": conflict}


def _by_label(rows: list[Row], labels: tuple[str, ...]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {lab: [] for lab in labels}
    for row in rows:
        if row["label"] not in out:
            raise ValueError(f"row label {row['label']!r} is not one of {labels}")
        out[row["label"]].append(row)
    return out


def _ordered(task: str, split: str, per_label: dict[str, list[Row]], labels: tuple[str, ...], seed: int,
             stem: str = "") -> list[Row]:
    rows = [row for lab in sorted(labels) for row in per_label.get(lab, [])]
    key = f"{seed}:{task}:{stem}:{split}:order" if stem else f"{seed}:{task}:{split}:order"
    random.Random(key).shuffle(rows)
    return rows


def _holdout(task: str, label: str, rows: list[Row], seed: int,
             forced: dict[str, str] | None = None) -> tuple[list[Row], list[Row]]:
    """Split one label's rows into (test, train) by text groups; `forced` text -> side goes first."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row["text"], []).append(row)
    want = min(HOLDOUT_PER_LABEL, len(rows) // 3)
    test: list[Row] = []
    train: list[Row] = []
    free: list[list[Row]] = []
    for text, members in groups.items():
        side = (forced or {}).get(text)
        if side is None:
            free.append(members)
        else:
            (test if side == "test" else train).extend(members)
    random.Random(f"{seed}:{task}:holdout:{label}").shuffle(free)
    for members in free:
        (test if len(test) < want else train).extend(members)
    return test, train


def _split_pool(task: str, rows: list[Row], labels: tuple[str, ...], seed: int,
                forced: dict[str, str] | None = None) -> dict[str, dict[str, list[Row]]]:
    sides: dict[str, dict[str, list[Row]]] = {"train": {}, "test": {}}
    for lab, members in _by_label(rows, labels).items():
        sides["test"][lab], sides["train"][lab] = _holdout(task, lab, members, seed, forced)
    return sides


def _capped(sides: dict[str, dict[str, list[Row]]], settings: DrawSettings) -> dict[str, dict[str, list[Row]]]:
    return {split: {lab: rows if settings.cap(split) is None else rows[:settings.cap(split)]
                    for lab, rows in per_label.items()} for split, per_label in sides.items()}


def _draw_kept_split(source: TaskSource, parsed: Parsed, settings: DrawSettings,
                     stats: dict[str, Any]) -> dict[str, dict[str, list[Row]]]:
    assert parsed.splits is not None
    task = source.task
    splits = dict(parsed.splits)
    for split in SPLITS:
        stats[f"{split}_raw"] = label_counts(splits[split])
        if split in source.dedup:
            splits[split], stats[f"{split}_dedup"] = dedup_rows(splits[split], conflicts=source.conflicts)
    test_texts = {r["text"] for r in splits["test"]}
    before = len(splits["train"])
    splits["train"] = [r for r in splits["train"] if r["text"] not in test_texts]
    stats["train_rows_dropped_as_in_test"] = before - len(splits["train"])
    chosen: dict[str, dict[str, list[Row]]] = {}
    for split in SPLITS:
        stats[f"{split}_pool"] = label_counts(splits[split])
        chosen[split] = {}
        for lab, members in _by_label(splits[split], parsed.labels).items():
            random.Random(f"{settings.seed}:{task}:{split}:{lab}").shuffle(members)
            cap = settings.cap(split)
            chosen[split][lab] = members if cap is None else members[:cap]
    return chosen


def draw(source: TaskSource, parsed: Parsed, settings: DrawSettings = DrawSettings()) -> Drawn:
    """Apply `source`'s dedup rule and the split, cap and order rules to its parsed rows (module docstring)."""
    task = source.task
    stats: dict[str, Any] = {}
    side_of: dict[str, str] = {}
    if parsed.splits is not None:
        chosen = _draw_kept_split(source, parsed, settings, stats)
    elif parsed.pool is not None:
        stats["raw_counts"] = label_counts(parsed.pool)
        pool, stats["dedup"] = dedup_rows(parsed.pool, duplicates="pool" in source.dedup, conflicts=source.conflicts)
        stats["pool_after_dedup"] = label_counts(pool)
        sides = _split_pool(task, pool, parsed.labels, settings.seed)
        side_of = {row["text"]: split for split in SPLITS for rows in sides[split].values() for row in rows}
        chosen = _capped(sides, settings)
    else:
        raise ValueError(f"task {task!r}: the parser returned neither splits nor a pool")
    drawn = Drawn({split: _ordered(task, split, chosen[split], parsed.labels, settings.seed) for split in SPLITS},
                  stats=stats)
    for stem, alt_rows in parsed.alt.items():
        alt_labels = tuple(dict.fromkeys(r["label"] for r in alt_rows))
        alt_pool, _ = dedup_rows(alt_rows, duplicates=False)
        alt_sides = _capped(_split_pool(task, alt_pool, alt_labels, settings.seed, forced=side_of), settings)
        drawn.alt[stem] = {split: _ordered(task, split, alt_sides[split], alt_labels, settings.seed, stem)
                           for split in SPLITS}
        stats[stem] = {"pool": label_counts(alt_pool), **{split: len(drawn.alt[stem][split]) for split in SPLITS}}
    stats["counts"] = {split: {"total": len(rows), "per_label": label_counts(rows)}
                       for split, rows in drawn.splits.items()}
    return drawn
