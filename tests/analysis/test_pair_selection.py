"""Pair selection: balanced random baseline and active (expected drop in misordered pairs after one
more judgment, a Gaussian look-ahead)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from scipy.stats import kendalltau, norm

from analysis.pair_selection import (
    ActivePairSelector,
    balanced_random_pairs,
    judgment_information,
    shown_counts,
    suggest_pairs,
)
from analysis.ranking import BradleyTerryRanker, fit_scores, judgment_indices, win_matrix
from analysis.simulate import SimulatedCrowd, latent_scores, random_pairs
from subjlab.records import Judgment


def test_balanced_random_shows_every_ordered_pair_exactly_once_per_cycle():
    tasks = ["a", "b", "c", "d", "e"]
    pairs = balanced_random_pairs(tasks, 2 * 20, seed=1)  # two full cycles of the 20 ordered pairs
    counts = Counter(pairs)
    assert set(counts) == set(itertools.permutations(tasks, 2))
    assert set(counts.values()) == {2}
    # within one batch of at most 10 (the unordered pairs), no unordered pair repeats
    first = balanced_random_pairs(tasks, 10, seed=2)
    assert len({frozenset(p) for p in first}) == 10


def test_balanced_random_fills_the_least_shown_pairs_first():
    tasks = ["a", "b", "c"]
    counts = {p: 3 for p in itertools.permutations(tasks, 2)}
    counts[("c", "a")] = 0
    assert balanced_random_pairs(tasks, 1, seed=0, counts=counts) == [("c", "a")]
    js = [Judgment(left="a", right="b", winner="a"), Judgment(left="a", right="b", winner="b")]
    assert shown_counts(js) == {("a", "b"): 2}


def test_suggest_pairs_returns_k_valid_distinct_pairs():
    truth = latent_scores(8, seed=0)
    tasks = sorted(truth)
    js = SimulatedCrowd(truth, seed=0).judge_pairs(random_pairs(tasks, 60, seed=0))
    pairs = suggest_pairs(js, tasks, 12, seed=3)
    assert len(pairs) == 12
    assert all(a in tasks and b in tasks and a != b for a, b in pairs)
    assert len({frozenset(p) for p in pairs}) == 12
    assert suggest_pairs(js, tasks, 0) == []
    assert suggest_pairs(js, tasks, 12, seed=3) == pairs  # reproducible


def test_suggest_pairs_rejects_impossible_requests():
    js = [Judgment(left="a", right="b", winner="a")]
    with pytest.raises(ValueError, match="between 0 and 3"):
        suggest_pairs(js, ["a", "b", "c"], 4)
    with pytest.raises(ValueError, match="at least 2 tasks"):
        suggest_pairs(js, ["a"], 1)


def test_without_judgments_the_first_batch_covers_every_task():
    tasks = [f"t{i}" for i in range(10)]
    pairs = suggest_pairs([], tasks, 10, seed=0)
    assert {t for p in pairs for t in p} == set(tasks)


def test_active_asks_about_the_uncertain_close_pair_not_the_settled_far_ones():
    # Four tasks: x and y are 0.1 apart in the middle, lo and hi far away on both sides; every pair
    # has been judged 30 times with the expected outcomes. The open question is x vs y.
    truth = {"lo": -3.0, "x": -0.05, "y": 0.05, "hi": 3.0}
    js = []
    for a, b in itertools.combinations(truth, 2):
        p = 1 / (1 + np.exp(-(truth[a] - truth[b])))
        wins = int(round(30 * p))
        js += [Judgment(left=a, right=b, winner=a)] * wins + [Judgment(left=a, right=b, winner=b)] * (30 - wins)
    first = ActivePairSelector(explore=0.0).suggest(js, list(truth), 1, seed=0)[0]
    assert {first.left, first.right} == {"x", "y"}
    assert first.reason == "active" and first.gain > 0
    assert 0.35 < first.p_left < 0.65


def test_involving_restricts_suggestions_to_pairs_with_that_task():
    truth = latent_scores(6, seed=1)
    tasks = sorted(truth)
    js = SimulatedCrowd(truth, seed=1).judge_pairs(random_pairs(tasks, 80, seed=1))
    out = ActivePairSelector().suggest(js, tasks[1:], 4, seed=0, involving=tasks[0])
    assert len(out) == 4
    assert all(tasks[0] in (s.left, s.right) for s in out)
    assert len({s.left if s.right == tasks[0] else s.right for s in out}) == 4


def _judgments_to_reach(truth: dict[str, float], active: bool, target: float, cap: int) -> int:
    tasks = sorted(truth)
    true_vec = np.array([truth[t] for t in tasks])
    crowd = SimulatedCrowd(truth, seed=99)
    selector = ActivePairSelector()
    js: list[Judgment] = []
    scores = None
    batch = len(tasks)
    while len(js) < cap:
        if active:
            pairs = [(s.left, s.right) for s in selector.suggest(js, tasks, batch, len(js), scores)]
        else:
            pairs = balanced_random_pairs(tasks, batch, len(js), shown_counts(js))
        js += crowd.judge_pairs(pairs)
        scores = fit_scores(win_matrix(*judgment_indices(js, tasks), len(tasks)), initial=scores)
        if kendalltau(true_vec, scores).statistic >= target:
            break
    return len(js)


def test_active_needs_fewer_judgments_than_balanced_random_on_a_simulated_crowd():
    # 16 tasks spread N(0, 2²), 20% spammers, first round reaching τ ≥ 0.9: measured active
    # [512, 384, 576, 528] vs balanced [1216, 976, 1216, 976] judgments (ratio 0.46).
    active, balanced = [], []
    for seed in range(4):
        truth = latent_scores(16, seed, sd=2.0)
        balanced.append(_judgments_to_reach(truth, False, 0.9, 3000))
        active.append(_judgments_to_reach(truth, True, 0.9, 3000))
    assert np.mean(active) <= 0.7 * np.mean(balanced), (active, balanced)


def test_gain_is_the_expected_drop_in_misorder_probability_after_one_judgment():
    # Two tasks: the gain of judging (a, b) once more is q − E[q'] under the Gaussian posterior, where
    # the judgment moves the estimate (it may flip the order) and shrinks its variance. Checked
    # against a Monte Carlo of exactly that look-ahead.
    js = [Judgment(left="a", right="b", winner="a")] * 5 + [Judgment(left="a", right="b", winner="b")] * 4
    gain = ActivePairSelector(explore=0.0).suggest(js, ["a", "b"], 1, seed=0)[0].gain
    ranker = BradleyTerryRanker(n_bootstrap=0).fit(js)
    cov = ranker.covariance(prior_sd=2.0)
    mu = ranker.scores_["a"] - ranker.scores_["b"]
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    info = float(judgment_information(np.array([mu]), 0.1)[1][0])
    rng = np.random.default_rng(0)
    gap = rng.normal(mu, np.sqrt(var), 400_000)
    seen = gap + rng.normal(0.0, 1 / np.sqrt(info), gap.size)  # the judgment, as the Gaussian sees it
    weight = var / (var + 1 / info)
    mu_after, var_after = mu + weight * (seen - mu), var * (1 - weight)
    q_before = norm.cdf(-abs(mu) / np.sqrt(var))
    drop = q_before - norm.cdf(-np.abs(mu_after) / np.sqrt(var_after))
    assert gain == pytest.approx(drop.mean(), abs=4 * drop.std() / np.sqrt(drop.size))
    assert 0 < gain < q_before


def test_picks_between_two_recomputations_share_no_task():
    truth = latent_scores(12, seed=5)
    tasks = sorted(truth)
    js = SimulatedCrowd(truth, seed=5).judge_pairs(random_pairs(tasks, 150, seed=5))
    picks = ActivePairSelector(explore=0.0, refresh=6).suggest(js, tasks, 6, seed=1)
    assert len({t for s in picks for t in (s.left, s.right)}) == 12
    assert all(s.reason == "active" and s.gain > 0 for s in picks)


def test_pairs_beyond_the_lookahead_follow_least_compared_first():
    tasks = ["a", "b", "c", "d", "e"]
    js = SimulatedCrowd({"a": 1.0, "b": 0.5, "c": 0.0, "d": -0.5, "e": -1.0}, seed=2).judge_pairs(
        [("a", "b")] * 10 + [("b", "c")] * 10 + [("c", "d")] * 10 + [("d", "e")] * 10 + [("a", "c")] * 3)
    out = ActivePairSelector(explore=0.0, n_candidates=2).suggest(js, tasks, 10, seed=0)
    assert [s.reason for s in out] == ["active"] * 2 + ["coverage"] * 8
    assert len({frozenset((s.left, s.right)) for s in out}) == 10
    shown = Counter(frozenset((j.left, j.right)) for j in js)
    coverage = [shown[frozenset((s.left, s.right))] for s in out[2:]]
    assert coverage == sorted(coverage) and coverage[0] == 0  # never-compared pairs first


def test_bad_selector_settings_fail_loudly():
    for kwargs, match in [({"refresh": 0}, "refresh"), ({"n_candidates": 0}, "n_candidates"),
                          ({"lapse": 1.0}, "lapse"), ({"explore": 1.5}, "explore")]:
        with pytest.raises(ValueError, match=match):
            ActivePairSelector(**kwargs)
