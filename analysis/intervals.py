"""Bootstrap intervals for a study's scores: cells, paired differences, γ bands and their rise.

Every estimate is a point value with a percentile interval (95% by default) from B resamples:

- Test items are resampled with replacement (n items per resample). A subset "a_i >= γ" is scored
  on the resampled items that reach γ, so its size varies between resamples as it would between test
  samples (the test slices are drawn per label, not per agreement level); resamples in which no item
  reaches γ are left out (only likely for subsets of a few items, whose bands say little anyway).
- Seeds: a model family trained with S seeds has S prediction lists on the same items. Each
  resample also draws S seeds with replacement and averages their scores on the resampled items
  (a two-level bootstrap), so the interval pools the spread over test items with the spread over
  seeds. With one seed this is the plain item bootstrap. The point value is the mean over seeds of
  the score on all items (the number the report has always shown).
- Paired differences (real − synthetic, few-shot − zero-shot, one rise − another) score both sides
  on the SAME resampled items in each resample; each side draws its own seeds (separate runs).

Macro-F1 follows `analysis.evaluation.score`: the mean F1 over the classes present among the
resample's gold labels (a prediction of an absent class still counts as an error). It is computed
here on integer-coded arrays for all resamples at once (B x n), not by calling scikit-learn per
resample: 2000 resamples x 30 cells would be 60,000 calls (minutes) instead of well under a second.
The tests check it against scikit-learn.

Means of per-item values (diversity: each text's mean distance to the others; similarity: each real
text's top-5 similarity) use the same resampling over those items, paired where both sides are
values of the same items.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from subjlab.records import Agreement, Prediction

LEVEL = 0.95
N_RESAMPLES = 2000
Metric = Literal["accuracy", "macro_f1"]
METRICS: tuple[str, ...] = ("accuracy", "macro_f1")
#: Agreement values closer than this count as the same stratum / as reaching γ (see analysis.evaluation).
EPS = 1e-6


@dataclass(frozen=True)
class Estimate:
    """A point value with its percentile bootstrap interval [low, high] at `level`, over n items and
    n_seeds seeds per side."""

    value: float
    low: float
    high: float
    n: int
    n_seeds: int = 1
    level: float = LEVEL

    def above(self, threshold: float = 0.0) -> bool:
        """True when the whole interval lies above `threshold` (e.g. a gap > 0 is supported)."""
        return self.low > threshold

    def below(self, threshold: float = 0.0) -> bool:
        """True when the whole interval lies below `threshold`."""
        return self.high < threshold

    def to_dict(self) -> dict[str, Any]:
        """Return {"value", "low", "high", "n", "n_seeds", "level"}."""
        return asdict(self)


@dataclass(frozen=True)
class Bootstrap:
    """A point value and its bootstrap replicates (one per resample), before they become an interval."""

    value: float
    replicates: np.ndarray
    n: int
    n_seeds: int = 1

    def estimate(self, level: float = LEVEL) -> Estimate:
        """Return the percentile interval of the replicates at `level` around the point value."""
        low, high = percentile_interval(self.replicates, level)
        return Estimate(value=float(self.value), low=low, high=high, n=self.n, n_seeds=self.n_seeds, level=level)


@dataclass(frozen=True)
class CodedRuns:
    """One model family's predictions on the same items, one row per seed, labels coded as integers."""

    items: tuple[str, ...]
    gold: np.ndarray  # (n,)
    predictions: np.ndarray  # (S, n)
    n_classes: int

    @property
    def n_seeds(self) -> int:
        return int(self.predictions.shape[0])


