"""Placing a new task on an existing objectivity scale."""

from __future__ import annotations

import pytest

from analysis.placement import Placement, place_task
from analysis.simulate import SimulatedCrowd, random_pairs
from subjlab.records import Judgment

SCALE = {"s0": -2.0, "s1": -1.2, "s2": -0.5, "s3": 0.0, "s4": 0.6, "s5": 1.3, "s6": 2.1}
NEW_SCORE = 0.95  # between s4 and s5: true rank 3 of 8
TRUE_RANK = 1 + sum(v > NEW_SCORE for v in SCALE.values())


def existing_scale(crowd: SimulatedCrowd, seed: int) -> list[Judgment]:
    return crowd.judge_pairs(random_pairs(sorted(SCALE), 400, seed=seed))


@pytest.mark.parametrize("seed", [0, 1])
def test_following_its_own_suggestions_places_a_simulated_new_task_where_it_belongs(seed):
    crowd = SimulatedCrowd(dict(SCALE, new=NEW_SCORE), seed=seed, spammer_share=0.1)
    js = existing_scale(crowd, seed)
    for round_no in range(6):  # 6 rounds of 3 suggested comparisons, each judged twice
        placement = place_task(js, "new", k=3, n_bootstrap=0, seed=round_no)
        js += crowd.judge_pairs([(s.left, s.right) for s in placement.suggestions for _ in range(2)])
    placement = place_task(js, "new", k=3, n_bootstrap=300, seed=0)
    assert isinstance(placement, Placement)
    assert placement.n == 36
    assert abs(placement.rank - TRUE_RANK) <= 1
    assert placement.rank_low <= TRUE_RANK <= placement.rank_high
    assert placement.ci_low <= placement.score <= placement.ci_high
    assert {placement.above, placement.below} <= set(SCALE)
    assert placement.n_tasks == 8


def test_neighbours_are_the_tasks_just_above_and_below():
    # A clear-cut scale a > b > c > d, and new sits between b and c.
    def beat(w, l, k):
        return [Judgment(left=w, right=l, winner=w)] * k
    js = beat("a", "b", 8) + beat("b", "c", 8) + beat("c", "d", 8) + beat("a", "c", 8) + beat("b", "d", 8)
    js += beat("b", "new", 6) + beat("new", "c", 6) + beat("a", "new", 6) + beat("new", "d", 6)
    placement = place_task(js, "new", k=2, n_bootstrap=100)
    assert (placement.above, placement.below, placement.rank) == ("b", "c", 3)
    assert len(placement.suggestions) == 2
    assert all("new" in (s.left, s.right) for s in placement.suggestions)


def test_a_task_without_judgments_gets_no_score_but_starting_comparisons():
    crowd = SimulatedCrowd(SCALE, seed=2)
    placement = place_task(existing_scale(crowd, 2), "brand_new", k=3, n_bootstrap=0)
    assert placement.score is None and placement.rank is None and placement.n == 0
    partners = [s.right if s.left == "brand_new" else s.left for s in placement.suggestions]
    assert len(set(partners)) == 3 and set(partners) <= set(SCALE)
    # the most useful first comparison is with a task near the middle of the scale, not an extreme
    assert partners[0] not in ("s0", "s6")
    d = placement.to_dict()
    assert d["score"] is None and len(d["suggestions"]) == 3


def test_placement_needs_an_existing_scale():
    js = [Judgment(left="new", right="a", winner="a")]
    with pytest.raises(ValueError, match="at least 2 existing tasks"):
        place_task(js, "new")
