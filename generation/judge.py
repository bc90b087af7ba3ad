"""LLM pairwise objectivity judgments: the crowd's pairwise question, answered by a language model.

For each unordered pair of tasks the model sees what a crowd worker sees on the annotation server's
pairwise page — the question "Which classification is more objective?", the definition of objectivity
(`subjlab.tasks.OBJECTIVITY_DEFINITION`), and for Task A and Task B the title, description, labels with
their descriptions and a few example texts — and is asked to answer "A" or "B". `per_pair` judgments
are made per pair, alternating which task is shown as A (position bias then cancels in the ranking).

The reply is parsed to a winner (`parse_choice`); a reply naming neither or both tasks is asked again
with a new sample index, up to `max_attempts` times, then counted as unparsed and left out (never
guessed). Each judgment is written as a `subjlab.records.Judgment` (JSON Lines) with
`study="llm-judge"`, `worker="llm:<model>"` and `extra={"source": "llm:<model>", "response": ...,
"attempt": ..., "prompt_hash": ...}`, so `subjlab rank` ranks them and the study report keeps them
apart from crowd judgments.

Backends are the generation package's (`generation.backends`): `local` (the packaged SmolLM2 or any
local chat model, batched) and `openai` (any OpenAI-compatible endpoint). Responses go through the
generation response cache, so repeating a run costs no calls. Rate limits, 5xx and timeouts are
retried with exponential backoff (or the server's Retry-After).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from generation.backends import make_backend
from generation.backends.base import Backend, ChatRequest, ChatResponse
from generation.cache import ResponseCache, request_key
from generation.prompts import Message, prompt_hash
from generation.retry import RetryPolicy, with_retries
from subjlab.records import Example, Judgment, now_iso, write_records
from subjlab.tasks import OBJECTIVITY_DEFINITION, TaskSpec

#: The study name written on LLM judgments.
LLM_STUDY = "llm-judge"
#: The question on the worker's pairwise page.
QUESTION = "Which classification is more objective?"
#: Words shown per example text at most (long reviews are cut, as the page's cards are short).
EXAMPLE_WORDS = 60


@dataclass(frozen=True)
class JudgeConfig:
    """Settings of an LLM judging run.

    backend: "local" or "openai"; model: a local model path / an endpoint's model name ("" = the
    backend's default); base_url: the OpenAI-compatible endpoint (openai). per_pair: judgments per
    unordered pair (A/B order alternates). n_examples: example texts per task. seed: example sampling,
    pair order and sampling seeds. data_dir: real data for example texts. temperature, max_tokens:
    sampling. max_attempts: tries per judgment until the reply names one task. batch_size: requests
    per backend call. max_retries: retries of a failed request (rate limits, 5xx, timeouts).
    cache: use the generation response cache.
    """

    backend: str = "local"
    model: str = ""
    base_url: str = ""
    per_pair: int = 2
    n_examples: int = 3
    seed: int = 0
    data_dir: Path | None = None
    temperature: float = 0.7
    max_tokens: int = 12
    max_attempts: int = 3
    batch_size: int = 8
    max_retries: int = 4
    cache: bool = True

    def __post_init__(self) -> None:
        if self.backend not in ("local", "openai"):
            raise ValueError(f"backend must be local or openai, got {self.backend!r}")
        for name in ("per_pair", "max_attempts", "batch_size", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_examples < 0 or self.max_retries < 0:
            raise ValueError("n_examples and max_retries must be >= 0")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")


@dataclass(frozen=True)
class JudgeSummary:
    """What a judging run did: judgments written, replies left unparsed, backend calls, time."""

    source: str
    out: Path
    written: int
    unparsed: int
    requests: int
    cache_hits: int
    seconds: float


def task_examples(task: TaskSpec, n: int, data_dir: str | Path | None = None, seed: int = 0) -> list[str]:
    """Return `n` example texts for `task`: its own `examples`, else a seeded sample of its training
    data spread over the labels. Raises FileNotFoundError when neither exists."""
    if n == 0:
        return []
    if task.examples:
        return list(task.examples[:n])
    from subjlab.data import load_split

    per_label = max(1, -(-n // len(task.labels)))
    rows = load_split(task, "train", data_dir, limit_per_label=per_label, seed=seed)
    by_label: dict[str, list[Example]] = {}
    for ex in rows:
        by_label.setdefault(str(ex.label), []).append(ex)
    rng = random.Random(f"{seed}:{task.name}")
    pools = [rng.sample(v, len(v)) for _, v in sorted(by_label.items())]
    out: list[str] = []
    while len(out) < n and any(pools):
        for pool in pools:
            if pool and len(out) < n:
                out.append(pool.pop().text)
    return out


def task_card(side: str, task: TaskSpec, examples: Sequence[str]) -> str:
    """Return the text of one task card of the pairwise page (side "A" or "B")."""
    lines = [f"Task {side}: {task.title}", task.description, "Labels:"]
    lines += [f"- {label}: {task.label_descriptions[label]}" for label in task.labels]
    if examples:
        lines.append("Example texts:")
        for text in examples:
            words = " ".join(text.split()).split(" ")
            short = " ".join(words[:EXAMPLE_WORDS]) + (" ..." if len(words) > EXAMPLE_WORDS else "")
            lines.append(f'- "{short}"')
    return "\n".join(lines)


def judge_messages(a: TaskSpec, a_examples: Sequence[str], b: TaskSpec, b_examples: Sequence[str]) -> list[Message]:
    """Return the chat messages asking which of Task A (`a`) and Task B (`b`) is more objective."""
    system = ("You are a careful crowd worker comparing two text-classification tasks. "
              "Answer with a single letter: A or B.")
    user = "\n\n".join([
        QUESTION,
        f"A classification is objective when {OBJECTIVITY_DEFINITION}",
        task_card("A", a, a_examples),
        task_card("B", b, b_examples),
        f"{QUESTION} Answer \"A\" if Task A ({a.title}) is more objective, or \"B\" if Task B ({b.title}) "
        "is more objective. Reply with the letter only.",
    ])
    return [Message("system", system), Message("user", user)]


_LEADING = re.compile(r"^\W*(?:answer\s*[:\-]?\s*)?(?:task\s+)?([AB])(?![A-Za-z])", re.IGNORECASE)
_TASK = re.compile(r"\btask\s+([AB])\b", re.IGNORECASE)
_LETTER = re.compile(r"(?<![A-Za-z])([AB])(?![A-Za-z])")
_BOTH = re.compile(r"^\W*(?:task\s+)?[AB]\W*(?:or|and|/|,|vs\.?|versus)\W*(?:task\s+)?[AB](?![A-Za-z])", re.IGNORECASE)


def parse_choice(reply: str) -> str | None:
    """Return "A" or "B" from a model reply, or None when it names neither or both.

    Accepted: a reply that starts with the letter ("B", "A.", "(A)", "Answer: B", "Task A is ..."),
    else exactly one task named ("I think Task B"), else exactly one capital letter A or B standing
    alone. The article "a" in lower case never counts; "A or B", "Task A and Task B" are no answer.
    """
    text = reply.strip()
    if _BOTH.match(text):
        return None
    m = _LEADING.match(text)
    if m and (m.group(1).isupper() or text.lower().startswith("task")):
        return m.group(1).upper()
    named = {x.upper() for x in _TASK.findall(text)}
    if len(named) == 1:
        return named.pop()
    if named:
        return None
    letters = set(_LETTER.findall(text))
    return letters.pop() if len(letters) == 1 else None


@dataclass
class _Slot:
    left: TaskSpec
    right: TaskSpec
    repeat: int
    attempt: int = 0


def judge_tasks(tasks: Sequence[TaskSpec], config: JudgeConfig, out_path: str | Path,
                backend: Backend | None = None) -> JudgeSummary:
    """Judge every pair of `tasks` `config.per_pair` times; write the judgments to `out_path`.

    Returns a JudgeSummary. Raises ValueError for fewer than 2 distinct tasks, and the backend's
    errors when a request still fails after `max_retries` retries.
    """
    return asyncio.run(judge_tasks_async(tasks, config, out_path, backend))


async def judge_tasks_async(tasks: Sequence[TaskSpec], config: JudgeConfig, out_path: str | Path,
                            backend: Backend | None = None) -> JudgeSummary:
    """Async `judge_tasks`."""
    names = [t.name for t in tasks]
    if len(set(names)) < 2 or len(set(names)) != len(names):
        raise ValueError(f"judging needs at least 2 distinct tasks, got {names}")
    start = time.perf_counter()
    examples = {t.name: task_examples(t, config.n_examples, config.data_dir, config.seed) for t in tasks}
    own = backend is None
    if backend is None:
        if config.backend == "local":
            backend = make_backend("local", model_path=config.model or None, batch_size=config.batch_size)
        else:
            backend = make_backend("openai", model=config.model or None, base_url=config.base_url or None)
    source = f"llm:{backend.model}"
    cache = ResponseCache() if config.cache else None
    slots = []
    for a, b in itertools.combinations(tasks, 2):
        for r in range(config.per_pair):
            slots.append(_Slot(a, b, r) if r % 2 == 0 else _Slot(b, a, r))
    random.Random(config.seed).shuffle(slots)
    judgments: list[Judgment] = []
    unparsed = requests = hits = 0
    try:
        pending = slots
        while pending:
            retry: list[_Slot] = []
            for chunk_start in range(0, len(pending), config.batch_size):
                chunk = pending[chunk_start : chunk_start + config.batch_size]
                reqs = [_request(s, examples, config) for s in chunk]
                replies, n_hits = await _complete(backend, reqs, cache, config.max_retries)
                requests += len(reqs) - n_hits
                hits += n_hits
                for slot, req, reply in zip(chunk, reqs, replies):
                    choice = parse_choice(reply.text)
                    if choice is None:
                        slot.attempt += 1
                        if slot.attempt < config.max_attempts:
                            retry.append(slot)
                        else:
                            unparsed += 1
                        continue
                    winner = slot.left.name if choice == "A" else slot.right.name
                    judgments.append(Judgment(
                        left=slot.left.name, right=slot.right.name, winner=winner, study=LLM_STUDY, worker=source,
                        created_at=now_iso(),
                        extra={"source": source, "backend": backend.name, "response": reply.text[:300],
                               "attempt": slot.attempt + 1, "prompt_hash": prompt_hash(req.messages)},
                    ))
            pending = retry
    finally:
        if cache is not None:
            cache.close()
        if own:
            await backend.aclose()
    if not judgments:
        raise ValueError(f"{source} named neither task in any of its {unparsed} replies; nothing to write "
                         "(try another model or a higher temperature)")
    written = write_records(out_path, judgments)
    return JudgeSummary(source=source, out=Path(out_path), written=written, unparsed=unparsed, requests=requests,
                        cache_hits=hits, seconds=time.perf_counter() - start)


def _request(slot: _Slot, examples: dict[str, list[str]], config: JudgeConfig) -> ChatRequest:
    msgs = judge_messages(slot.left, examples[slot.left.name], slot.right, examples[slot.right.name])
    sample = slot.repeat * config.max_attempts + slot.attempt
    seed = random.Random(f"{config.seed}:{slot.left.name}:{slot.right.name}:{sample}").randrange(2**31)
    return ChatRequest(messages=tuple(msgs), max_tokens=config.max_tokens, temperature=config.temperature,
                       top_p=1.0, seed=seed, sample_index=sample)


async def _complete(backend: Backend, requests: list[ChatRequest], cache: ResponseCache | None,
                    max_retries: int) -> tuple[list[ChatResponse], int]:
    """Answer requests from the cache or the backend (with retries); return (responses, cache hits).

    Raises `generation.retry.RetriesExhausted` (a BackendError) when the backend still fails after
    `max_retries` retries."""
    keys = [request_key(backend.cache_namespace or backend.name, backend.model, r) for r in requests]
    out: list[ChatResponse | None] = [cache.get(k) if cache is not None else None for k in keys]
    todo = [i for i, r in enumerate(out) if r is None]
    if todo:
        policy = RetryPolicy(max_retries=max_retries, backoff_base=1.0, backoff_max=60.0, jitter=False)
        fresh = await with_retries(lambda: backend.complete([requests[i] for i in todo]), policy)
        for i, resp in zip(todo, fresh):
            out[i] = resp
            if cache is not None:
                cache.put(keys[i], resp)
    return [r for r in out if r is not None], len(requests) - len(todo)
