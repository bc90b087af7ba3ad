"""Bootstrap intervals checked against independent computations: scikit-learn's Macro-F1 on every
resample, percentile intervals from resamples drawn here with Python's `random`, the normal
approximation of a proportion, and the coverage of the interval over simulated test sets (so an
interval at the wrong level would fail)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from sklearn.metrics import f1_score

from analysis.intervals import (
    Estimate,
    code_runs,
    difference_estimate,
    gamma_estimates,
    macro_f1_replicates,
    mean_difference_estimate,
    mean_estimate,
    percentile_interval,
    pool_seeds,
    resample_indices,
    rise_difference_estimate,
    rise_estimate,
    score_bootstrap,
    score_estimate,
    spearman_estimate,
)
from subjlab.records import Prediction


def predictions(correct: list[bool], labels=("a", "b"), prefix: str = "i") -> list[Prediction]:
    """Predictions whose gold label cycles through `labels`; item k is right iff correct[k]."""
    out = []
    for k, ok in enumerate(correct):
        gold = labels[k % len(labels)]
        wrong = labels[(k + 1) % len(labels)]
        out.append(Prediction(id=f"{prefix}{k}", label=gold, prediction=gold if ok else wrong))
    return out


def hand_percentiles(values: list[float], level: float) -> tuple[float, float]:
    """Percentile interval the plain way: sort, take the order statistics at the two tails."""
    ordered = sorted(values)
    tail = (1 - level) / 2
    pos_low, pos_high = tail * (len(ordered) - 1), (1 - tail) * (len(ordered) - 1)

    def at(pos: float) -> float:
        lo = math.floor(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return at(pos_low), at(pos_high)


def test_macro_f1_of_every_resample_matches_scikit_learn():
    rng = np.random.default_rng(4)
    gold_labels = ["neg", "neu", "pos"]
    gold = [gold_labels[i] for i in rng.integers(0, 3, 40)]
    # predictions include a class that never occurs as gold ("other")
    pred = [(gold_labels + ["other"])[i] for i in rng.integers(0, 4, 40)]
    (runs,) = code_runs([[Prediction(id=str(k), label=g, prediction=p) for k, (g, p) in enumerate(zip(gold, pred))]])
    idx = resample_indices(40, 120, rng)
    idx[:5, :] = idx[:5, :1]  # a few resamples of one item: a single gold class present
    ours = macro_f1_replicates(runs.gold, runs.predictions[0], idx, runs.n_classes)
    for row, value in zip(idx, ours):
        g = [gold[i] for i in row]
        p = [pred[i] for i in row]
        assert value == pytest.approx(f1_score(g, p, labels=sorted(set(g)), average="macro", zero_division=0))


def test_interval_matches_a_percentile_interval_from_resamples_drawn_by_hand():
    # 200 items, 140 right: a 95% interval is about ±6.4 points, a 90% one ±5.3 (so 0.004 tells them apart).
    correct = [k % 10 < 7 for k in range(200)]
    est = score_estimate([predictions(correct)], "accuracy", n_resamples=4000, seed=1)
    draw = random.Random(7)
    hand = [sum(correct[draw.randrange(200)] for _ in range(200)) / 200 for _ in range(4000)]
    low, high = hand_percentiles(hand, 0.95)
    assert est.value == pytest.approx(0.7) and est.n == 200 and est.level == 0.95
    assert est.low == pytest.approx(low, abs=0.004) and est.high == pytest.approx(high, abs=0.004)
    low90, high90 = hand_percentiles(hand, 0.90)
    assert high - low - (high90 - low90) > 0.015  # the check above could not pass with a 90% interval
    # and the normal approximation of a proportion: ±1.96 sqrt(p(1-p)/n)
    half = 1.96 * math.sqrt(0.7 * 0.3 / 200)
    assert (est.high - est.low) / 2 == pytest.approx(half, rel=0.06)


def test_ninety_five_percent_intervals_cover_the_true_accuracy_about_ninety_five_percent_of_the_time():
    rng = np.random.default_rng(11)
    truth, n, trials = 0.7, 150, 400
    covered = 0
    for t in range(trials):
        correct = list(rng.random(n) < truth)
        est = score_estimate([predictions(correct)], "accuracy", n_resamples=1000, seed=t)
        covered += est.low <= truth <= est.high
    assert 0.92 <= covered / trials <= 0.98, covered / trials


def test_percentile_interval_uses_the_two_tails_and_rejects_bad_input():
    values = np.arange(1001, dtype=float)  # 0..1000
    assert percentile_interval(values, 0.95) == pytest.approx((25.0, 975.0))
    assert percentile_interval(values, 0.90) == pytest.approx((50.0, 950.0))
    with pytest.raises(ValueError, match="no bootstrap replicates"):
        percentile_interval([])
    with pytest.raises(ValueError, match="not finite"):
        percentile_interval([0.1, float("nan")])
    with pytest.raises(ValueError, match="level"):
        percentile_interval(values, 1.0)


def test_seeds_are_pooled_two_level_and_identical_seeds_change_nothing():
    correct = [k % 3 != 0 for k in range(90)]
    one = score_bootstrap([predictions(correct)], "accuracy", n_resamples=500, seed=3)
    same = score_bootstrap([predictions(correct), predictions(correct)], "accuracy", n_resamples=500, seed=3)
    assert np.array_equal(one.replicates, same.replicates) and same.n_seeds == 2
    # one seed always right, one always wrong: each resample averages two seeds drawn with replacement,
    # so it is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4: the 95% interval is [0, 1] around 0.5.
    split = score_estimate([predictions([True] * 50), predictions([False] * 50)], "accuracy", n_resamples=4000, seed=2)
    assert (split.value, split.low, split.high) == (0.5, 0.0, 1.0)
    reps = pool_seeds(np.array([[1.0] * 4000, [0.0] * 4000]), np.random.default_rng(0))
    assert np.mean(reps == 0.5) == pytest.approx(0.5, abs=0.03) and set(np.unique(reps)) == {0.0, 0.5, 1.0}


def test_paired_difference_scores_both_models_on_the_same_resampled_items():
    a = [predictions([k % 4 != 0 for k in range(120)])]  # 75% right
    b = [predictions([k % 4 not in (0, 1) for k in range(120)])]  # 50% right: wrong wherever a is, and more
    est = difference_estimate(a, b, "accuracy", n_resamples=3000, seed=5)
    assert est.value == pytest.approx(0.25)
    # by hand: the difference is the share of items with k % 4 == 1 on each resample
    draw = random.Random(9)
    hand = [sum((k := draw.randrange(120)) % 4 == 1 for _ in range(120)) / 120 for _ in range(3000)]
    low, high = hand_percentiles(hand, 0.95)
    assert est.low == pytest.approx(low, abs=0.01) and est.high == pytest.approx(high, abs=0.01)
    # an unpaired interval of the two accuracies would be far wider than the paired one
    half_unpaired = 1.96 * math.sqrt(0.75 * 0.25 / 120 + 0.5 * 0.5 / 120)
    assert est.high - est.low < 0.75 * 2 * half_unpaired
    assert difference_estimate(a, a, n_resamples=200).to_dict() | {"n_seeds": 1} == Estimate(0.0, 0.0, 0.0, 120).to_dict()


def test_macro_f1_difference_and_score_agree_with_the_point_values_of_scikit_learn():
    a = predictions([k % 5 != 0 for k in range(60)], labels=("x", "y", "z"))
    b = predictions([k % 2 == 0 for k in range(60)], labels=("x", "y", "z"))

    def sk(preds):
        return f1_score([p.label for p in preds], [p.prediction for p in preds], average="macro", zero_division=0)

    assert score_estimate([a], "macro_f1", n_resamples=200).value == pytest.approx(sk(a))
    assert difference_estimate([a], [b], "macro_f1", n_resamples=200).value == pytest.approx(sk(a) - sk(b))


def test_runs_must_cover_the_same_items_with_the_same_gold_labels():
    a = predictions([True] * 10)
    with pytest.raises(ValueError, match="same 10 items"):
        code_runs([a], [a[:9]])
    relabelled = [Prediction(id=p.id, label="zz" if k == 3 else p.label, prediction=p.prediction) for k, p in enumerate(a)]
    with pytest.raises(ValueError, match="gold label of 'i3'"):
        code_runs([a], [relabelled])
    with pytest.raises(ValueError, match="at least one seed"):
        code_runs([])
    with pytest.raises(ValueError, match="metric"):
        score_estimate([a], "recall")  # type: ignore[arg-type]


def stratified_items(n_per_level: dict[float, int], right: dict[float, int]):
    """Predictions and agreements: per agreement level, n items of which the first `right` are right."""
    preds, agreements, k = [], {}, 0
    for level, n in n_per_level.items():
        for j in range(n):
            preds.append(Prediction(id=f"s{k}", label="a", prediction="a" if j < right[level] else "b"))
            agreements[f"s{k}"] = level
            k += 1
    return preds, agreements


def test_gamma_subsets_match_a_hand_bootstrap_of_all_items_scored_on_those_reaching_gamma():
    preds, agreements = stratified_items({1.0: 60, 0.8: 40, 0.6: 50}, {1.0: 54, 0.8: 28, 0.6: 25})
    at = gamma_estimates([preds], agreements, [0.5, 0.8, 1.0, 1.01], n_resamples=4000, seed=8)
    assert [e.n if e else None for e in at] == [150, 100, 60, None]
    assert [e.value for e in at[:3]] == pytest.approx([107 / 150, 82 / 100, 54 / 60])
    # by hand: resample all 150 items, score the drawn items whose agreement reaches γ
    right = [p.prediction == p.label for p in preds]
    level = [agreements[p.id] for p in preds]
    draw = random.Random(2)
    for est, gamma in zip(at[1:3], (0.8, 1.0)):
        hand = []
        for _ in range(4000):
            drawn = [draw.randrange(150) for _ in range(150)]
            kept = [right[i] for i in drawn if level[i] >= gamma]
            hand.append(sum(kept) / len(kept))
        low, high = hand_percentiles(hand, 0.95)
        assert est.low == pytest.approx(low, abs=0.012) and est.high == pytest.approx(high, abs=0.012)
    # one item at a level of its own: the band is that item's score, never an error
    single = gamma_estimates([preds + [Prediction(id="top", label="a", prediction="a")]], {**agreements, "top": 1.5},
                             [1.5], n_resamples=300)
    assert (single[0].n, single[0].low, single[0].high) == (1, 1.0, 1.0)
    with pytest.raises(ValueError, match="no agreement value"):
        gamma_estimates([preds], {"s0": 1.0}, [0.5])


def test_rise_with_gamma_is_supported_only_when_its_interval_clears_zero():
    rises_preds, agreements = stratified_items({1.0: 80, 0.6: 80}, {1.0: 76, 0.6: 40})
    flat_preds, _ = stratified_items({1.0: 80, 0.6: 80}, {1.0: 56, 0.6: 56})
    rise = rise_estimate([rises_preds], agreements, 0.5, 1.0, n_resamples=2000, seed=4)
    assert (rise.n_low, rise.n_high) == (160, 80)
    assert rise.estimate.value == pytest.approx(76 / 80 - 116 / 160) and rise.estimate.above(0)
    flat = rise_estimate([flat_preds], agreements, 0.5, 1.0, n_resamples=2000, seed=4).estimate
    assert flat.value == pytest.approx(0.0) and flat.low < 0 < flat.high
    steeper = rise_difference_estimate([rises_preds], [flat_preds], agreements, 0.5, 1.0, n_resamples=2000, seed=4)
    assert steeper.value == pytest.approx(rise.estimate.value) and steeper.above(0)
    with pytest.raises(ValueError, match="above gamma_low"):
        rise_estimate([flat_preds], agreements, 1.0, 0.5)
    with pytest.raises(ValueError, match="no item reaches"):
        rise_estimate([flat_preds], agreements, 0.5, 1.01)


def test_means_of_per_item_values_paired_and_independent():
    x = [0.5 + 0.01 * (k % 7) for k in range(100)]
    est = mean_estimate(x, n_resamples=3000, seed=1)
    sd = float(np.std(x, ddof=0))
    assert est.value == pytest.approx(np.mean(x)) and (est.high - est.low) / 2 == pytest.approx(1.96 * sd / 10, rel=0.08)
    y = [v - 0.02 for v in x]  # the same items, 0.02 lower: paired difference is exactly 0.02
    paired = mean_difference_estimate(x, y, paired=True, n_resamples=500)
    assert (paired.value, paired.low, paired.high) == pytest.approx((0.02, 0.02, 0.02))
    independent = mean_difference_estimate(x, y, paired=False, n_resamples=2000)
    assert independent.low < 0.02 < independent.high and independent.high - independent.low > 0.005
    with pytest.raises(ValueError, match="same length"):
        mean_difference_estimate(x, y[:5], paired=True)
    with pytest.raises(ValueError, match="not finite"):
        mean_estimate([1.0, float("inf")])


def test_spearman_interval_from_per_task_replicates():
    from analysis.intervals import Bootstrap

    rng = np.random.default_rng(0)
    scores = {"t1": 3.0, "t2": 2.0, "t3": 1.0, "t4": 0.0}
    # gaps grow as objectivity falls, far apart compared with their noise: ρ = -1 in every resample
    clear = {t: Bootstrap(0.1 * k, 0.1 * k + rng.normal(0, 0.005, 500), 100) for k, t in enumerate(scores)}
    est = spearman_estimate(scores, clear)
    assert (est.value, est.low, est.high, est.n) == (-1.0, -1.0, -1.0, 4)
    noisy = {t: Bootstrap(0.01 * k, 0.01 * k + rng.normal(0, 0.2, 500), 100) for k, t in enumerate(scores)}
    est = spearman_estimate(scores, noisy)
    assert est.value == -1.0 and est.low < 0 < est.high
    with pytest.raises(ValueError, match="at least 3"):
        spearman_estimate({"t1": 1.0, "t2": 0.0}, clear)
