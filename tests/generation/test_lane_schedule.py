"""`generation.lane_schedule.LaneScheduler`: which lanes a round advances."""

from __future__ import annotations

from collections import Counter

from generation.config import GenerationConfig
from generation.lane_schedule import LaneScheduler
from generation.planning import Planner
from generation.run_summary import RunSummary


def _scheduler(**kw) -> tuple[LaneScheduler, RunSummary]:
    config = GenerationConfig(task="sms_spam", **kw)
    summary = RunSummary(task="sms_spam", mode=config.mode, backend="test", model="m", out="x", per_label_target=1,
                         per_label={})
    return LaneScheduler(config, Planner(config, None), summary), summary


def test_no_label_gets_more_lanes_than_texts_it_needs_and_new_lanes_go_to_the_fewest():
    scheduler, _ = _scheduler(diversity_every=0, conversations=4)  # one turn a lane: a lane per text
    next_index = {"ham": 0, "spam": 0}
    lanes = scheduler.assign([], {"ham": 1, "spam": 5}, next_index)
    assert Counter(lane.label for lane in lanes) == {"ham": 1, "spam": 3}
    assert [lane.label for lane in lanes] == ["ham", "spam", "spam", "spam"]  # the emptier label first
    assert next_index == {"ham": 1, "spam": 3}
    kept = scheduler.assign(lanes, {"ham": 0, "spam": 2}, next_index)
    assert [(lane.label, lane.index) for lane in kept] == [("spam", 0), ("spam", 1)]  # ham is done


def test_a_stalled_conversation_is_abandoned_and_counted_only_while_its_label_needs_texts():
    scheduler, summary = _scheduler(stall_turns=2, max_turns=5)
    next_index = {"ham": 0, "spam": 0}
    ham, spam = scheduler.assign([], {"ham": 1, "spam": 1}, next_index)
    for lane in (ham, spam):
        lane.conversation.add_reply("a reply")  # one turn taken, nothing accepted twice in a row
        lane.stalled = 2
    going_on = scheduler.going_on([ham, spam], {"ham": 1, "spam": 0})
    assert going_on == [] and summary.abandoned_conversations == 1  # spam needed nothing: not counted
    ham.stalled = 1
    assert scheduler.going_on([ham], {"ham": 1, "spam": 0}) == [ham]


def test_lanes_follow_the_yield_of_committed_rounds():
    scheduler, _ = _scheduler(diversity_every=0, conversations=16)
    assert scheduler.expected_yield() == 1.0 and scheduler.requests_for(2) == 2  # no round yet: a lane per text
    scheduler.observe(answered=11, texts=3)  # the filters kept about one reply in three
    assert scheduler.expected_yield() == 4 / 12
    assert scheduler.requests_for(2) == 6 and scheduler.requests_for(0) == 0
    lanes = scheduler.assign([], {"ham": 2, "spam": 1}, {"ham": 0, "spam": 0})
    assert Counter(lane.label for lane in lanes) == {"ham": 6, "spam": 3}
    scheduler.observe(answered=100, texts=100)  # every reply kept from then on: back towards a lane per text
    assert scheduler.requests_for(2) == 3
