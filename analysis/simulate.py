"""Simulated crowds for pairwise objectivity judgments, with known latent scores.

Used by the ranking tests and by `bench/active_selection.py`, so both judge estimators and pair
selectors against the same ground truth.

The model of a crowd: each task has a latent objectivity score s_t (Bradley–Terry log-strength).
A pool of workers answers "which of these two tasks is more objective?". A share of the workers are
*spammers* who pick a side at random; the others are *honest* and answer by Bradley–Terry with their
own discrimination d_w (drawn once per worker): P(left wins) = sigmoid(d_w * (s_left - s_right) + b).
b is a position bias (0 by default): a logit added in favour of whichever task is shown on the left,
for spammers too (a spammer then clicks left with probability sigmoid(b)). Each judgment is given by
a worker drawn uniformly from the pool.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.stats import kendalltau

from subjlab.records import Judgment


def task_names(n: int) -> list[str]:
    """Return `n` task names "t00", "t01", ... (zero-padded so they sort in order)."""
    width = max(2, len(str(n - 1)))
    return [f"t{i:0{width}d}" for i in range(n)]


def latent_scores(n: int, seed: int, sd: float = 1.0) -> dict[str, float]:
    """Draw `n` latent objectivity scores from N(0, sd²), centred to mean 0; return task -> score."""
    if n < 2:
        raise ValueError(f"need at least 2 tasks, got {n}")
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, sd, size=n)
    values -= values.mean()
    return dict(zip(task_names(n), (float(v) for v in values)))


@dataclass
class SimulatedCrowd:
    """A pool of simulated workers judging task pairs against known latent scores.

    `scores`: task -> latent log-strength of objectivity. `n_workers` workers, a share
    `spammer_share` of them answering at random; honest workers' discriminations are drawn from
    U(`discrimination` ± 50%); `position_bias` is the logit every worker adds in favour of the left
    task (0.3: a coin-flip pair goes left 57% of the time). `seed` fixes the workers and every answer.
    """

    scores: dict[str, float]
    n_workers: int = 30
    spammer_share: float = 0.2
    discrimination: float = 1.0
    position_bias: float = 0.0
    seed: int = 0
    study: str = "sim"
    _rng: np.random.Generator = field(init=False, repr=False)
    _disc: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.spammer_share <= 1.0:
            raise ValueError(f"spammer_share must be in [0, 1], got {self.spammer_share}")
        if self.n_workers < 1:
            raise ValueError(f"n_workers must be >= 1, got {self.n_workers}")
        self._rng = np.random.default_rng(self.seed)
        disc = self._rng.uniform(0.5 * self.discrimination, 1.5 * self.discrimination, size=self.n_workers)
        n_spam = int(round(self.spammer_share * self.n_workers))
        disc[self._rng.permutation(self.n_workers)[:n_spam]] = 0.0  # d = 0: a coin flip
        self._disc = disc

    @property
    def spammers(self) -> list[str]:
        """The ids of the workers who answer at random."""
        return [self._worker_id(i) for i in np.flatnonzero(self._disc == 0.0)]

    def _worker_id(self, i: int) -> str:
        return f"w{i:03d}"

    def judge(self, left: str, right: str) -> Judgment:
        """Return one judgment of the pair (left, right) by a randomly drawn worker."""
        return self.judge_pairs([(left, right)])[0]

    def judge_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[Judgment]:
        """Return one judgment per pair, in order, each by a randomly drawn worker."""
        out: list[Judgment] = []
        for left, right in pairs:
            if left not in self.scores or right not in self.scores:
                raise ValueError(f"unknown task in pair ({left!r}, {right!r})")
            if left == right:
                raise ValueError(f"a task cannot be compared with itself: {left!r}")
            w = int(self._rng.integers(self.n_workers))
            logit = self._disc[w] * (self.scores[left] - self.scores[right]) + self.position_bias
            p_left = 1.0 / (1.0 + np.exp(-logit))
            winner = left if self._rng.random() < p_left else right
            out.append(Judgment(left=left, right=right, winner=winner, study=self.study, worker=self._worker_id(w)))
        return out


def near_neighbour_pairs(tasks_in_order: Sequence[str], reach: int, repeats: int, seed: int) -> list[tuple[str, str]]:
    """A sparse design: each task meets only the tasks within `reach` places of it in the given order.

    Every such pair is listed `repeats` times, with left/right sides alternated, then shuffled.
    """
    rng = np.random.default_rng(seed)
    pairs = []
    for i, a in enumerate(tasks_in_order):
        for b in tasks_in_order[i + 1 : i + 1 + reach]:
            for r in range(repeats):
                pairs.append((a, b) if r % 2 == 0 else (b, a))
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order]


def random_pairs(tasks: Sequence[str], n: int, seed: int) -> list[tuple[str, str]]:
    """`n` pairs drawn uniformly at random (with replacement) among all distinct ordered pairs."""
    if len(tasks) < 2:
        raise ValueError("need at least 2 tasks")
    rng = np.random.default_rng(seed)
    all_pairs = list(itertools.permutations(tasks, 2))
    return [all_pairs[i] for i in rng.integers(len(all_pairs), size=n)]


def kendall_tau(truth: dict[str, float], estimate: dict[str, float]) -> float:
    """Kendall's τ-b between the true and estimated scores over the tasks of `truth`.

    Estimates are rounded to 9 decimals first, so that scores tied in exact arithmetic (e.g. two
    chain neighbours with a 10–10 split) count as ties rather than being ordered by rounding noise.
    """
    tasks = sorted(truth)
    missing = [t for t in tasks if t not in estimate]
    if missing:
        raise ValueError(f"estimate lacks tasks: {missing}")
    est = np.round([estimate[t] for t in tasks], 9)
    tau = kendalltau([truth[t] for t in tasks], est).statistic
    return float(tau)
