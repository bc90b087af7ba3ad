"""Which pairs of tasks to show workers next, so the ranking converges with few paid judgments.

Two selectors:

- `balanced_random_pairs`: the baseline. Every ordered pair (both sides) is shown equally often:
  each pick is a least-shown ordered pair, ties broken at random, no unordered pair twice in a batch.
- `ActivePairSelector` / `suggest_pairs`: greedy batch selection by the expected drop in the
  expected number of misordered task pairs (the expected Kendall distance to the true ranking).

The active method. The posterior over scores is approximated by a Gaussian (Laplace): mean = the
edge-smoothed Bradley–Terry fit of `analysis.ranking`, covariance Σ = inverse of (Fisher information
of the judgments + a Gaussian prior of sd `prior_sd`, which gives a never-compared task a finite,
large variance). For a pair of tasks (a, b) with estimated gap Δ and gap variance V = vᵀΣv
(v = e_a − e_b), the posterior probability that the estimate orders them wrongly is
q = Φ(−|Δ| / √V); the sum of q over all pairs is the expected number of discordant pairs, i.e. the
expected (1 − τ) up to a constant. One more judgment of a candidate pair c shrinks Σ by the rank-one
update Σ ← Σ − k uuᵀ (u = Σv_c, k = I_c / (1 + I_c V_c), I_c its Fisher information), which lowers
V, hence q, for every pair whose gap is correlated with c's. To first order the drop is

    gain(c) = Σ_pairs (∂q/∂V) · k (vᵀu)² = k · v_cᵀ (Σ L Σ) v_c,   ∂q/∂V = φ(z) z / (2V), z = |Δ|/√V

(z = (|Δ| + tolerance)/√V with the indifference zone below),

where L is the graph Laplacian of all pairs weighted by ∂q/∂V. So every candidate is scored in O(1)
from M = Σ L Σ, and M and Σ are updated in O(n²) after each pick. The weights single out the pairs
whose order is uncertain but resolvable (z near 1): near neighbours, not far-apart tasks whose order
is settled. A comparison is worth what it teaches about *those* pairs, directly or through
correlated scores, so an uncertain task is compared with well-placed tasks near it.

Indifference zone: two tasks closer than `tolerance` (default 0.25 in log-strength, i.e. the more
objective one wins 56% of the time) are practically tied, and resolving their order is not worth
many paid judgments. The misorder probability is therefore taken as q = Φ(−(|Δ| + tolerance) / √V)
(the chance that the true gap is on the other side by more than the tolerance), so a pair that
looks tied stops attracting judgments once its gap is known to within the tolerance. On the
simulated crowds of the bench this cut the median judgments needed by 13–27% against
tolerance 0 (50 tasks, 8 seeds: 5500 vs 7550; 10 tasks, 40 seeds: 420 vs 485).

Noisy workers: a share `lapse` of answers is assumed to be random (spammers, misclicks), so one
judgment's Fisher information about the gap is I = ((1−λ)σ(Δ)(1−σ(Δ)))² / (P(1−P)) with
P = (1−λ)σ(Δ) + λ/2: lopsided pairs, whose few surprises are mostly noise, are worth even less.

Batches: workers answer in batches, so K pairs are picked greedily, updating Σ after each pick as
if it had been answered (the covariance update does not need the outcome), which spreads a batch
over different tasks. A share `explore` of each batch goes to the least-compared candidate pairs,
so every task keeps being compared even where the model is wrong.

How much this saves is measured by `bench/active_selection.py` (see docs/rank.md): judgments
needed to reach Kendall τ ≥ 0.9 on simulated crowds (N(0, 1) latent scores, 20% spammers, 20
seeds), active / balanced random: 50 tasks median 0.66, mean 0.72; 10 tasks median 0.73, mean 0.98
(on par: with 10 tasks few pairs are far enough apart to be worth skipping).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from analysis.ranking import DEFAULT_ALPHA, fit_scores, judgment_indices, laplace_covariance, win_matrix
from subjlab.records import Judgment


@dataclass(frozen=True)
class SuggestedPair:
    """A pair to show next: `left`/`right` tasks, `gain` (first-order expected drop in the expected
    number of misordered task pairs, at the time of the pick; 0 for exploration picks), `p_left` (predicted chance that `left` is
    judged more objective) and `reason` ("active" or "explore")."""

    left: str
    right: str
    gain: float
    p_left: float
    reason: str

    def to_dict(self) -> dict:
        """Return the suggestion as a JSON-ready dict."""
        return {"left": self.left, "right": self.right, "gain": self.gain, "p_left": self.p_left, "reason": self.reason}


def _pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def shown_counts(judgments: Sequence[Judgment]) -> dict[tuple[str, str], int]:
    """Return how often each ordered pair (left, right) was shown."""
    out: dict[tuple[str, str], int] = {}
    for j in judgments:
        out[(j.left, j.right)] = out.get((j.left, j.right), 0) + 1
    return out


def balanced_random_pairs(
    tasks: Sequence[str], k: int, seed: int, counts: Mapping[tuple[str, str], int] | None = None
) -> list[tuple[str, str]]:
    """Return `k` ordered pairs (left, right) that keep every pair, in both orders, shown evenly.

    `counts` maps an ordered pair to how often it was already shown (see `shown_counts`). Picks
    least-shown ordered pairs first, ties broken at random by `seed`; an unordered pair appears at
    most once per batch while distinct pairs remain. Raises ValueError for fewer than 2 tasks or k < 0.
    """
    tasks = sorted(set(tasks))
    if len(tasks) < 2:
        raise ValueError(f"need at least 2 tasks, got {len(tasks)}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    counts = dict(counts or {})
    rng = np.random.default_rng(seed)
    ordered = list(itertools.permutations(tasks, 2))
    out: list[tuple[str, str]] = []
    while len(out) < k:
        jitter = rng.random(len(ordered))
        order = sorted(range(len(ordered)), key=lambda i: (counts.get(ordered[i], 0), jitter[i]))
        used: set[tuple[str, str]] = set()
        for i in order:
            pair = ordered[i]
            key = _pair_key(*pair)
            if key in used:
                continue
            used.add(key)
            out.append(pair)
            counts[pair] = counts.get(pair, 0) + 1
            if len(out) == k:
                break
    return out


def _information(gap: np.ndarray, lapse: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (P(first wins), Fisher information of one judgment about the gap) under the lapse model."""
    sig = 1.0 / (1.0 + np.exp(-gap))
    p = (1.0 - lapse) * sig + lapse / 2.0
    info = ((1.0 - lapse) * sig * (1.0 - sig)) ** 2 / np.maximum(p * (1.0 - p), 1e-12)
    return p, info


