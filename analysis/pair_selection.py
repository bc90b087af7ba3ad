"""Which pairs of tasks to show workers next, so the ranking converges with few paid judgments.

Two selectors:

- `balanced_random_pairs`: the baseline. Every ordered pair (both sides) is shown equally often:
  each pick is a least-shown ordered pair, ties broken at random, no unordered pair twice in a batch.
- `ActivePairSelector` / `suggest_pairs`: batch selection by the expected drop in the posterior
  expected number of misordered task pairs after one more judgment (a one-step look-ahead, the
  "knowledge gradient" of the ranking).

The active method. The posterior over scores is approximated by a Gaussian (Laplace): mean = the
edge-smoothed Bradley–Terry fit of `analysis.ranking`, covariance Σ = inverse of (Fisher information
of the judgments + a Gaussian prior of sd `prior_sd`, which gives a never-compared task a finite,
large variance). A pair p = (a, b) with estimated gap μ_p and gap variance V_p = v_pᵀΣv_p
(v_p = e_a − e_b) is misordered by the current estimate with probability q_p = Φ(−|μ_p|/√V_p); the
sum of q over all pairs is the expected number of misordered pairs (`analysis.stopping` reports it).

One more judgment of a candidate pair c (Fisher information I_c, from the lapse model below) is, to
the Gaussian, a noisy look at c's gap. It moves the posterior mean of every pair's gap: μ_p' is
normal around μ_p with variance s² = k (v_pᵀΣv_c)², k = I_c / (1 + I_c V_c), and leaves variance
V_p − s². The estimate's order of p flips when μ_p' changes sign, and the misorder probability
afterwards, E[Φ(−|μ_p'| / √(V_p − s²))], has a closed form with Owen's T function:

    drop_p(c) = q_p − 2 T(z_p, √(V_p / s² − 1)),   z_p = |μ_p| / √V_p   (scipy.special.owens_t)

(0 when s² → 0, all of q_p when the judgment would reveal the gap exactly). The gain of c is the
sum of drop_p(c) over the pairs p. Only the chance of a flip counts: a tighter interval around an order that stays the same does not
make the order more right (P(a above b) is a martingale, so its expected misorder probability moves
only where it may cross ½). The gains single out pairs whose order is uncertain and whose gap one
judgment can move (near neighbours, directly or through correlated scores), and fade for near-ties
that would take hundreds of judgments to settle.

This replaced a first-order rule (the drop of q from the shrinking variance alone, the estimate
held fixed, with a 0.25 indifference zone). On the bench's crowds the two are on par: with 50 tasks
mean misordered pairs after 3,000 / 6,000 / 10,000 judgments 95.7 / 68.7 / 50.5 for the look-ahead,
99.3 / 63.7 / 51.0 for the first-order rule, 106.5 / 73.2 / 60.6 for balanced random (10 seeds);
with 10 tasks after 200 / 540 / 1,000, 5.8 / 3.3 / 2.3 against 6.5 / 3.3 / 2.2 and 6.6 / 4.3 / 3.1
(60 seeds). docs/rank.md lists what else was tried, with figures.

Noisy workers: a share `lapse` of answers is assumed to be random (spammers, misclicks), so one
judgment's Fisher information about the gap is I = ((1−λ)σ(Δ)(1−σ(Δ)))² / (P(1−P)) with
P = (1−λ)σ(Δ) + λ/2: lopsided pairs, whose few surprises are mostly noise, are worth even less.

Batches: workers answer in batches, so K pairs are picked greedily, updating Σ after each pick as
if it had been answered (the covariance update does not need the outcome), which spreads a batch
over different tasks. The gains are recomputed every `refresh` picks (default: one per 10 tasks,
at least 1), and the picks
between two recomputations share no task, since their gains were computed before each other's
update. To keep a recomputation to n_uncertain × n_candidates Owen's T values, both sides are
ranked by each pair's *self gain*, drop_p(p), what one direct judgment would do for it: the gains
sum over the `n_uncertain` pairs with the largest self gain (a pair that a direct judgment hardly
moves, settled or a near-tie already judged many times, is moved even less by others), and are
computed for the `n_candidates` open candidates with the largest. (Taking the pairs with the
largest q instead, near-ties only, left 71.2 misordered pairs at 6,000 judgments against 68.7.)
After `n_candidates` active picks the remaining pairs follow in least-compared order. A share `explore` of each batch goes to the least-compared candidate pairs,
so every task keeps being compared even where the model is wrong (without it the bench needed about
twice the judgments on its hardest seeds).

How much this saves is measured by `bench/active_selection.py` (see docs/rank.md).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.special import ndtr, owens_t

from analysis.ranking import DEFAULT_ALPHA, fit_scores, judgment_indices, laplace_covariance, win_matrix
from subjlab.records import Judgment


@dataclass(frozen=True)
class SuggestedPair:
    """A pair to show next: `left`/`right` tasks, `gain` (expected drop in the expected number of
    misordered task pairs from one judgment of this pair, when it was picked; 0 for exploration and
    least-compared picks), `p_left` (predicted chance that `left` is judged more objective) and
    `reason` ("active", "explore" or "coverage": beyond the candidates worth a look-ahead)."""

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


def judgment_information(gap: np.ndarray, lapse: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (P(first wins), Fisher information of one judgment about the gap) under the lapse model."""
    sig = 1.0 / (1.0 + np.exp(-gap))
    p = (1.0 - lapse) * sig + lapse / 2.0
    info = ((1.0 - lapse) * sig * (1.0 - sig)) ** 2 / np.maximum(p * (1.0 - p), 1e-12)
    return p, info


