"""Which lanes a round advances: conversations that go on, and new lanes for the labels that need texts.

A conversation goes on while it is under `max_turns` and not stalled (`stall_turns` turns in a row
without an accepted text: abandoned, counted in the summary). Lanes go to the labels that still
need texts, never more lanes to a label than texts it still needs, new lanes first to the labels
with the fewest, up to `Planner.max_lanes` a label and `conversations` in all.

"Texts it still needs" is counted in requests at the yield of the run's committed rounds (texts
written per answered lane, smoothed: (texts + 1) / (requests + 1)): when the filters keep one reply in
three, a label short of 2 texts gets lanes for 6 requests, not 2. Without this the tail of a step with
strict filters crawled one or two requests a round, and on a CPU backend a round of one request costs
nearly a full round (the demo's sms_spam zero-shot step took 19 rounds for 51 requests).
"""

from __future__ import annotations

import math
from collections import Counter

from generation.config import GenerationConfig
from generation.planning import Lane, Planner
from generation.run_summary import RunSummary


class LaneScheduler:
    """Chooses each round's lanes for one run."""

    def __init__(self, config: GenerationConfig, planner: Planner, summary: RunSummary):
        self.config = config
        self.planner = planner
        self.summary = summary
        self.labels = config.run_labels
        self.answered = 0  # lanes of committed rounds
        self.texts = 0  # texts those rounds wrote

    def observe(self, answered: int, texts: int) -> None:
        """Count a committed round: `answered` lanes, `texts` texts written."""
        self.answered += answered
        self.texts += texts

    def expected_yield(self) -> float:
        """Texts written per answered lane over the committed rounds, smoothed (no data: 1)."""
        return min(1.0, (self.texts + 1) / (self.answered + 1))

    def requests_for(self, need: int) -> int:
        """The lanes a label short of `need` texts should have: need / expected yield, rounded up."""
        return math.ceil(need / self.expected_yield() - 1e-9) if need > 0 else 0

    def going_on(self, lanes: list[Lane], need: dict[str, int]) -> list[Lane]:
        """Return the conversations that may take another turn: not at `max_turns`, not stalled
        (`stall_turns` turns in a row without an accepted text: abandoned, counted)."""
        c = self.config
        out = []
        for lane in lanes:
            conv = lane.conversation
            if conv is None or conv.turn >= c.max_turns:
                continue
            if c.stall_turns and lane.stalled >= c.stall_turns:
                if need[lane.label] > 0:
                    self.summary.abandoned_conversations += 1
                continue
            out.append(lane)
        return out

    def assign(self, going_on: list[Lane], need: dict[str, int], next_index: dict[str, int]) -> list[Lane]:
        """Return the next round's lanes: conversations in `going_on` whose label still needs texts
        (never more lanes to a label than `requests_for` its missing texts), then new lanes for the labels with the
        fewest lanes (up to `Planner.max_lanes` a label), up to `conversations` (advances `next_index`)."""
        c = self.config
        wanted = {lab: self.requests_for(need[lab]) for lab in self.labels}
        kept: list[Lane] = []
        per_label: Counter[str] = Counter()
        for lane in going_on:
            if wanted[lane.label] > per_label[lane.label]:
                kept.append(lane)
                per_label[lane.label] += 1
        while len(kept) < c.effective_conversations:
            open_labels = [lab for lab in self.labels if per_label[lab] < self.planner.max_lanes(wanted[lab])]
            if not open_labels:
                break
            lab = min(open_labels, key=lambda x: (per_label[x], self.labels.index(x)))
            kept.append(self.planner.new_lane(lab, next_index[lab]))
            next_index[lab] += 1
            per_label[lab] += 1
        return kept
