"""Prompt builders: the paper's zero-shot and few-shot generation prompts, built from a `TaskSpec`.

Zero-shot (Li et al. 2023, Sec. 3.1): one conversation per lane, one text asked for per turn.

    system     task.context                                  (persona and domain)
    user       generation_prompt(task, label)                turn 0: label, style, word limit
    assistant  <text>
    user       generation_prompt(task, label)                turns 1, 2, ...
    ...
    user       DIVERSITY_PROMPT                              every n-th turn (n = diversity_every)

The model sees what it already wrote in the same conversation. When a conversation outgrows the
model's context window, the oldest exchanges after the first instruction are dropped
(`trim_to_fit`) and the number dropped is recorded in each record's provenance (`trimmed_turns`).

Few-shot (Sec. 3.2): a fresh single-turn conversation per request: the context prompt, then k real
examples with their labels (seeded, label-balanced, `sample_demonstrations`), the generation prompt
and `IMITATION_INSTRUCTION`.

Every message is a pure function of the TaskSpec, the label, the turn and (few-shot) the sampled
demonstrations, so `subjlab generate --dry-run` prints exactly what a run sends.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from subjlab.records import Example
from subjlab.tasks import TaskSpec

#: The paper's diversity prompt, sent in the same conversation after every n generated texts.
DIVERSITY_PROMPT = "Can you provide something more diverse compared to the previously generated data?"
#: The paper's few-shot instruction.
IMITATION_INSTRUCTION = (
    "You should imitate the example I have provided, but you cannot simply modify or rewrite the "
    "example I have given"
)
#: Default n for the diversity prompt (one text is asked for per turn, so every n turns = every n texts).
DEFAULT_DIVERSITY_EVERY = 5
#: Default number of demonstrations (k) in few-shot mode.
DEFAULT_SHOTS = 4

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One chat message: role ("system", "user" or "assistant") and content."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")

    def to_dict(self) -> dict[str, str]:
        """Return the message as the Chat Completions API's {"role", "content"} dict."""
        return {"role": self.role, "content": self.content}


