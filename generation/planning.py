"""Planning a generation run's requests: lanes (zero-shot conversations or few-shot samples) and
the exact request each lane sends next, with its provenance.

A request depends only on the run's settings, the lane's place (label, index, turn) and, in a
conversation, the replies before it, so planning the same lane twice gives the same request
(what the engine relies on to replay from the cache and to match requests sent ahead).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from generation.backends.base import Backend, ChatRequest, ChatResponse
from generation.config import GenerationConfig
from generation.prompts import (
    Message,
    ZeroShotConversation,
    demonstration_rng,
    few_shot_messages,
    prompt_hash,
    sample_demonstrations,
)
from subjlab.records import Example

__all__ = ["Lane", "PlannedRequest", "Planner", "load_pool", "next_turn", "preview_requests", "request_seed"]


def request_seed(seed: int, task: str, label: str, index: int, turn: int) -> int:
    """Return the sampling seed of one request (31 bits), derived from the run seed and its place."""
    digest = hashlib.sha256(f"{seed}:{task}:{label}:{index}:{turn}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass
class PlannedRequest:
    """One request of a round with its provenance."""

    label: str
    index: int  #: conversation index (zero-shot) or sample index (few-shot) within the label
    turn: int
    request: ChatRequest
    prompt_hash: str
    trimmed_turns: int = 0
    demonstrations: list[Example] = field(default_factory=list)
    conversation: ZeroShotConversation | None = None


@dataclass
class Lane:
    """A line of work of a run: one zero-shot conversation of a label, or (few-shot, no
    conversation) one sample index."""

    label: str
    index: int
    conversation: ZeroShotConversation | None = None
    stalled: int = 0  #: turns in a row without an accepted text


def load_pool(config: GenerationConfig) -> dict[str, list[Example]]:
    """Return the real training examples of the config's task by label (few-shot demonstrations)."""
    from subjlab.data import load_split

    examples = load_split(config.spec, "train", config.data_dir)
    pool: dict[str, list[Example]] = {lab: [] for lab in config.spec.labels}
    for ex in examples:
        pool[str(ex.label)].append(ex)
    return pool


class Planner:
    """Builds the requests of lanes: conversations (zero-shot) or demonstration sampling (few-shot)."""

    def __init__(self, config: GenerationConfig, backend: Backend | None):
        self.config = config
        self.backend = backend
        self.pool = load_pool(config) if config.mode == "few-shot" else {}
        window = config.context_window or (backend.context_window if backend is not None else None)
        self.budget = None if window is None else window - config.effective_max_tokens
        if self.budget is not None and self.budget < 1:
            raise ValueError(f"max tokens ({config.effective_max_tokens}) do not fit the context window ({window})")

    @property
    def conversation_turns(self) -> int:
        """Turns a new zero-shot conversation is given room for before its label opens another:
        up to and including its first diversity turn, min(max_turns, diversity_every + 1); 1 in
        few-shot mode or with the diversity prompt off."""
        c = self.config
        if c.mode != "zero-shot" or c.diversity_every <= 0:
            return 1
        return min(c.max_turns, c.diversity_every + 1)

    def max_lanes(self, need: int) -> int:
        """The most lanes a label that still needs `need` texts may have when new ones are opened:
        ceil(need / conversation_turns), so that every zero-shot conversation can reach a diversity
        turn (as many as `need` would give each one turn, and the diversity prompt would never be
        sent in a run of few texts per label)."""
        return -(-need // self.conversation_turns)

    def new_lane(self, label: str, index: int) -> Lane:
        """Return a fresh lane: conversation `index` of `label` (zero-shot) or sample `index`."""
        c = self.config
        conv = ZeroShotConversation(c.spec, label, index, c.diversity_every) if c.mode == "zero-shot" else None
        return Lane(label, index, conv)

    def plan(self, lane: Lane) -> PlannedRequest:
        """Return the lane's next request (zero-shot: trimmed to the context window; few-shot:
        with its seeded demonstrations). Raises ValueError when a few-shot prompt cannot fit."""
        c = self.config
        if lane.conversation is not None:
            counter = self.backend.count_tokens if self.backend is not None and self.budget is not None else None
            msgs, trimmed = lane.conversation.next_messages(counter, self.budget)
            turn = lane.conversation.turn
            demos: list[Example] = []
        else:
            rng = demonstration_rng(c.seed, c.spec.name, lane.label, lane.index)
            demos = sample_demonstrations(self.pool, c.spec.labels, lane.label, c.shots, rng)
            msgs, trimmed, turn = few_shot_messages(c.spec, lane.label, demos), 0, 0
            if self.backend is not None and self.budget is not None:
                need = self.backend.count_tokens(msgs)
                if need > self.budget:
                    raise ValueError(
                        f"a few-shot prompt needs {need} tokens but {self.budget} fit the context window: use fewer --shots"
                    )
        request = ChatRequest(
            messages=tuple(msgs),
            max_tokens=c.effective_max_tokens,
            temperature=c.temperature,
            top_p=c.top_p,
            seed=request_seed(c.seed, c.spec.name, lane.label, lane.index, turn),
            sample_index=lane.index,
        )
        return PlannedRequest(lane.label, lane.index, turn, request, prompt_hash(msgs), trimmed, demos, lane.conversation)


def preview_requests(config: GenerationConfig) -> list[PlannedRequest]:
    """Return the first request of each label exactly as a run would send it (no backend is used,
    so no trimming applies; few-shot demonstrations are sampled from the real training data)."""
    planner = Planner(config, None)
    return [planner.plan(planner.new_lane(label, 0)) for label in config.run_labels]


def next_turn(lane: Lane, history: list[Message], turn: int, reply: ChatResponse) -> Lane:
    """A copy of a conversation lane (as it was at `turn`, with `history`) one reply further on."""
    conv = lane.conversation
    assert conv is not None
    copy = ZeroShotConversation(conv.task, conv.label, conv.index, conv.diversity_every, history=list(history), turn=turn)
    copy.add_reply(reply.text)
    return Lane(lane.label, lane.index, copy)
