"""Placing a new task on an existing objectivity scale.

Given judgments among existing tasks (the scale) plus some that involve a NEW task, `place_task`
fits the Bradley–Terry ranking on all of them jointly (the new task's judgments barely move a
well-measured scale, and a joint fit uses every judgment once), then reports where the new task
falls: its score and 95% bootstrap interval, its rank and the range of ranks it takes over the
bootstrap resamples, and the existing tasks just above (more objective) and below it. It also
suggests which existing tasks to compare it with next: the pairs (new, existing) with the largest
expected drop in misordered pairs (`analysis.pair_selection.ActivePairSelector`), which are the
tasks close to it in score whose order relative to it is still uncertain.

With no judgment yet involving the new task, it has no score; the suggestions then are the existing
tasks whose comparison best locates a task about which nothing is known (near the middle of the
scale first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from analysis.pair_selection import ActivePairSelector, SuggestedPair
from analysis.ranking import DEFAULT_ALPHA, BradleyTerryRanker, check_judgments
from subjlab.records import Judgment


@dataclass(frozen=True)
class Placement:
    """Where a new task falls on the scale.

    `score`, `ci_low`, `ci_high`: its objectivity score and interval (None without judgments);
    `rank` among all tasks (1 = most objective) and `rank_low`/`rank_high` over the bootstrap;
    `n`: judgments involving it; `above`/`below`: the existing tasks just more / less objective
    (None at an end of the scale); `suggestions`: pairs to show next, each involving the new task.
    """

    task: str
    score: float | None
    ci_low: float | None
    ci_high: float | None
    rank: int | None
    rank_low: int | None
    rank_high: int | None
    n: int
    above: str | None
    below: str | None
    n_tasks: int
    suggestions: list[SuggestedPair] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Return the placement as a JSON-ready dict."""
        return {
            "task": self.task,
            "score": self.score,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "rank": self.rank,
            "rank_low": self.rank_low,
            "rank_high": self.rank_high,
            "n": self.n,
            "above": self.above,
            "below": self.below,
            "n_tasks": self.n_tasks,
            "suggestions": [s.to_dict() for s in self.suggestions],
        }


def place_task(
    judgments: Sequence[Judgment],
    new_task: str,
    k: int = 3,
    alpha: float = DEFAULT_ALPHA,
    n_bootstrap: int = 1000,
    seed: int = 0,
    ranker: BradleyTerryRanker | None = None,
) -> Placement:
    """Place `new_task` on the scale formed by `judgments`; suggest `k` existing tasks to compare it with.

    `ranker`: an already fitted BradleyTerryRanker on these same judgments (saves refitting).
    Raises ValueError when there are fewer than 2 existing tasks or bad judgments.
    """
    tasks = check_judgments(judgments) if judgments else []
    existing = [t for t in tasks if t != new_task]
    if len(existing) < 2:
        raise ValueError(f"need judgments among at least 2 existing tasks to place {new_task!r}, found {len(existing)}")
    k = min(k, len(existing))
    suggestions = ActivePairSelector(alpha=alpha, explore=0.0).suggest(judgments, existing, k, seed, involving=new_task)
    if new_task not in tasks:
        return Placement(new_task, None, None, None, None, None, None, 0, None, None, len(existing) + 1, suggestions)
    if ranker is None:
        ranker = BradleyTerryRanker(alpha=alpha, n_bootstrap=n_bootstrap, seed=seed).fit(judgments)
    rows = ranker.ranking()
    row = next(r for r in rows if r.task == new_task)
    above = rows[row.rank - 2].task if row.rank > 1 else None
    below = rows[row.rank].task if row.rank < len(rows) else None
    rank_low = rank_high = None
    if len(ranker.bootstrap_):
        col = ranker.tasks_.index(new_task)
        ranks = 1 + (ranker.bootstrap_ > ranker.bootstrap_[:, [col]]).sum(axis=1)
        rank_low, rank_high = (int(v) for v in np.percentile(ranks, [2.5, 97.5], method="nearest"))
    return Placement(
        task=new_task,
        score=row.score,
        ci_low=row.ci_low,
        ci_high=row.ci_high,
        rank=row.rank,
        rank_low=rank_low,
        rank_high=rank_high,
        n=row.n,
        above=above,
        below=below,
        n_tasks=len(rows),
        suggestions=suggestions,
    )
