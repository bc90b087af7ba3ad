"""Task subjectivity ranking: Bradley–Terry scores of objectivity from pairwise judgments.

A judgment says which of two tasks is MORE OBJECTIVE (its `winner`). Under Bradley–Terry,
P(i judged more objective than j) = sigmoid(s_i - s_j); `s` is the log-strength of objectivity
(higher = more objective, lower = more subjective). Scores are identified up to a shift, so they are
centred to mean 0 (per connected component of the comparison graph).

Fitting: `choix.ilsr_pairwise_dense` (iterative Luce spectral ranking, the exact maximum-likelihood
estimate) on the win-count matrix, after regularisation.

Regularisation: virtual ties on the compared pairs ("edge smoothing"). Every pair of tasks that was
compared at least once gets `alpha` virtual wins on each side (default alpha = 0.5, the
Haldane–Anscombe correction for log-odds). A task that always wins (or always loses) then keeps a
finite score: a pair seen n times with one side always winning gets a gap of about
log((n + alpha) / alpha) instead of infinity. The prior acts only along observed edges, so it pulls
each compared pair towards a tie and never pulls tasks that never met towards each other.

Why not choix's own `alpha` or a Gaussian prior (measured with `analysis.simulate`: latent scores
N(0, 1), 30 workers of whom 20% answer at random; mean Kendall τ to the latent order over 20 seeds):

====================================================  =========  ===========  ==============  ==========
design                                                ML         ILSR α=0.01  MAP α=0.01 (*)  edge α=0.5
====================================================  =========  ===========  ==============  ==========
10 tasks, chain (each meets only its neighbour), 20×  0.664      0.582        0.587           0.664
50 tasks, near neighbours (reach 2), 4×               0.459      0.071        0.307           0.459
10 tasks, 200 random judgments                        0.724      0.724        0.724           0.724
50 tasks, 500 random judgments                        0.599      0.605        0.601           0.607
====================================================  =========  ===========  ==============  ==========

(ML: plain maximum likelihood, `choix.ilsr_pairwise`, which is infinite in 1 of 20 runs of the
sparse 50-task design and 2 of 20 of the 50-task random one; its τ is over the runs where it
exists. (*) `choix.opt_pairwise`, a Gaussian prior on every score; 0.1 virtual wins and losses of
every task against a reference task did the same: 0.587, 0.247, 0.724, 0.601.)
choix's ILSR `alpha` adds the same transition rate between *all* pairs of the Markov chain whatever
the scale of the scores, which on a sparse design drowns the real comparisons (τ 0.46 → 0.07). Any
prior that shrinks every score towards a common centre can flip the order of near-tied neighbours on
a chain (0.66 → 0.59). Edge smoothing ranks as well as maximum likelihood on every design above (it
cannot flip the sign of a chain gap: each gap is log((wins + alpha) / (losses + alpha))) and stays
finite where maximum likelihood does not. `tests/analysis/test_ranking.py` re-measures the sparse
50-task design against ILSR's alpha, the chain against a Gaussian prior, and a random design.

A disconnected comparison graph (some tasks never compared, directly or through others, with the
rest) has no common scale: each component is fitted and centred on its own, `components_` lists
them, and a `RuntimeWarning` names them.

Intervals: a percentile bootstrap over judgments (resample the judgments with replacement, refit; the
virtual ties stay on the original design's pairs so the graph of a resample is the graph of the data).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import choix
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from subjlab.records import Judgment

DEFAULT_ALPHA = 0.5


@dataclass(frozen=True)
class RankedTask:
    """One row of a ranking: the task, its objectivity score, the 95% interval, its rank (1 = most
    objective) and how many judgments involved it."""

    task: str
    score: float
    ci_low: float | None
    ci_high: float | None
    rank: int
    n: int

    def to_dict(self) -> dict:
        """Return the row as the JSON-ready dict of the `rank --format json` interface."""
        return {"task": self.task, "score": self.score, "ci_low": self.ci_low, "ci_high": self.ci_high, "rank": self.rank, "n": self.n}


def check_judgments(judgments: Sequence[Judgment]) -> list[str]:
    """Validate judgments and return the sorted list of tasks they mention.

    Raises ValueError naming the judgment (0-based position) when a winner is not one of the pair or
    a task is compared with itself, and when there are fewer than 2 tasks.
    """
    tasks: set[str] = set()
    for k, j in enumerate(judgments):
        if j.left == j.right:
            raise ValueError(f"judgment {k}: task {j.left!r} is compared with itself")
        if j.winner not in (j.left, j.right):
            raise ValueError(f"judgment {k}: winner {j.winner!r} is neither left ({j.left!r}) nor right ({j.right!r})")
        tasks.update((j.left, j.right))
    if len(tasks) < 2:
        raise ValueError(f"need judgments over at least 2 tasks, got {len(tasks)} (from {len(judgments)} judgments)")
    return sorted(tasks)


def judgment_indices(judgments: Sequence[Judgment], tasks: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return (winner index, loser index) arrays, indices into `tasks`."""
    pos = {t: i for i, t in enumerate(tasks)}
    try:
        win = np.fromiter((pos[j.winner] for j in judgments), dtype=np.int64, count=len(judgments))
        lose = np.fromiter((pos[j.right if j.winner == j.left else j.left] for j in judgments), dtype=np.int64, count=len(judgments))
    except KeyError as exc:
        raise ValueError(f"judgment mentions task {exc.args[0]!r} which is not among the tasks") from None
    return win, lose


