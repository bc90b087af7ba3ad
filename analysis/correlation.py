"""Correlation of task subjectivity with the real-vs-synthetic performance gap (Spearman, Kendall).

Sign convention. `gap` = (metric of the model trained on REAL data) - (metric of the model trained on
SYNTHETIC data), so a larger gap means synthetic data falls further short. `subjlab rank` scores are
OBJECTIVITY (Bradley-Terry log-strength, higher = more objective). The paper's finding is that the gap
grows with SUBJECTIVITY, i.e. with objectivity scores the expected correlation is NEGATIVE; with
subjectivity scores (higher = more subjective) it is POSITIVE. `CorrelationResult.expected_sign`
states which sign the paper's finding predicts for the orientation given; nothing is negated silently.

P-values are scipy's: Spearman's from the t distribution, Kendall's tau-b exact for small n without
ties (scipy's `method="auto"`). With 10 tasks they are rough; report them with n.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from subjlab.records import RecordError, iter_rows

Orientation = Literal["objectivity", "subjectivity"]


@dataclass(frozen=True)
class CorrelationResult:
    """Spearman and Kendall correlation between per-task scores and gaps over the common tasks.

    `tasks`, `scores` and `gaps` are aligned (sorted by task name). `only_in_scores`/`only_in_gaps`
    list tasks present on one side only (left out of the correlation).
    """

    n: int
    spearman_rho: float
    spearman_p: float
    kendall_tau: float
    kendall_p: float
    tasks: list[str]
    scores: list[float]
    gaps: list[float]
    orientation: str = "objectivity"
    expected_sign: str = "negative"
    only_in_scores: list[str] = field(default_factory=list)
    only_in_gaps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (all fields)."""
        return asdict(self)


def _finite(name: str, values: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for task, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} of task {task!r} must be a finite number, got {value!r}")
        out[str(task)] = float(value)
    return out


def correlate(
    subjectivity: Mapping[str, float],
    gaps: Mapping[str, float],
    orientation: Orientation = "objectivity",
) -> CorrelationResult:
    """Correlate per-task scores on the subjectivity axis with per-task gaps (Spearman and Kendall).

    `subjectivity`: task -> score, in the orientation named by `orientation` ("objectivity" for
    `subjlab rank` scores, higher = more objective; "subjectivity" for higher = more subjective).
    `gaps`: task -> real-minus-synthetic metric. Uses the tasks present in both. Raises ValueError
    with fewer than 3 common tasks, non-finite values, or a constant side (correlation undefined).
    """
    from scipy.stats import kendalltau, spearmanr

    if orientation not in ("objectivity", "subjectivity"):
        raise ValueError(f"orientation must be 'objectivity' or 'subjectivity', got {orientation!r}")
    xs_all = _finite("score", subjectivity)
    ys_all = _finite("gap", gaps)
    tasks = sorted(set(xs_all) & set(ys_all))
    if len(tasks) < 3:
        raise ValueError(
            f"need at least 3 tasks with both a score and a gap, got {len(tasks)} ({', '.join(tasks) or 'none'}); "
            f"scores for {sorted(xs_all)}, gaps for {sorted(ys_all)}"
        )
    xs = [xs_all[t] for t in tasks]
    ys = [ys_all[t] for t in tasks]
    for name, vals in (("scores", xs), ("gaps", ys)):
        if len(set(vals)) == 1:
            raise ValueError(f"all {name} are equal ({vals[0]}) over tasks {', '.join(tasks)}: correlation is undefined")
    rho, rho_p = spearmanr(xs, ys)
    tau, tau_p = kendalltau(xs, ys)
    values = [float(rho), float(rho_p), float(tau), float(tau_p)]
    if not all(math.isfinite(v) for v in values):  # defensive: constant inputs are rejected above
        raise ValueError(f"correlation is undefined for these values (scipy returned {values})")
    return CorrelationResult(
        n=len(tasks),
        spearman_rho=values[0],
        spearman_p=values[1],
        kendall_tau=values[2],
        kendall_p=values[3],
        tasks=tasks,
        scores=xs,
        gaps=ys,
        orientation=orientation,
        expected_sign="negative" if orientation == "objectivity" else "positive",
        only_in_scores=sorted(set(xs_all) - set(ys_all)),
        only_in_gaps=sorted(set(ys_all) - set(xs_all)),
    )


def read_task_values(path: str | Path, value_field: str) -> dict[str, float]:
    """Read task -> number from a JSON or JSON Lines file; RecordError naming file, line/entry and field.

    Accepted shapes: a JSON list of objects with "task" and `value_field` (e.g. the output of
    `subjlab rank --format json`, where value_field="score"), a JSON object {task: number}, or JSON
    Lines of such objects. Other keys are ignored. A task listed twice is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordError(path, None, None, "no such file")
    text = path.read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and "task" not in whole:
        rows = [(None, {"task": k, value_field: v}) for k, v in whole.items()]
    elif isinstance(whole, list):
        rows = [(None, obj) for obj in whole]
    else:
        rows = list(iter_rows(path))
    out: dict[str, float] = {}
    for i, (lineno, row) in enumerate(rows, start=1):
        where = lineno

        def fail(field_name: str | None, message: str) -> RecordError:
            prefix = "" if where is not None else f"entry {i}: "
            return RecordError(path, where, field_name, prefix + message)

        if not isinstance(row, dict):
            raise fail(None, f"expected an object, got {type(row).__name__}")
        task = row.get("task")
        if not isinstance(task, str) or not task.strip():
            raise fail("task", "required, must be a non-empty string")
        value = row.get(value_field)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise fail(value_field, f"required, must be a finite number, got {value!r}")
        if task in out:
            raise fail("task", f"task {task!r} is listed twice")
        out[task] = float(value)
    if not out:
        raise RecordError(path, None, None, f"no task values ({value_field!r}) found")
    return out
