"""The generation engine: prompts -> backend -> parsing -> filters -> an append-only, resumable output.

Python API (stable; the study runner and `subjlab generate` call it):

    from generation.engine import GenerationConfig, generate

    summary = generate(GenerationConfig(task="sms_spam", mode="zero-shot", per_label=100), "spam.jsonl")
    print(summary.per_label, summary.requests, summary.filters)

- `generate(config, out_path, backend=None) -> RunSummary` (sync) and `generate_async(...)`: run
  until `config.per_label` clean texts exist for every label in `out_path`, or the request budget
  is spent. A `Backend` instance may be passed in (it is then not closed); else one is built from
  the config (`build_backend`). The summary is also written to `<out>.summary.json`.
- `preview_requests(config) -> list[PlannedRequest]`: the first request of each label, exactly as
  it would be sent (what `subjlab generate --dry-run` prints); calls nothing.
- Errors: `GenerationError` (retries exhausted, a request refused), `BackendAuthError` (401/403),
  ValueError/FileNotFoundError for bad settings or files.

How a run proceeds. Work is done in rounds. Each round advances up to `conversations` lanes by one
request each: in zero-shot mode a lane is a conversation of one label (turn by turn, the diversity
prompt every n turns, a new conversation after `max_turns`); in few-shot mode each request is new,
with its own seeded demonstrations. Lanes go to the labels that still need texts, never more lanes
to a label than texts it still needs. The round's requests are answered from the response cache
or sent to the backend (at most `concurrency` at once; in batches for the local backend; as one
Batch API job for "openai-batch"), with
retries (exponential backoff with jitter, or the server's Retry-After) on rate limits, 5xx,
timeouts and malformed bodies; 401/403 stop the run at once. Responses are then committed in lane
order: parsed into candidate texts, filtered, and each clean text appended to the output
(fsync'd) while its label still needs texts.

Determinism and resume. A conversation's requests depend only on (task, label, conversation
index, turn, seed) and the replies before them, and commits happen in a fixed order, so a run is a
function of its responses. Re-running the same command after a crash (kill -9) replays the
finished requests from the response cache (free), skips the texts already in the output (by
their origin: label, conversation, turn, item) and continues exactly where the run stopped: the
same ids, no duplicates, nothing lost, the exact count. With the cache off (`--no-cache`) a resumed
run starts new conversations after the ones in the file instead.

Records: `{"id": "<task>:<mode>:<label>:<n>", "text", "label", "task", "mode", "backend", "model",
"prompt_hash", "demonstration_ids", "conversation", "conversation_turn", "item", "trimmed_turns",
"seed", "created_at"}`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from generation.backends import make_backend
from generation.backends.base import Backend, BackendAuthError, BackendError, ChatRequest, ChatResponse, RetryableError
from generation.cache import ResponseCache, request_key
from generation.config import GenerationConfig, RunSummary
from generation.filters import TextFilter
from generation.output import OutputWriter, load_output
from generation.parsing import parse_response
from generation.pricing import price_for
from generation.prompts import (
    Message,
    ZeroShotConversation,
    demonstration_rng,
    few_shot_messages,
    prompt_hash,
    sample_demonstrations,
)
from subjlab.records import Example, now_iso

__all__ = [
    "GenerationConfig",
    "GenerationError",
    "PlannedRequest",
    "RunSummary",
    "build_backend",
    "generate",
    "generate_async",
    "preview_requests",
    "summary_path",
]


class GenerationError(RuntimeError):
    """The run stopped: a request failed after all retries, or the backend refused it."""


def summary_path(out_path: str | Path) -> Path:
    """Return where the run summary of `out_path` is written: `<out>.summary.json`."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".summary.json")