def win_matrix(winners: np.ndarray, losers: np.ndarray, n_tasks: int) -> np.ndarray:
    """Return the n×n matrix W with W[i, j] = number of times task i beat task j."""
    flat = np.bincount(winners * n_tasks + losers, minlength=n_tasks * n_tasks)
    return flat.reshape(n_tasks, n_tasks).astype(float)


def graph_components(wins: np.ndarray) -> list[np.ndarray]:
    """Return the connected components of the comparison graph (index arrays), largest first."""
    adjacency = csr_matrix((wins + wins.T) > 0)
    n_comp, labels = connected_components(adjacency, directed=False)
    comps = [np.flatnonzero(labels == c) for c in range(n_comp)]
    return sorted(comps, key=lambda c: (-len(c), int(c[0])))


def fit_scores(
    wins: np.ndarray,
    alpha: float = DEFAULT_ALPHA,
    design: np.ndarray | None = None,
    components: list[np.ndarray] | None = None,
    initial: np.ndarray | None = None,
) -> np.ndarray:
    """Fit edge-smoothed Bradley–Terry scores from a win matrix; return scores centred per component.

    `wins[i, j]`: times i beat j. `alpha` virtual wins go to each side of every pair compared in
    `design` (a boolean n×n mask of compared pairs; default: the pairs compared in `wins`).
    `components` (from `graph_components` of the design) are fitted separately. `initial` warm-starts
    the solver. Raises ValueError if alpha <= 0.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (virtual ties per compared pair), got {alpha}")
    if design is None:
        design = (wins + wins.T) > 0
    if components is None:
        components = graph_components(design.astype(float))
    smoothed = wins + alpha * design
    scores = np.zeros(wins.shape[0])
    for comp in components:
        if len(comp) < 2:
            continue
        sub = smoothed[np.ix_(comp, comp)]
        init = None if initial is None else initial[comp] - initial[comp].mean()
        try:
            params = choix.ilsr_pairwise_dense(sub, initial_params=init, max_iter=1000)
        except RuntimeError as exc:  # choix: did not converge
            raise ValueError(f"Bradley–Terry fit did not converge: {exc}") from None
        scores[comp] = params - params.mean()
    if not np.all(np.isfinite(scores)):
        raise ValueError("Bradley–Terry fit produced non-finite scores; increase alpha")
    return scores


def laplace_covariance(scores: np.ndarray, wins: np.ndarray, alpha: float = DEFAULT_ALPHA, prior_sd: float = 2.0) -> np.ndarray:
    """Covariance of a Gaussian (Laplace) approximation to the posterior over scores.

    The precision is the Fisher information of the smoothed Bradley–Terry likelihood at `scores`,
    sum over pairs of n_ij p_ij (1 - p_ij) (e_i - e_j)(e_i - e_j)ᵀ, plus an isotropic Gaussian prior
    of standard deviation `prior_sd` (which fixes the shift and gives a never-compared task a finite
    variance). Returns the n×n covariance matrix.
    """
    if not prior_sd > 0:
        raise ValueError(f"prior_sd must be > 0, got {prior_sd}")
    total = wins + wins.T
    n_ij = total + 2.0 * alpha * (total > 0)
    diff = scores[:, None] - scores[None, :]
    p = 1.0 / (1.0 + np.exp(-diff))
    w = n_ij * p * (1.0 - p)
    np.fill_diagonal(w, 0.0)
    precision = np.diag(w.sum(axis=1)) - w + np.eye(len(scores)) / prior_sd**2
    return np.linalg.inv(precision)


class BradleyTerryRanker:
    """Bradley–Terry ranking of tasks by objectivity, with bootstrap intervals.

    Parameters: `alpha` virtual wins per side of each compared pair (the regularisation; see the
    module docstring), `n_bootstrap` resamples of the judgments for the intervals (0: no intervals),
    `seed` for the resampling, `level` of the intervals.

    Fitted state: `tasks_` (sorted), `scores_` (task -> centred log-strength of objectivity),
    `intervals_` (task -> (low, high)), `counts_` (task -> number of judgments involving it),
    `wins_` (matrix, rows/columns in `tasks_` order), `bootstrap_` (n_bootstrap × n scores of the
    resamples), `components_` (list of task lists, largest first), `connected_` (True when there is
    one component).
    """

    def __init__(self, alpha: float = DEFAULT_ALPHA, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95):
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        if n_bootstrap < 0:
            raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        self.alpha = alpha
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.level = level

    def fit(self, judgments: Sequence[Judgment]) -> "BradleyTerryRanker":
        """Fit scores (and bootstrap intervals) from judgments; return self.

        Raises ValueError on a judgment whose winner is not one of its pair, or on fewer than 2
        tasks; warns (RuntimeWarning) when the comparison graph is disconnected.
        """
        tasks = check_judgments(judgments)
        n = len(tasks)
        winners, losers = judgment_indices(judgments, tasks)
        wins = win_matrix(winners, losers, n)
        design = (wins + wins.T) > 0
        comps = graph_components(design.astype(float))
        self.tasks_ = tasks
        self.wins_ = wins
        self.components_ = [[tasks[i] for i in c] for c in comps]
        self.connected_ = len(comps) == 1
        if not self.connected_:
            listing = "; ".join(f"{{{', '.join(c)}}}" for c in self.components_)
            warnings.warn(
                f"the comparison graph is disconnected: {len(comps)} components ({listing}); scores are "
                "centred within each component and are not comparable across components. "
                "Compare tasks across the components to join them.",
                RuntimeWarning,
                stacklevel=2,
            )
        scores = fit_scores(wins, self.alpha, design, comps)
        self._scores = scores
        self.scores_ = dict(zip(tasks, (float(s) for s in scores)))
        counts = (wins + wins.T).sum(axis=1)
        self.counts_ = dict(zip(tasks, (int(c) for c in counts)))
        self.intervals_ = {}
        self.bootstrap_ = np.empty((0, n))
        if self.n_bootstrap:
            boot = self._bootstrap(winners, losers, n, design, comps, scores)
            self.bootstrap_ = boot
            tail = (1 - self.level) / 2 * 100
            low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
            self.intervals_ = {t: (float(lo), float(hi)) for t, lo, hi in zip(tasks, low, high)}
        return self

    def _bootstrap(self, winners, losers, n, design, comps, scores) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        m = len(winners)
        out = np.empty((self.n_bootstrap, n))
        for b in range(self.n_bootstrap):
            idx = rng.integers(m, size=m)
            wins_b = win_matrix(winners[idx], losers[idx], n)
            out[b] = fit_scores(wins_b, self.alpha, design, comps, initial=scores)
        return out

    def covariance(self, prior_sd: float = 2.0) -> np.ndarray:
        """Laplace-approximation posterior covariance of the scores (rows/columns in `tasks_` order)."""
        self._check_fitted()
        return laplace_covariance(self._scores, self.wins_, self.alpha, prior_sd)

    def ranking(self) -> list[RankedTask]:
        """Return one RankedTask per task, most objective (highest score) first."""
        self._check_fitted()
        order = sorted(self.tasks_, key=lambda t: (-self.scores_[t], t))
        rows = []
        for rank, task in enumerate(order, start=1):
            low, high = self.intervals_.get(task, (None, None))
            rows.append(RankedTask(task, self.scores_[task], low, high, rank, self.counts_[task]))
        return rows

    def _check_fitted(self) -> None:
        if not hasattr(self, "scores_"):
            raise ValueError("this BradleyTerryRanker is not fitted yet; call fit(judgments) first")
