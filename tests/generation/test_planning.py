"""Planning lanes: how many zero-shot conversations a label gets, so each can reach a diversity turn."""

from __future__ import annotations

import pytest

from generation.config import GenerationConfig
from generation.planning import Planner


def _planner(**kw) -> Planner:
    return Planner(GenerationConfig(task="sms_spam", **kw), None)


@pytest.mark.parametrize(
    ("settings", "turns", "lanes"),
    [
        (dict(diversity_every=2, max_turns=3), 3, {12: 4, 10: 4, 3: 1, 1: 1}),
        (dict(diversity_every=5, max_turns=20), 6, {12: 2, 13: 3, 80: 14}),
        (dict(diversity_every=5, max_turns=4), 4, {12: 3}),  # max_turns cuts before the diversity turn
        (dict(diversity_every=0, max_turns=20), 1, {12: 12}),  # no diversity prompt: one lane a text
        (dict(diversity_every=2, max_turns=1), 1, {12: 12}),  # one-turn conversations
        (dict(mode="few-shot"), 1, {12: 12}),  # few-shot requests stand alone
    ],
)
def test_zero_shot_conversations_get_room_to_reach_their_first_diversity_turn(settings, turns, lanes):
    planner = _planner(**settings)
    assert planner.conversation_turns == turns
    assert {need: planner.max_lanes(need) for need in lanes} == lanes
