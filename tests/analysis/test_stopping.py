"""Stopping rule: P(current order within Kendall τ ≥ τ* of the settled order), its calibration on
simulated crowds, the verdict, and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import ndtr

from analysis.ranking import BradleyTerryRanker
from analysis.simulate import SimulatedCrowd, latent_scores, random_pairs
from analysis.stopping import StoppingRule, allowed_misordered
from subjlab.records import Judgment


def judge(left: str, right: str, winner: str, times: int = 1) -> list[Judgment]:
    return [Judgment(left=left, right=right, winner=winner) for _ in range(times)]


def misordered_against(truth: dict[str, float], order: list[str]) -> int:
    """Pairs of `order` (most objective first) that the latent scores put the other way round."""
    return sum(truth[a] < truth[b] for a, b in itertools.combinations(order, 2))


def test_allowed_misordered_is_the_kendall_distance_budget_of_tau_star():
    assert allowed_misordered(10, 0.9) == 2  # τ = 1 − 2·2/45 = 0.911; 3 misordered: 0.867
    assert allowed_misordered(50, 0.9) == 61  # 1225 pairs
    assert allowed_misordered(10, 1.0) == 0
    assert allowed_misordered(4, 0.0) == 3  # 6 pairs: τ ≥ 0 allows half of them


def test_two_tasks_p_settled_is_one_minus_the_gaussian_misorder_probability():
    js = judge("A", "B", "A", 7) + judge("A", "B", "B", 3)
    ranker = BradleyTerryRanker(n_bootstrap=0).fit(js)
    cov = ranker.covariance(prior_sd=2.0)
    gap = ranker.scores_["A"] - ranker.scores_["B"]
    q = float(ndtr(-gap / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])))
    rule = StoppingRule(n_draws=20_000, seed=1).fit(js)
    assert rule.tasks_ == ["A", "B"]
    assert rule.expected_misordered_ == pytest.approx(q, rel=1e-9)
    # with 2 tasks τ ≥ 0.9 means no pair misordered: p = 1 − q up to Monte Carlo error (sd ≤ 0.0035)
    assert rule.p_settled_ == pytest.approx(1 - q, abs=0.012)
    report = rule.report()
    assert report.open_pairs[0].above == "A" and report.open_pairs[0].p_misordered == pytest.approx(q)


def test_more_judgments_from_the_same_crowd_settle_the_ranking():
    truth = latent_scores(6, seed=4, sd=1.5)
    crowd = SimulatedCrowd(truth, seed=4, position_bias=0.3)
    js = crowd.judge_pairs(random_pairs(sorted(truth), 60, seed=4))
    few = StoppingRule(seed=0).fit(js)
    js += crowd.judge_pairs(random_pairs(sorted(truth), 3000, seed=5))
    many = StoppingRule(seed=0).fit(js)
    assert few.p_settled_ < 0.5 < 0.9 < many.p_settled_
    assert many.expected_misordered_ < few.expected_misordered_
    assert not few.can_stop_ and many.can_stop_
    assert few.report().verdict().startswith("Keep collecting")
    assert many.report().verdict().startswith("You can stop")


def _calibration_rows(n_studies: int) -> np.ndarray:
    """(p_settled, true τ ≥ 0.8, expected misordered, true misordered) for simulated studies of 10
    tasks (latent N(0, 1.5²), 30 workers of whom 20% click at random, position bias 0.3) after 100,
    400 and 1500 random judgments, with τ* = 0.8 (at most 4 of the 45 pairs misordered)."""
    rows = []
    for seed in range(n_studies):
        truth = latent_scores(10, seed, sd=1.5)
        tasks = sorted(truth)
        crowd = SimulatedCrowd(truth, seed=500 + seed, position_bias=0.3)
        js: list[Judgment] = []
        for m in (100, 400, 1500):
            js += crowd.judge_pairs(random_pairs(tasks, m - len(js), seed + m))
            rule = StoppingRule(tau=0.8, n_draws=1000, seed=seed).fit(js)
            wrong = misordered_against(truth, rule.tasks_)
            rows.append((rule.p_settled_, wrong <= rule.allowed_misordered_, rule.expected_misordered_, wrong))
    return np.array(rows, dtype=float)


def test_p_settled_is_calibrated_against_the_latent_order_on_simulated_crowds():
    rows = _calibration_rows(120)
    p, settled, expected, wrong = rows.T
    confident = p >= 0.9
    # When the rule says P ≥ 0.9, the order is within τ* of the latent one about that often; the
    # tolerance is 2 binomial standard errors of a share of 0.9 over the confident studies.
    assert confident.sum() >= 80
    tolerance = 2 * np.sqrt(0.9 * 0.1 / confident.sum())
    assert settled[confident].mean() >= 0.9 - tolerance, (confident.sum(), settled[confident].mean())
    # Reliability: in each band of p, the mean p matches the observed share (not merely conservative).
    for low, high in [(0.0, 0.3), (0.3, 0.7), (0.7, 0.9), (0.9, 1.01)]:
        band = (p >= low) & (p < high)
        assert band.sum() >= 30, (low, high, band.sum())
        assert abs(p[band].mean() - settled[band].mean()) <= 0.1, (low, high, p[band].mean(), settled[band].mean())
    # The expected number of misordered pairs matches the number actually misordered.
    assert expected.mean() == pytest.approx(wrong.mean(), rel=0.15)


def test_a_disconnected_ranking_is_not_settled_across_its_pieces():
    js = judge("A", "B", "A", 30) + judge("C", "D", "C", 30)
    with pytest.warns(RuntimeWarning, match="disconnected"):
        rule = StoppingRule().fit(js)
    top = rule.report().open_pairs[0]
    assert {top.above, top.below} <= {"A", "B", "C", "D"} and top.p_misordered > 0.3
    assert rule.p_settled_ < 0.5 and not rule.can_stop_


def test_reusing_a_fitted_ranker_gives_the_same_answer_as_fitting_again():
    truth = latent_scores(7, seed=2)
    js = SimulatedCrowd(truth, seed=2).judge_pairs(random_pairs(sorted(truth), 300, seed=2))
    direct = StoppingRule(seed=3).fit(js).report()
    reused = StoppingRule(seed=3).fit(js, ranker=BradleyTerryRanker(n_bootstrap=20).fit(js)).report()
    assert reused == direct
    d = direct.to_dict()
    assert set(d) >= {"tau", "stop_at", "p_settled", "can_stop", "expected_misordered", "allowed_misordered",
                      "n_pairs", "expected_tau", "open_pairs"}
    assert d["n_pairs"] == 21 and d["n_judgments"] == 300
    assert d["expected_tau"] == pytest.approx(1 - 2 * d["expected_misordered"] / 21)
    # the array entry point of simulations gives the same assessment from the fitted arrays
    ranker = BradleyTerryRanker(n_bootstrap=0).fit(js)
    scores = np.array([ranker.scores_[t] for t in ranker.tasks_])
    arrays = StoppingRule(seed=3).fit_arrays(ranker.tasks_, scores, ranker.wins_).report()
    assert arrays == direct
    with pytest.raises(ValueError, match="must match 7 tasks"):
        StoppingRule().fit_arrays(ranker.tasks_, scores[:6], ranker.wins_)


def test_stop_at_decides_the_verdict_and_tau_star_the_budget():
    truth = latent_scores(6, seed=7)
    js = SimulatedCrowd(truth, seed=7).judge_pairs(random_pairs(sorted(truth), 400, seed=7))
    p = StoppingRule().fit(js).p_settled_
    assert 0.05 < p < 0.95
    assert StoppingRule(stop_at=p - 0.01).fit(js).can_stop_
    assert not StoppingRule(stop_at=p + 0.01).fit(js).can_stop_
    loose = StoppingRule(tau=0.5).fit(js)
    assert loose.allowed_misordered_ == 3 and loose.p_settled_ > p


def test_bad_parameters_and_mismatched_rankers_fail_loudly():
    for kwargs, match in [({"tau": 1.5}, "tau"), ({"tau": -1.0}, "tau"), ({"stop_at": 1.0}, "stop_at"),
                          ({"stop_at": 0.0}, "stop_at"), ({"n_draws": 10}, "n_draws"), ({"prior_sd": 0.0}, "prior_sd"),
                          ({"alpha": 0.0}, "alpha"), ({"n_open": -1}, "n_open")]:
        with pytest.raises(ValueError, match=match):
            StoppingRule(**kwargs)
    with pytest.raises(ValueError, match="not fitted"):
        StoppingRule().report()
    js = judge("A", "B", "A", 3) + judge("B", "C", "C", 2)
    with pytest.raises(ValueError, match="winner 'D'"):
        StoppingRule().fit(js + [Judgment(left="A", right="B", winner="D")])
    with pytest.raises(ValueError, match="alpha"):
        StoppingRule().fit(js, ranker=BradleyTerryRanker(alpha=1.0, n_bootstrap=0).fit(js))
    with pytest.raises(ValueError, match="fitted on 5 judgments, not these 4"):
        StoppingRule().fit(js[:4], ranker=BradleyTerryRanker(n_bootstrap=0).fit(js))
    with pytest.raises(ValueError, match="not fitted"):
        StoppingRule().fit(js, ranker=BradleyTerryRanker())