def request_seed(seed: int, task: str, label: str, index: int, turn: int) -> int:
    """Return the sampling seed of one request (31 bits), derived from the run seed and its place."""
    digest = hashlib.sha256(f"{seed}:{task}:{label}:{index}:{turn}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def build_backend(config: GenerationConfig) -> Backend:
    """Build the backend a config names (loads the local model, or opens the OpenAI client)."""
    if config.backend == "local":
        return make_backend(
            "local",
            model_path=config.model,
            batch_size=config.concurrency,
            context_window=config.context_window,
            threads=config.threads,
        )
    if config.backend == "openai":
        return make_backend(
            "openai",
            model=config.model,
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.request_timeout,
            context_window=config.context_window,
        )
    if config.backend == "openai-batch":
        return make_backend(
            "openai-batch",
            model=config.model,
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.request_timeout,
            context_window=config.context_window,
            poll_interval=config.batch_poll_interval,
            # running batches are remembered beside the response cache
            state_path=None if config.cache_path is None else Path(config.cache_path).with_name("batches.json"),
        )
    return make_backend(config.backend)


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
class _Lane:
    label: str
    index: int
    conversation: ZeroShotConversation | None = None


def _load_pool(config: GenerationConfig) -> dict[str, list[Example]]:
    from subjlab.data import load_split

    examples = load_split(config.spec, "train", config.data_dir)
    pool: dict[str, list[Example]] = {lab: [] for lab in config.spec.labels}
    for ex in examples:
        pool[str(ex.label)].append(ex)
    return pool


class _Planner:
    """Builds the requests of lanes: conversations (zero-shot) or demonstration sampling (few-shot)."""

    def __init__(self, config: GenerationConfig, backend: Backend | None):
        self.config = config
        self.backend = backend
        self.pool = _load_pool(config) if config.mode == "few-shot" else {}
        window = config.context_window or (backend.context_window if backend is not None else None)
        self.budget = None if window is None else window - config.effective_max_tokens
        if self.budget is not None and self.budget < 1:
            raise ValueError(f"max tokens ({config.effective_max_tokens}) do not fit the context window ({window})")

    def new_lane(self, label: str, index: int) -> _Lane:
        c = self.config
        conv = ZeroShotConversation(c.spec, label, index, c.diversity_every) if c.mode == "zero-shot" else None
        return _Lane(label, index, conv)

    def plan(self, lane: _Lane) -> PlannedRequest:
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
    planner = _Planner(config, None)
    return [planner.plan(planner.new_lane(label, 0)) for label in config.run_labels]


def _origin(rec: Example) -> tuple[str, int, int, int] | None:
    try:
        return (str(rec.label), int(rec.extra["conversation"]), int(rec.extra["conversation_turn"]), int(rec.extra["item"]))
    except (KeyError, TypeError, ValueError):
        return None


class _Run:
    def __init__(self, config: GenerationConfig, out_path: Path, backend: Backend):
        self.config = config
        self.out_path = out_path
        self.backend = backend
        self.labels = config.run_labels
        self.target = config.per_label
        self.planner = _Planner(config, backend)
        self.filter = TextFilter(config.filter_settings())
        self.cache = ResponseCache(config.cache_path) if config.cache else None
        self.namespace = backend.cache_namespace or backend.name
        self.semaphore = asyncio.Semaphore(1 if backend.max_batch > 1 else config.concurrency)
        self.jitter = random.Random()
        self.budget = config.effective_max_requests
        self.price = price_for(backend.name, backend.model, config.price_in, config.price_out)
        self.summary = RunSummary(
            task=config.spec.name,
            mode=config.mode,
            backend=backend.name,
            model=backend.model,
            out=str(out_path),
            per_label_target=self.target,
            per_label={lab: 0 for lab in self.labels},
            config=config.to_dict(),
        )

    # -- backend calls ----------------------------------------------------------------------
    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after * (1.0 + 0.1 * self.jitter.random())
        base = min(self.config.backoff_max, self.config.backoff_base * (2**attempt))
        return base * (0.5 + 0.5 * self.jitter.random())

    async def _send(self, chunk: list[PlannedRequest], keys: list[str | None]) -> list[ChatResponse]:
        async with self.semaphore:
            attempt = 0
            while True:
                try:
                    responses = await self.backend.complete([p.request for p in chunk])
                    break
                except RetryableError as exc:
                    if attempt >= self.config.max_retries:
                        raise GenerationError(f"gave up after {attempt + 1} attempts: {exc}") from None
                    self.summary.retries += 1
                    await asyncio.sleep(self._delay(attempt, exc.retry_after))
                    attempt += 1
                except BackendAuthError:
                    raise
                except BackendError as exc:
                    raise GenerationError(str(exc)) from None
        if len(responses) != len(chunk):
            raise GenerationError(f"the backend returned {len(responses)} responses for {len(chunk)} requests")
        self.summary.requests += len(chunk)
        for resp, key in zip(responses, keys):
            self.summary.tokens_in += resp.tokens_in
            self.summary.tokens_out += resp.tokens_out
            if self.cache is not None and key is not None:
                self.cache.put(key, resp)
        return responses

    async def _fetch(self, planned: list[PlannedRequest]) -> tuple[list[ChatResponse | None], bool]:
        """Answer the round from the cache or the backend; returns (responses, budget_cut)."""
        responses: list[ChatResponse | None] = [None] * len(planned)
        keys: list[str | None] = [None] * len(planned)
        misses: list[int] = []
        for i, p in enumerate(planned):
            if self.cache is not None:
                keys[i] = request_key(self.namespace, self.backend.model, p.request)
                hit = self.cache.get(keys[i])
                if hit is not None:
                    responses[i] = hit
                    self.summary.cache_hits += 1
                    continue
            misses.append(i)
        allowed = max(0, self.budget - self.summary.requests)
        cut = len(misses) > allowed
        misses = misses[:allowed]
        size = self.backend.max_batch
        chunks = [misses[s : s + size] for s in range(0, len(misses), size)]
        tasks = [
            asyncio.ensure_future(self._send([planned[i] for i in chunk], [keys[i] for i in chunk])) for chunk in chunks
        ]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        for chunk, res in zip(chunks, results):
            for i, resp in zip(chunk, res):
                responses[i] = resp
        return responses, cut

    # -- scheduling -------------------------------------------------------------------------
    def _assign(self, lanes: list[_Lane], tracked: Counter[str], next_index: dict[str, int]) -> list[_Lane]:
        c = self.config
        need = {lab: self.target - tracked[lab] for lab in self.labels}
        kept: list[_Lane] = []
        per_label: Counter[str] = Counter()
        if c.mode == "zero-shot":
            for lane in lanes:
                conv = lane.conversation
                if need[lane.label] > per_label[lane.label] and conv is not None and conv.turn < c.max_turns:
                    kept.append(lane)
                    per_label[lane.label] += 1
        while len(kept) < c.effective_conversations:
            open_labels = [lab for lab in self.labels if per_label[lab] < need[lab]]
            if not open_labels:
                break
            lab = min(open_labels, key=lambda x: (per_label[x], self.labels.index(x)))
            kept.append(self.planner.new_lane(lab, next_index[lab]))
            next_index[lab] += 1
            per_label[lab] += 1
        return kept

    # -- the run ----------------------------------------------------------------------------
    async def run(self) -> RunSummary:
        from tqdm.auto import tqdm

        c = self.config
        start = time.monotonic()
        try:
            existing = load_output(self.out_path, c.spec.name, c.mode)
        except BaseException:  # another run's file: leave it (and its summary) alone
            if self.cache is not None:
                self.cache.close()
            raise
        self.summary.repaired_tail = existing.repaired
        self.summary.resumed = len(existing.records)
        file_count: Counter[str] = Counter(str(r.label) for r in existing.records)
        origins = {o for o in map(_origin, existing.records) if o is not None}
        replay = self.cache is not None
        tracked: Counter[str] = Counter() if replay else Counter({lab: file_count[lab] for lab in self.labels})
        next_index = {lab: 0 for lab in self.labels}
        if not replay:
            for lab, index, _, _ in origins:
                if lab in next_index:
                    next_index[lab] = max(next_index[lab], index + 1)
        if existing.records:
            self.filter.prepare((), [r.text for r in existing.records])
            for r in existing.records:
                self.filter.add(r.text, count=False)
        lanes: list[_Lane] = []
        bar = tqdm(
            total=self.target * len(self.labels),
            initial=sum(min(file_count[lab], self.target) for lab in self.labels),
            desc=f"{c.spec.name} {c.mode}",
            unit="text",
            disable=not c.progress,
            dynamic_ncols=True,
        )
        written = 0
        try:
            with OutputWriter(self.out_path) as writer:
                while any(file_count[lab] < self.target for lab in self.labels):
                    lanes = self._assign(lanes, tracked, next_index)
                    planned = [self.planner.plan(lane) for lane in lanes]
                    self.summary.trimmed_requests += sum(1 for p in planned if p.trimmed_turns)
                    responses, cut = await self._fetch(planned)
                    self.summary.rounds += 1
                    parsed = [(p, r, parse_response(r.text)) for p, r in zip(planned, responses) if r is not None]
                    self.filter.prepare(
                        [t for _, _, cands in parsed for t in cands], [d.text for p, _, _ in parsed for d in p.demonstrations]
                    )
                    for p, resp, candidates in parsed:
                        if p.conversation is not None:
                            p.conversation.add_reply(resp.text)
                        written += self._commit(p, candidates, origins, tracked, file_count, writer, bar)
                    bar.set_postfix(requests=self.summary.requests, cached=self.summary.cache_hits, refresh=False)
                    if cut:
                        self.summary.stopped = "budget"
                        break
                    if not planned:  # nothing left to ask: cannot happen while a label is short
                        break
        except (GenerationError, BackendAuthError) as exc:
            self.summary.stopped = f"error: {exc}"
            raise
        finally:
            bar.close()
            self.summary.written = written
            self.summary.per_label = {lab: file_count[lab] for lab in self.labels}
            self.summary.filters = self.filter.counts()
            self.summary.elapsed_s = round(time.monotonic() - start, 3)
            self.summary.texts_per_s = round(written / self.summary.elapsed_s, 3) if self.summary.elapsed_s > 0 else 0.0
            self.summary.estimated_cost_usd = (
                None if self.price is None else round(self.price.cost(self.summary.tokens_in, self.summary.tokens_out), 6)
            )
            if self.cache is not None:
                self.cache.close()
            write_summary(self.summary, summary_path(self.out_path))
        return self.summary

    def _commit(self, p: PlannedRequest, candidates: Sequence[str], origins: set, tracked: Counter[str],
                file_count: Counter[str], writer: OutputWriter, bar: Any) -> int:
        written = 0
        demo_texts = [d.text for d in p.demonstrations]
        for item, text in enumerate(candidates):
            self.summary.candidates += 1
            if (p.label, p.index, p.turn, item) in origins:
                tracked[p.label] += 1  # written by an earlier run of this command
                continue
            if tracked[p.label] >= self.target:
                self.summary.surplus += 1
                continue
            if self.filter.check(text, demo_texts) is not None:
                continue
            if file_count[p.label] >= self.target:
                self.summary.surplus += 1
                continue
            self.filter.add(text)
            writer.write(self._record(p, item, text, file_count[p.label]))
            tracked[p.label] += 1
            file_count[p.label] += 1
            written += 1
            bar.update(1)
        return written

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


def write_summary(summary: RunSummary, path: str | Path) -> None:
    """Write the summary as indented JSON, atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(summary.to_dict(), fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def generate_async(config: GenerationConfig, out_path: str | Path, backend: Backend | None = None) -> RunSummary:
    """Run generation into `out_path` (appending; resuming what is there) and return the summary."""
    own = backend is None
    backend = backend or build_backend(config)
    try:
        return await _Run(config, Path(out_path), backend).run()
    finally:
        if own:
            await backend.aclose()


def generate(config: GenerationConfig, out_path: str | Path, backend: Backend | None = None) -> RunSummary:
    """Synchronous `generate_async` (not callable from inside a running event loop)."""
    return asyncio.run(generate_async(config, out_path, backend))


def format_messages(messages: Sequence[Message]) -> str:
    """Return messages as readable text: one "[role]" header per message, then its content."""
    return "\n".join(f"[{m.role}]\n{m.content}\n" for m in messages)