def messages_to_dicts(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Return the messages as a list of {"role", "content"} dicts."""
    return [m.to_dict() for m in messages]


def prompt_hash(messages: Sequence[Message]) -> str:
    """Return a short stable hash (16 hex chars of sha256) of the exact messages sent."""
    blob = json.dumps(messages_to_dicts(messages), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _check_label(task: TaskSpec, label: str) -> None:
    if label not in task.labels:
        raise ValueError(f"task {task.name!r} has no label {label!r}; labels: {', '.join(task.labels)}")


def generation_prompt(task: TaskSpec, label: str) -> str:
    """Return the data-generation prompt for one label: names the label, the style and the word limit."""
    _check_label(task, label)
    return (
        f'Write {task.style} whose label is "{label}", meaning {task.label_descriptions[label]}. '
        f"Use no more than {task.word_limit} words. Reply with the text only."
    )


def context_message(task: TaskSpec) -> Message:
    """Return the context prompt (persona and domain) as the system message."""
    return Message("system", task.context)


def is_diversity_turn(turn: int, diversity_every: int) -> bool:
    """True when turn `turn` (0-based) asks for more diversity: every n-th turn after the first.

    `diversity_every` <= 0 turns the diversity prompt off.
    """
    return diversity_every > 0 and turn > 0 and turn % diversity_every == 0


def zero_shot_user_message(task: TaskSpec, label: str, turn: int, diversity_every: int) -> Message:
    """Return the user message of zero-shot turn `turn`: the diversity prompt or the generation prompt."""
    if is_diversity_turn(turn, diversity_every):
        return Message("user", DIVERSITY_PROMPT)
    return Message("user", generation_prompt(task, label))


TokenCounter = Callable[[Sequence[Message]], int]


def trim_to_fit(messages: Sequence[Message], count_tokens: TokenCounter, budget: int) -> tuple[list[Message], int]:
    """Drop the oldest exchanges of a conversation until it fits `budget` tokens.

    `messages` is [system, first user, assistant, user, ..., assistant, current user]. The system
    message, the first user message (the instruction naming the label) and the last exchange are
    always kept; the (assistant, user) pairs after the first instruction are dropped oldest first.
    Returns (kept messages, number of exchanges dropped). Raises ValueError when even the shortest
    form does not fit.
    """
    msgs = list(messages)
    dropped = 0
    while count_tokens(msgs) > budget:
        # msgs = [sys, u0, a_i, u_{i+1}, ..., current]; drop (a_i, u_{i+1}) while an older exchange remains.
        if len(msgs) <= 4:
            raise ValueError(
                f"the prompt needs {count_tokens(msgs)} tokens but only {budget} fit the context window "
                "(context window minus max tokens): raise the context window or lower max tokens"
            )
        del msgs[2:4]
        dropped += 1
    return msgs, dropped


@dataclass
class ZeroShotConversation:
    """One zero-shot conversation for one label: the full history and the next turn to ask.

    `index` numbers the conversation among those of its label (it is the cache's sample index).
    `history` holds every message so far (never trimmed; trimming applies to what is sent).
    """

    task: TaskSpec
    label: str
    index: int
    diversity_every: int = DEFAULT_DIVERSITY_EVERY
    history: list[Message] = field(default_factory=list)
    turn: int = 0

    def __post_init__(self) -> None:
        _check_label(self.task, self.label)
        if not self.history:
            self.history = [context_message(self.task)]

    def next_messages(self, count_tokens: TokenCounter | None = None, budget: int | None = None) -> tuple[list[Message], int]:
        """Return (messages to send for the current turn, exchanges trimmed to fit `budget` tokens)."""
        msgs = self.history + [zero_shot_user_message(self.task, self.label, self.turn, self.diversity_every)]
        if count_tokens is None or budget is None:
            return msgs, 0
        return trim_to_fit(msgs, count_tokens, budget)

    def add_reply(self, reply: str) -> None:
        """Record the model's reply to the current turn and move to the next turn."""
        user = zero_shot_user_message(self.task, self.label, self.turn, self.diversity_every)
        self.history += [user, Message("assistant", reply)]
        self.turn += 1


def demonstration_rng(seed: int, task: str, label: str, index: int) -> random.Random:
    """Return the RNG for the demonstrations of few-shot request `index` of `label` (order-independent)."""
    return random.Random(f"{seed}:{task}:{label}:{index}")


def sample_demonstrations(
    pool: Mapping[str, Sequence[Example]],
    labels: Sequence[str],
    target: str,
    k: int,
    rng: random.Random,
) -> list[Example]:
    """Sample k real examples balanced across `labels` (each label gets k // L, the k % L extra go to
    the target label first, then to other labels in random order), shuffled.

    `pool` maps label -> real training examples. Raises ValueError when a label has too few examples.
    """
    if k < 1:
        raise ValueError(f"shots must be at least 1, got {k}")
    if target not in labels:
        raise ValueError(f"target label {target!r} is not among {list(labels)}")
    base, extra = divmod(k, len(labels))
    counts = {lab: base for lab in labels}
    others = [lab for lab in labels if lab != target]
    rng.shuffle(others)
    for lab in ([target] + others)[:extra]:
        counts[lab] += 1
    demos: list[Example] = []
    for lab in labels:
        available = pool.get(lab, ())
        if len(available) < counts[lab]:
            raise ValueError(
                f"few-shot needs {counts[lab]} real example(s) of label {lab!r} but the training data has {len(available)}"
            )
        demos.extend(rng.sample(list(available), counts[lab]))
    rng.shuffle(demos)
    return demos


def few_shot_messages(task: TaskSpec, label: str, demonstrations: Sequence[Example]) -> list[Message]:
    """Return the few-shot messages: context, k labeled real examples, generation prompt, imitation rule."""
    _check_label(task, label)
    if not demonstrations:
        raise ValueError("few-shot prompting needs at least one demonstration")
    lines = [f"Here are {len(demonstrations)} examples of {task.style}, each with its label:", ""]
    for i, ex in enumerate(demonstrations, start=1):
        text = " ".join(ex.text.split())
        lines.append(f"Example {i} (label: {ex.label}): {text}")
    lines += ["", generation_prompt(task, label), IMITATION_INSTRUCTION + "."]
    return [context_message(task), Message("user", "\n".join(lines))]
