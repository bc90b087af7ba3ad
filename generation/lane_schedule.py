"""Which lanes a round advances: conversations that go on, and new lanes for the labels that need texts.

A conversation goes on while it is under `max_turns` and not stalled (`stall_turns` turns in a row
without an accepted text: abandoned, counted in the summary). Lanes go to the labels that still
need texts, never more lanes to a label than texts it still needs, new lanes first to the labels
with the fewest, up to `Planner.max_lanes` a label and `conversations` in all.
"""

from __future__ import annotations

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
        (never more lanes to a label than texts it needs), then new lanes for the labels with the
        fewest lanes (up to `Planner.max_lanes` a label), up to `conversations` (advances `next_index`)."""
        c = self.config
        kept: list[Lane] = []
        per_label: Counter[str] = Counter()
        for lane in going_on:
            if need[lane.label] > per_label[lane.label]:
                kept.append(lane)
                per_label[lane.label] += 1
        while len(kept) < c.effective_conversations:
            open_labels = [lab for lab in self.labels if per_label[lab] < self.planner.max_lanes(need[lab])]
            if not open_labels:
                break
            lab = min(open_labels, key=lambda x: (per_label[x], self.labels.index(x)))
            kept.append(self.planner.new_lane(lab, next_index[lab]))
            next_index[lab] += 1
            per_label[lab] += 1
        return kept