def percentile_interval(replicates: np.ndarray | Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """Return the (low, high) percentiles of `replicates` that hold `level` of them between.

    Raises ValueError on an empty or non-finite set of replicates or a level outside (0, 1).
    """
    values = np.asarray(replicates, dtype=float)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if values.size == 0:
        raise ValueError("no bootstrap replicates")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{int((~np.isfinite(values)).sum())} bootstrap replicate(s) are not finite")
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def resample_indices(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Return a (n_resamples, n) matrix of item indices drawn with replacement."""
    if n < 1:
        raise ValueError("resampling needs at least one item")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    return rng.integers(0, n, size=(n_resamples, n))


def accuracy_replicates(gold: np.ndarray, predictions: np.ndarray, idx: np.ndarray,
                        keep: np.ndarray | None = None) -> np.ndarray:
    """Accuracy of coded `predictions` (n,) against `gold` (n,) on each resample row of `idx` (B, m).

    `keep` (n,) bool scores only the resampled items it marks; a row with none of them is NaN.
    """
    right = gold[idx] == predictions[idx]
    if keep is None:
        return right.mean(axis=1)
    w = keep[idx]
    counts = w.sum(axis=1)
    return np.divide((right & w).sum(axis=1), counts, out=np.full(idx.shape[0], np.nan), where=counts > 0)


def macro_f1_replicates(gold: np.ndarray, predictions: np.ndarray, idx: np.ndarray, n_classes: int,
                        keep: np.ndarray | None = None) -> np.ndarray:
    """Macro-F1 over the gold classes present in each resample row of `idx` (as `analysis.evaluation.score`).

    `keep` (n,) bool scores only the resampled items it marks; a row with none of them is NaN.
    """
    g = gold[idx]
    p = predictions[idx]
    w = np.ones(idx.shape, dtype=bool) if keep is None else keep[idx]
    total = np.zeros(idx.shape[0])
    present = np.zeros(idx.shape[0])
    for c in range(n_classes):
        is_g = (g == c) & w
        is_p = (p == c) & w
        tp = np.count_nonzero(is_g & is_p, axis=1)
        denominator = np.count_nonzero(is_g, axis=1) + np.count_nonzero(is_p, axis=1)  # 2tp + fp + fn
        here = is_g.any(axis=1)
        f1 = np.divide(2.0 * tp, denominator, out=np.zeros(idx.shape[0]), where=denominator > 0)
        total += np.where(here, f1, 0.0)
        present += here
    return np.divide(total, present, out=np.full(idx.shape[0], np.nan), where=present > 0)


def _metric(runs: CodedRuns, metric: str, idx: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """(S, B) scores of every seed of `runs` on the resample rows of `idx` (only items in `keep`)."""
    if metric == "accuracy":
        return np.stack([accuracy_replicates(runs.gold, p, idx, keep) for p in runs.predictions])
    if metric == "macro_f1":
        return np.stack([macro_f1_replicates(runs.gold, p, idx, runs.n_classes, keep) for p in runs.predictions])
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def pool_seeds(per_seed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Average per resample the scores of S seeds drawn with replacement from the rows of `per_seed` (S, B)."""
    n_seeds, n_resamples = per_seed.shape
    if n_seeds == 1:
        return per_seed[0]
    picks = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    return per_seed[picks, np.arange(n_resamples)[:, None]].mean(axis=1)


def code_runs(*families: Sequence[Sequence[Prediction]]) -> list[CodedRuns]:
    """Code the predictions of one or more model families (each: one prediction list per seed) on the
    same items with one label coding; items in the first list's order.

    Raises ValueError when a family has no seed, a list has duplicate ids, the lists do not cover the
    same items, or two lists disagree about an item's gold label.
    """
    if not families or any(len(f) == 0 for f in families):
        raise ValueError("every model family needs the predictions of at least one seed")
    first = list(families[0][0])
    if not first:
        raise ValueError("no predictions")
    items = tuple(p.id for p in first)
    if len(set(items)) != len(items):
        raise ValueError("duplicate prediction ids")
    gold_of = {p.id: p.label for p in first}
    labels = sorted({p.label for p in first} | {p.prediction for f in families for run in f for p in run})
    code = {lab: i for i, lab in enumerate(labels)}
    out = []
    for k, family in enumerate(families):
        rows = []
        for s, run in enumerate(family):
            by_id = {p.id: p for p in run}
            if len(by_id) != len(run) or set(by_id) != set(items):
                raise ValueError(f"family {k}, seed {s}: predictions do not cover the same {len(items)} items "
                                 "as the first list (or repeat an id)")
            wrong = [i for i in items if by_id[i].label != gold_of[i]]
            if wrong:
                raise ValueError(f"family {k}, seed {s}: gold label of {wrong[0]!r} differs from the first list's")
            rows.append([code[by_id[i].prediction] for i in items])
        out.append(CodedRuns(items=items, gold=np.array([code[gold_of[i]] for i in items]),
                             predictions=np.array(rows), n_classes=len(labels)))
    return out


def _point(runs: CodedRuns, metric: str, keep: np.ndarray | None = None) -> float:
    """The mean over seeds of the score on all items (or on the items in `keep`)."""
    cols = np.arange(len(runs.items)) if keep is None else np.flatnonzero(keep)
    return float(_metric(runs, metric, cols[None, :]).mean())


def score_bootstrap(per_seed: Sequence[Sequence[Prediction]], metric: Metric = "accuracy",
                    n_resamples: int = N_RESAMPLES, seed: int = 0) -> Bootstrap:
    """Bootstrap the score of one model family (one prediction list per seed) on its test items."""
    (runs,) = code_runs(per_seed)
    rng = np.random.default_rng(seed)
    idx = resample_indices(len(runs.items), n_resamples, rng)
    return Bootstrap(_point(runs, metric), pool_seeds(_metric(runs, metric, idx), rng), len(runs.items), runs.n_seeds)


def score_estimate(per_seed: Sequence[Sequence[Prediction]], metric: Metric = "accuracy",
                   n_resamples: int = N_RESAMPLES, seed: int = 0, level: float = LEVEL) -> Estimate:
    """Return the score of one model family with its pooled item-and-seed interval."""
    return score_bootstrap(per_seed, metric, n_resamples, seed).estimate(level)


def difference_bootstrap(a: Sequence[Sequence[Prediction]], b: Sequence[Sequence[Prediction]],
                         metric: Metric = "accuracy", n_resamples: int = N_RESAMPLES, seed: int = 0) -> Bootstrap:
    """Bootstrap score(a) − score(b) of two model families on the same items (paired resamples)."""
    runs_a, runs_b = code_runs(a, b)
    rng = np.random.default_rng(seed)
    idx = resample_indices(len(runs_a.items), n_resamples, rng)
    reps = pool_seeds(_metric(runs_a, metric, idx), rng) - pool_seeds(_metric(runs_b, metric, idx), rng)
    return Bootstrap(_point(runs_a, metric) - _point(runs_b, metric), reps, len(runs_a.items),
                     min(runs_a.n_seeds, runs_b.n_seeds))


def difference_estimate(a: Sequence[Sequence[Prediction]], b: Sequence[Sequence[Prediction]],
                        metric: Metric = "accuracy", n_resamples: int = N_RESAMPLES, seed: int = 0,
                        level: float = LEVEL) -> Estimate:
    """Return score(a) − score(b) with its paired bootstrap interval."""
    return difference_bootstrap(a, b, metric, n_resamples, seed).estimate(level)


def _agreement_values(runs: CodedRuns, agreements: Mapping[str, float] | Sequence[Agreement]) -> np.ndarray:
    amap = agreements if isinstance(agreements, Mapping) else {a.item: a.agreement for a in agreements}
    missing = [i for i in runs.items if i not in amap]
    if missing:
        raise ValueError(f"{len(missing)} predicted item(s) have no agreement value, e.g. {missing[:3]}")
    return np.array([float(amap[i]) for i in runs.items])


def _reaching(values: np.ndarray, gamma: float) -> np.ndarray:
    return values >= gamma - EPS


def gamma_estimates(per_seed: Sequence[Sequence[Prediction]], agreements: Mapping[str, float] | Sequence[Agreement],
                    gammas: Sequence[float], metric: Metric = "accuracy", n_resamples: int = N_RESAMPLES,
                    seed: int = 0, level: float = LEVEL) -> list[Estimate | None]:
    """Return per γ the score on items with a_i >= γ and its interval (None where no item reaches γ).

    All test items are resampled; each γ is scored on the resampled items that reach it (n = the
    subset's size in the data). Resamples without such an item are left out of that γ's interval.
    """
    (runs,) = code_runs(per_seed)
    values = _agreement_values(runs, agreements)
    rng = np.random.default_rng(seed)
    idx = resample_indices(len(runs.items), n_resamples, rng)
    out: list[Estimate | None] = []
    for gamma in gammas:
        keep = _reaching(values, gamma)
        if not keep.any():
            out.append(None)
            continue
        per_seed_reps = _metric(runs, metric, idx, keep)
        ok = np.all(np.isfinite(per_seed_reps), axis=0)
        reps = pool_seeds(per_seed_reps[:, ok], rng)
        out.append(Bootstrap(_point(runs, metric, keep), reps, int(keep.sum()), runs.n_seeds).estimate(level))
    return out


def _rise(runs: CodedRuns, values: np.ndarray, idx: np.ndarray, gamma_low: float, gamma_high: float,
          metric: str, rng: np.random.Generator) -> tuple[float, np.ndarray, int, int]:
    """Point value and (B,) replicates of score(a_i >= gamma_high) − score(a_i >= gamma_low); NaN rows
    where a resample holds no item of the high subset."""
    low, high = _reaching(values, gamma_low), _reaching(values, gamma_high)
    if not low.any() or not high.any():
        raise ValueError(f"no item reaches γ = {gamma_high if low.any() else gamma_low:g}")
    diff = _metric(runs, metric, idx, high) - _metric(runs, metric, idx, low)  # (S, B): one seed draw for both
    point = _point(runs, metric, high) - _point(runs, metric, low)
    return point, pool_seeds(diff, rng), int(low.sum()), int(high.sum())


@dataclass(frozen=True)
class Rise:
    """Score on items with a_i >= gamma_high minus score on items with a_i >= gamma_low (n_low, n_high items)."""

    gamma_low: float
    gamma_high: float
    n_low: int
    n_high: int
    estimate: Estimate


def rise_estimate(per_seed: Sequence[Sequence[Prediction]], agreements: Mapping[str, float] | Sequence[Agreement],
                  gamma_low: float, gamma_high: float, metric: Metric = "accuracy", n_resamples: int = N_RESAMPLES,
                  seed: int = 0, level: float = LEVEL) -> Rise:
    """Return how much the score rises from the items with a_i >= gamma_low to those with a_i >= gamma_high,
    with a bootstrap interval (both subsets scored on the same resample)."""
    if gamma_high <= gamma_low:
        raise ValueError(f"gamma_high ({gamma_high}) must be above gamma_low ({gamma_low})")
    (runs,) = code_runs(per_seed)
    values = _agreement_values(runs, agreements)
    rng = np.random.default_rng(seed)
    idx = resample_indices(len(runs.items), n_resamples, rng)
    point, reps, n_low, n_high = _rise(runs, values, idx, gamma_low, gamma_high, metric, rng)
    reps = reps[np.isfinite(reps)]
    return Rise(gamma_low, gamma_high, n_low, n_high, Bootstrap(point, reps, n_low, runs.n_seeds).estimate(level))


def rise_difference_estimate(a: Sequence[Sequence[Prediction]], b: Sequence[Sequence[Prediction]],
                             agreements: Mapping[str, float] | Sequence[Agreement], gamma_low: float,
                             gamma_high: float, metric: Metric = "accuracy", n_resamples: int = N_RESAMPLES,
                             seed: int = 0, level: float = LEVEL) -> Estimate:
    """Return rise(a) − rise(b) (see `rise_estimate`) with a paired interval: both families are scored
    on the same resampled items."""
    if gamma_high <= gamma_low:
        raise ValueError(f"gamma_high ({gamma_high}) must be above gamma_low ({gamma_low})")
    runs_a, runs_b = code_runs(a, b)
    values = _agreement_values(runs_a, agreements)
    rng = np.random.default_rng(seed)
    idx = resample_indices(len(runs_a.items), n_resamples, rng)
    point_a, reps_a, n_low, _ = _rise(runs_a, values, idx, gamma_low, gamma_high, metric, rng)
    point_b, reps_b, _, _ = _rise(runs_b, values, idx, gamma_low, gamma_high, metric, rng)
    reps = reps_a - reps_b
    return Bootstrap(point_a - point_b, reps[np.isfinite(reps)], n_low,
                     min(runs_a.n_seeds, runs_b.n_seeds)).estimate(level)


def mean_estimate(values: Sequence[float], n_resamples: int = N_RESAMPLES, seed: int = 0, level: float = LEVEL) -> Estimate:
    """Return the mean of per-item `values` with its bootstrap interval over the items."""
    arr = _finite(values, "values")
    rng = np.random.default_rng(seed)
    idx = resample_indices(arr.size, n_resamples, rng)
    return Bootstrap(float(arr.mean()), arr[idx].mean(axis=1), arr.size).estimate(level)


def mean_difference_estimate(x: Sequence[float], y: Sequence[float], paired: bool, n_resamples: int = N_RESAMPLES,
                             seed: int = 0, level: float = LEVEL) -> Estimate:
    """Return mean(x) − mean(y) with a bootstrap interval.

    paired=True: x[i] and y[i] belong to the same item and one resample draws the items of both;
    paired=False: two independent sets, each resampled on its own (n = the smaller set).
    """
    ax, ay = _finite(x, "x"), _finite(y, "y")
    rng = np.random.default_rng(seed)
    if paired:
        if ax.size != ay.size:
            raise ValueError(f"paired values need the same length, got {ax.size} and {ay.size}")
        idx = resample_indices(ax.size, n_resamples, rng)
        reps = ax[idx].mean(axis=1) - ay[idx].mean(axis=1)
    else:
        reps = (ax[resample_indices(ax.size, n_resamples, rng)].mean(axis=1)
                - ay[resample_indices(ay.size, n_resamples, rng)].mean(axis=1))
    return Bootstrap(float(ax.mean() - ay.mean()), reps, int(min(ax.size, ay.size))).estimate(level)


def spearman_estimate(scores: Mapping[str, float], replicates: Mapping[str, Bootstrap], level: float = LEVEL) -> Estimate:
    """Return Spearman's ρ between task `scores` and per-task bootstrapped values (e.g. gaps), with an
    interval from the replicates: ρ is recomputed on each resample of the per-task values.

    Needs at least 3 common tasks and replicates of equal length; resamples where the values are all
    tied (ρ undefined) are left out, and more than 5% of them is a ValueError.
    """
    from scipy.stats import rankdata

    tasks = sorted(set(scores) & set(replicates))
    if len(tasks) < 3:
        raise ValueError(f"Spearman's ρ needs at least 3 common tasks, got {len(tasks)}")
    lengths = {replicates[t].replicates.size for t in tasks}
    if len(lengths) != 1:
        raise ValueError("the tasks' replicates differ in length")
    x = rankdata([scores[t] for t in tasks])
    point_y = rankdata([replicates[t].value for t in tasks])
    reps_y = rankdata(np.stack([replicates[t].replicates for t in tasks], axis=1), axis=1)

    def rho(ry: np.ndarray) -> np.ndarray:
        xc = x - x.mean()
        yc = ry - ry.mean(axis=-1, keepdims=True)
        denom = np.sqrt((xc**2).sum() * (yc**2).sum(axis=-1))
        return np.divide((yc * xc).sum(axis=-1), denom, out=np.full(denom.shape, np.nan), where=denom > 0)

    point = float(rho(point_y[None, :])[0])
    if not np.isfinite(point):
        raise ValueError("Spearman's ρ is undefined: the tasks' values are all tied")
    reps = rho(reps_y)
    ok = np.isfinite(reps)
    if ok.mean() < 0.95:
        raise ValueError(f"Spearman's ρ is undefined in {int((~ok).sum())} of {reps.size} resamples (tied values)")
    return Bootstrap(point, reps[ok], len(tasks), 1).estimate(level)


def _finite(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: need a non-empty list of numbers")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: {int((~np.isfinite(arr)).sum())} value(s) are not finite")
    return arr
