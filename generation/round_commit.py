"""Committing a round: responses parsed into candidate texts, filtered, and each clean text kept
while its label still needs texts, in lane order, as provenance-carrying `Example` records.

Records: `{"id": "<task>:<mode>:<label>:<n>", "text", "label", "task", "mode", "backend", "model",
"prompt_hash", "demonstration_ids", "conversation", "conversation_turn", "item", "trimmed_turns",
"seed", "created_at"}`. A text's origin (label, conversation, turn, item) is what a resumed run
recognises it by (`record_origin`).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from generation.backends.base import Backend, ChatResponse
from generation.config import GenerationConfig
from generation.filters import TextFilter
from generation.parsing import parse_response
from generation.planning import Lane, PlannedRequest
from generation.run_summary import RunSummary
from subjlab.records import Example, now_iso

#: (label, conversation, turn, item): where a text came from.
Origin = tuple[str, int, int, int]


def record_origin(rec: Example) -> Origin | None:
    """Where a written record came from, or None for a record without that provenance."""
    try:
        return (str(rec.label), int(rec.extra["conversation"]), int(rec.extra["conversation_turn"]), int(rec.extra["item"]))
    except (KeyError, TypeError, ValueError):
        return None


class RoundCommitter:
    """Decides which texts of each round are kept, and builds their records."""

    def __init__(self, config: GenerationConfig, backend: Backend, text_filter: TextFilter, summary: RunSummary):
        self.config = config
        self.backend = backend
        self.filter = text_filter
        self.summary = summary
        self.target = config.per_label

    def commit_round(self, lanes: list[Lane], planned: list[PlannedRequest], responses: list[ChatResponse | None],
                     origins: set[Origin], tracked: Counter[str], file_count: Counter[str]) -> list[Example]:
        """Parse, filter and accept a round's responses in lane order; return the records to write.
        A conversation's stall count grows by one for a turn without an accepted text, else resets.

        origins: texts an earlier run of this command wrote; tracked: texts accepted per label
        (those origins included); file_count: texts in the output per label (both updated)."""
        done = [(lane, p, r, parse_response(r.text)) for lane, p, r in zip(lanes, planned, responses) if r is not None]
        self.filter.prepare(
            [t for _, _, _, cands in done for t in cands], [d.text for _, p, _, _ in done for d in p.demonstrations]
        )
        records: list[Example] = []
        for lane, p, resp, candidates in done:
            if p.conversation is not None:
                p.conversation.add_reply(resp.text)
            accepted = self._commit(p, candidates, origins, tracked, file_count, records)
            lane.stalled = 0 if accepted else lane.stalled + 1
        return records

    def _commit(self, p: PlannedRequest, candidates: Sequence[str], origins: set[Origin], tracked: Counter[str],
                file_count: Counter[str], records: list[Example]) -> int:
        """Decide each candidate of one response (records to write go to `records`); return how many
        passed the filters (or were written by an earlier run of this command)."""
        accepted = 0
        demo_texts = [d.text for d in p.demonstrations]
        for item, text in enumerate(candidates):
            self.summary.candidates += 1
            if (p.label, p.index, p.turn, item) in origins:
                tracked[p.label] += 1  # written by an earlier run of this command
                accepted += 1
                continue
            if tracked[p.label] >= self.target:
                self.summary.surplus += 1
                continue
            if self.filter.check(text, demo_texts) is not None:
                continue
            accepted += 1
            if file_count[p.label] >= self.target:
                self.summary.surplus += 1
                continue
            self.filter.add(text)
            records.append(self._record(p, item, text, file_count[p.label]))
            tracked[p.label] += 1
            file_count[p.label] += 1
        return accepted

    def _record(self, p: PlannedRequest, item: int, text: str, n: int) -> Example:
        c = self.config
        return Example(
            id=f"{c.spec.name}:{c.mode}:{p.label}:{n}",
            text=text,
            label=p.label,
            extra={
                "task": c.spec.name,
                "mode": c.mode,
                "backend": self.backend.name,
                "model": self.backend.model,
                "prompt_hash": p.prompt_hash,
                "demonstration_ids": [d.id for d in p.demonstrations],
                "conversation": p.index,
                "conversation_turn": p.turn,
                "item": item,
                "trimmed_turns": p.trimmed_turns,
                "seed": c.seed,
                "created_at": now_iso(),
            },
        )
