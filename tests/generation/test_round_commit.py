"""`generation.round_commit`: a round's clean texts become records that carry their origin, which a
resumed run recognises them by."""

from __future__ import annotations

from collections import Counter

from generation.backends.base import ChatResponse
from generation.config import GenerationConfig
from generation.filters import TextFilter
from generation.planning import Planner
from generation.round_commit import RoundCommitter, record_origin
from generation.run_summary import RunSummary
from subjlab.records import Example

REPLY = "1. Win a free cruise today, just reply YES to claim it\n2. Your loan is approved, call now to get the cash"


class _Backend:
    name, model = "test", "m"


def _round(per_label: int):
    config = GenerationConfig(task="sms_spam", per_label=per_label, near_duplicate_threshold=None)
    summary = RunSummary(task="sms_spam", mode=config.mode, backend="test", model="m", out="x",
                         per_label_target=per_label, per_label={})
    committer = RoundCommitter(config, _Backend(), TextFilter(config.filter_settings()), summary)
    planner = Planner(config, None)
    lane = planner.new_lane("spam", 3)
    return committer, summary, lane, planner.plan(lane)


def test_each_clean_text_of_a_reply_becomes_a_record_with_its_origin_until_the_label_is_full():
    committer, summary, lane, planned = _round(per_label=1)
    tracked, file_count = Counter(), Counter()
    records = committer.commit_round([lane], [planned], [ChatResponse(REPLY, 10, 20)], set(), tracked, file_count)
    assert [r.text for r in records] == ["Win a free cruise today, just reply YES to claim it"]
    (rec,) = records
    assert rec.id == "sms_spam:zero-shot:spam:0" and record_origin(rec) == ("spam", 3, 0, 0)
    assert rec.extra["backend"] == "test" and rec.extra["conversation_turn"] == 0
    assert summary.candidates == 2 and summary.surplus == 1 and file_count["spam"] == 1 and lane.stalled == 0


def test_a_text_an_earlier_run_wrote_is_counted_not_written_again():
    committer, _, lane, planned = _round(per_label=2)
    tracked, file_count = Counter(), Counter({"spam": 1})
    records = committer.commit_round([lane], [planned], [ChatResponse(REPLY, 10, 20)], {("spam", 3, 0, 0)},
                                     tracked, file_count)
    assert [record_origin(r) for r in records] == [("spam", 3, 0, 1)]
    assert records[0].id == "sms_spam:zero-shot:spam:1" and tracked["spam"] == 2 and file_count["spam"] == 2
    assert record_origin(Example(id="x", text="t", label="spam")) is None