class ActivePairSelector:
    """Propose the next pairs to judge by the expected drop in misordered pairs (see module doc).

    Parameters: `alpha` (the ranker's regularisation), `prior_sd` (prior sd of a score; sets how
    uncertain a never-compared task is), `lapse` (assumed share of random answers), `explore`
    (share of each batch given to the least-compared pairs), `n_uncertain` (how many pairs, those a
    judgment moves most, the gain sums over), `n_candidates` (how many candidates get a look-ahead),
    `refresh` (picks between recomputations of the gains; None: one per 10 tasks). The defaults
    were chosen on the simulated crowds of the bench.
    """

    def __init__(
        self,
        alpha: float = DEFAULT_ALPHA,
        prior_sd: float = 2.0,
        lapse: float = 0.1,
        explore: float = 0.1,
        n_uncertain: int = 300,
        n_candidates: int = 100,
        refresh: int | None = None,
    ):
        if not 0.0 <= lapse < 1.0:
            raise ValueError(f"lapse must be in [0, 1), got {lapse}")
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], got {explore}")
        if n_uncertain < 1 or n_candidates < 1:
            raise ValueError(f"n_uncertain and n_candidates must be >= 1, got {n_uncertain} and {n_candidates}")
        if refresh is not None and refresh < 1:
            raise ValueError(f"refresh must be >= 1 (picks between recomputations), got {refresh}")
        self.alpha = alpha
        self.prior_sd = prior_sd
        self.lapse = lapse
        self.explore = explore
        self.n_uncertain = n_uncertain
        self.n_candidates = n_candidates
        self.refresh = refresh

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
        shown = wins + wins.T
        mean = fit_scores(wins, self.alpha, initial=scores) if len(judgments) else np.zeros(n)
        cov = laplace_covariance(mean, wins, self.alpha, self.prior_sd)

        picks: list[tuple[int, int, float, str]] = []
        n_explore = int(round(self.explore * k)) if judgments else k
        if n_explore:
            chosen = _least_compared(ci, cj, shown, n_explore, rng)
            picks += [(int(ci[c]), int(cj[c]), 0.0, "explore") for c in chosen]
            ci, cj = np.delete(ci, chosen), np.delete(cj, chosen)
        refresh = self.refresh or max(1, n // 10)
        pi, pj = np.triu_indices(n, 1)  # every pair of the ranking: what the gains are about
        p_gap = np.abs(mean[pi] - mean[pj])
        _, c_info = judgment_information(mean[ci] - mean[cj], self.lapse)
        open_ = np.ones(len(ci), dtype=bool)
        n_active = 0
        while len(picks) < k and n_active < self.n_candidates:
            batch = self._pick_disjoint(cov, mean, p_gap, pi, pj, ci, cj, c_info, open_, min(refresh, k - len(picks)), rng)
            if not batch:
                break
            for c, gain in batch:
                u = cov[:, ci[c]] - cov[:, cj[c]]
                cov = cov - c_info[c] / (1.0 + c_info[c] * (u[ci[c]] - u[cj[c]])) * np.outer(u, u)  # as if judged once
                open_[c] = False
                picks.append((int(ci[c]), int(cj[c]), gain, "active"))
                n_active += 1
        if len(picks) < k:  # beyond the look-ahead: least compared first
            rest = np.flatnonzero(open_)
            chosen = _least_compared(ci[rest], cj[rest], shown, k - len(picks), rng)
            picks += [(int(ci[rest[c]]), int(cj[rest[c]]), 0.0, "coverage") for c in chosen]
        out = [self._suggestion(universe, mean, a, b, gain, reason, rng) for a, b, gain, reason in picks]
        active = sorted((s for s in out if s.reason == "active"), key=lambda s: -s.gain)
        return active + [s for s in out if s.reason == "coverage"] + [s for s in out if s.reason == "explore"]

    def _pick_disjoint(self, cov, mean, p_gap, pi, pj, ci, cj, c_info, open_, m, rng):
        """Compute the gains of the most promising open candidates and return up to `m` picks
        (candidate index, gain), best first, sharing no task."""
        diag = np.diag(cov)
        p_var = np.maximum(diag[pi] + diag[pj] - 2 * cov[pi, pj], 1e-12)
        p_z = p_gap / np.sqrt(p_var)
        p_q = ndtr(-p_z)
        # Each pair's "self gain": the drop one direct judgment of it would bring to itself. Pairs a
        # direct judgment can hardly move (settled, or near-ties already judged many times) are
        # moved even less by a judgment of another pair, so the gains sum over the pairs with the
        # largest self gain, and the look-ahead is computed for the candidates with the largest.
        _, p_info = judgment_information(p_gap, self.lapse)
        p_self = _drop(p_q, p_z, p_var, p_info / (1.0 + p_info * p_var) * p_var**2)
        movable = np.argsort(-p_self, kind="stable")[: self.n_uncertain]
        movable = movable[p_self[movable] > 1e-12]
        cands = np.flatnonzero(open_)
        if len(cands) == 0 or len(movable) == 0:
            return []
        c_var = np.maximum(diag[ci[cands]] + diag[cj[cands]] - 2 * cov[ci[cands], cj[cands]], 1e-12)
        c_z = np.abs(mean[ci[cands]] - mean[cj[cands]]) / np.sqrt(c_var)
        c_shrink = c_info[cands] / (1.0 + c_info[cands] * c_var)
        keep = np.argsort(-_drop(ndtr(-c_z), c_z, c_var, c_shrink * c_var**2), kind="stable")[: self.n_candidates]
        cands, shrink = cands[keep], c_shrink[keep]
        u = cov[:, ci[cands]] - cov[:, cj[cands]]  # Σ v_c, one column per candidate
        moved = shrink[None, :] * (u[pi[movable]] - u[pj[movable]]) ** 2  # s² of each (pair, candidate)
        drop = _drop(p_q[movable][:, None], p_z[movable][:, None], p_var[movable][:, None], moved)
        gains = drop.sum(axis=0)
        ties = rng.random(len(cands))
        picks, busy = [], set()
        for c in np.lexsort((ties, -gains)):
            a, b = int(ci[cands[c]]), int(cj[cands[c]])
            if a in busy or b in busy:
                continue
            busy |= {a, b}
            picks.append((int(cands[c]), float(gains[c])))
            if len(picks) == m:
                break
        return picks

    def _suggestion(self, universe, mean, a, b, gain, reason, rng) -> SuggestedPair:
        if rng.random() < 0.5:
            a, b = b, a
        p, _ = judgment_information(np.array([mean[a] - mean[b]]), self.lapse)
        return SuggestedPair(universe[a], universe[b], gain, float(p[0]), reason)


def _drop(q: np.ndarray, z: np.ndarray, var: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """Expected drop of a pair's misorder probability q = Φ(−z) when its estimated gap (variance
    `var`) moves by a normal amount of variance `moved` and its variance shrinks by as much:
    q − 2 T(z, √(var/moved − 1)) (module doc)."""
    ratio = np.sqrt(np.maximum(var / np.maximum(moved, 1e-300) - 1.0, 0.0))
    return q - 2.0 * owens_t(z, ratio)


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