class ActivePairSelector:
    """Propose the next pairs to judge by expected reduction of ranking uncertainty (see module doc).

    Parameters: `alpha` (the ranker's regularisation), `prior_sd` (prior sd of a score; sets how
    uncertain a never-compared task is), `lapse` (assumed share of random answers), `explore`
    (share of each batch given to the least-compared pairs), `tolerance` (score gap below which two
    tasks count as tied). The defaults were chosen on the simulated crowds of the bench.
    """

    def __init__(
        self, alpha: float = DEFAULT_ALPHA, prior_sd: float = 2.0, lapse: float = 0.1, explore: float = 0.1, tolerance: float = 0.25
    ):
        if not 0.0 <= lapse < 1.0:
            raise ValueError(f"lapse must be in [0, 1), got {lapse}")
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], got {explore}")
        if tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        self.alpha = alpha
        self.prior_sd = prior_sd
        self.lapse = lapse
        self.explore = explore
        self.tolerance = tolerance

    def suggest(
        self,
        judgments: Sequence[Judgment],
        tasks: Sequence[str],
        k: int,
        seed: int = 0,
        scores: np.ndarray | None = None,
        involving: str | None = None,
    ) -> list[SuggestedPair]:
        """Return `k` distinct pairs among `tasks` to show next, best first (exploration picks last).

        `judgments` may also involve tasks outside `tasks` (they inform the scale but are never
        proposed). `involving`: propose only pairs that include this task (placing a new task).
        `scores` (optional, in the order of the sorted union of tasks) warm-starts the fit.
        Raises ValueError for fewer than 2 tasks, k < 0 or k above the number of candidate pairs.
        """
        candidates = sorted(set(tasks) | ({involving} if involving else set()))
        if len(candidates) < 2:
            raise ValueError(f"need at least 2 tasks to pair, got {len(candidates)}")
        universe = sorted(set(candidates).union(*[(j.left, j.right) for j in judgments]))
        n = len(universe)
        pos = {t: i for i, t in enumerate(universe)}
        if involving:
            ci = np.full(len(candidates) - 1, pos[involving])
            cj = np.array([pos[t] for t in candidates if t != involving])
        else:
            ci, cj = np.triu_indices(len(candidates), 1)
            cand_idx = np.array([pos[t] for t in candidates])
            ci, cj = cand_idx[ci], cand_idx[cj]
        if not 0 <= k <= len(ci):
            raise ValueError(f"k must be between 0 and {len(ci)} (the number of candidate pairs), got {k}")
        rng = np.random.default_rng(seed)
        winners, losers = judgment_indices(judgments, universe)
        wins = win_matrix(winners, losers, n)
        mean = fit_scores(wins, self.alpha, initial=scores) if len(judgments) else np.zeros(n)
        cov = laplace_covariance(mean, wins, self.alpha, self.prior_sd)

        out: list[SuggestedPair] = []

        def emit(a: int, b: int, gain: float, reason: str) -> None:
            if rng.random() < 0.5:
                a, b = b, a
            p, _ = _information(np.array([mean[a] - mean[b]]), self.lapse)
            out.append(SuggestedPair(universe[a], universe[b], gain, float(p[0]), reason))

        n_explore = int(round(self.explore * k)) if judgments else k
        if n_explore:
            chosen = _least_compared(ci, cj, wins + wins.T, n_explore, rng)
            for c in chosen:
                emit(int(ci[c]), int(cj[c]), 0.0, "explore")
            ci, cj = np.delete(ci, chosen), np.delete(cj, chosen)
        lap = self._sensitivity_laplacian(mean, cov, self.tolerance)
        m = cov @ lap @ cov  # d(expected misordered pairs) / d(Σ) folded through Σ: gain_c ∝ v_cᵀ m v_c
        for _ in range(k - len(out)):
            c_gap = mean[ci] - mean[cj]
            c_var = np.maximum(cov[ci, ci] + cov[cj, cj] - 2 * cov[ci, cj], 1e-12)
            _, info = _information(c_gap, self.lapse)
            shrink = info / (1.0 + info * c_var)
            gain = shrink * (m[ci, ci] + m[cj, cj] - 2 * m[ci, cj])
            pick = int(np.argmax(gain + 1e-12 * rng.random(len(gain))))
            a, b = int(ci[pick]), int(cj[pick])
            # rank-one update of Σ (and of m = Σ L Σ) as if this pair had been judged once
            u = cov[:, a] - cov[:, b]
            g = cov @ (lap @ u)
            kk = shrink[pick]
            m = m - kk * (np.outer(u, g) + np.outer(g, u)) + kk**2 * float(u @ lap @ u) * np.outer(u, u)
            cov = cov - kk * np.outer(u, u)
            ci, cj = np.delete(ci, pick), np.delete(cj, pick)
            emit(a, b, float(gain[pick]), "active")
        active = sorted((s for s in out if s.reason == "active"), key=lambda s: -s.gain)
        return active + [s for s in out if s.reason == "explore"]

    @staticmethod
    def _sensitivity_laplacian(mean: np.ndarray, cov: np.ndarray, tolerance: float) -> np.ndarray:
        """Weighted graph Laplacian of all task pairs, weighted by dq/dVar(gap) (see module doc)."""
        diag = np.diag(cov)
        var = np.maximum(diag[:, None] + diag[None, :] - 2 * cov, 1e-12)
        z = (np.abs(mean[:, None] - mean[None, :]) + tolerance) / np.sqrt(var)
        w = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi) * z / (2 * var)
        np.fill_diagonal(w, 0.0)
        return np.diag(w.sum(axis=1)) - w


def _least_compared(ci: np.ndarray, cj: np.ndarray, shown: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """Greedily pick `k` candidate pairs (indices into ci/cj): least-compared pair first, then the
    pair whose busier task has been compared least (counting this batch), ties at random."""
    pair_counts = shown[ci, cj].astype(float)
    task_counts = shown.sum(axis=1).astype(float)
    jitter = rng.random(len(ci))
    available = np.ones(len(ci), dtype=bool)
    chosen: list[int] = []
    for _ in range(k):
        busier = np.maximum(task_counts[ci], task_counts[cj])
        key = np.lexsort((jitter, task_counts[ci] + task_counts[cj], busier, pair_counts))
        pick = int(next(i for i in key if available[i]))
        chosen.append(pick)
        available[pick] = False
        task_counts[ci[pick]] += 1
        task_counts[cj[pick]] += 1
    return chosen


def suggest_pairs(judgments: Sequence[Judgment], tasks: Sequence[str], k: int, seed: int = 0) -> list[tuple[str, str]]:
    """Return `k` distinct (left, right) pairs among `tasks` to show next (ActivePairSelector defaults)."""
    return [(s.left, s.right) for s in ActivePairSelector().suggest(judgments, tasks, k, seed)]
