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
prompt every n turns, a new conversation after `max_turns`, or after `stall_turns` turns in a row
that gave no accepted text: the model is repeating itself, so the conversation is abandoned, counted
in `abandoned_conversations`); in few-shot mode each request is new, with its own seeded
demonstrations. Lanes go to the labels that still need texts, never more lanes to a label than
texts it still needs; in zero-shot mode new conversations are opened only as far as each can reach
its first diversity turn (`Planner.max_lanes`), so even a run of a few texts per label sends the
diversity prompt. The round's requests are answered from the response cache or sent to the
backend (at most `concurrency` at once; in batches for the local backend; as one Batch API job for
"openai-batch"), with retries (`generation.retry`: exponential backoff with jitter, or the
server's Retry-After) on rate limits, 5xx, timeouts and malformed bodies; 401/403 stop the run at
once. Responses are then committed in lane order: parsed into candidate texts, filtered, and each
clean text kept while its label still needs texts. The round is made durable in one step: its
responses go into the cache in one transaction, then its records are appended to the output with
one write and one fsync. Nothing counts as written (progress bar, summary) before that fsync
returns, so a crash loses no acknowledged record; it can only cut the round being written (a torn
last line is repaired on resume).

Rate limits ("openai"). The requests in flight, at most `concurrency`, and their pace follow what
the endpoint allows (`generation.limiter`): its rate-limit headers when it sends them, else its
429s (additive increase, multiplicative decrease); a 429 is waited out, not counted as a retry.

Sending ahead (backends taking one request per call, i.e. "openai"). While a round's slowest
requests are still out, the next round's likely requests are already sent: a conversation's next
turn as soon as its own reply is in, a new lane's first request at once, guessing that each reply
yields one accepted text. The next round is still planned only from what was committed; it adopts
the requests it planned that were sent ahead and drops the rest (cancelled, or their replies
cached; counted in `unused_requests`). So the connections stay busy while a round commits and
while its stragglers finish, and what is written is decided exactly as without sending ahead. A
request sent ahead takes its place in the `max_requests` budget when it is sent.

Determinism and resume. A conversation's requests depend only on (task, label, conversation
index, turn, seed) and the replies before them, and commits happen in a fixed order, so a run is a
function of its responses. Re-running the same command after a crash (kill -9) replays the
finished requests from the response cache (free), skips the texts already in the output (by
their origin: label, conversation, turn, item) and continues exactly where the run stopped: the
same ids, no duplicates, nothing lost, the exact count (the stall rule replays too: it depends only
on the filter decisions). With the cache off (`--no-cache`) a resumed run starts new conversations
after the ones in the file instead.

Records: `{"id": "<task>:<mode>:<label>:<n>", "text", "label", "task", "mode", "backend", "model",
"prompt_hash", "demonstration_ids", "conversation", "conversation_turn", "item", "trimmed_turns",
"seed", "created_at"}`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Sequence

from generation.backends import make_backend
from generation.backends.base import Backend, BackendAuthError, BackendError, ChatRequest, ChatResponse, RetryableError
from generation.cache import ResponseCache, request_key
from generation.config import GenerationConfig, RunSummary
from generation.filters import TextFilter
from generation.limiter import AdaptiveLimiter
from generation.output import OutputWriter, load_output
from generation.parsing import parse_response
from generation.planning import Lane, PlannedRequest, Planner, next_turn, preview_requests
from generation.pricing import price_for
from generation.prompts import Message
from generation.retry import RetryPolicy, with_retries
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
    if config.backend in ("openai", "openai-batch"):
        endpoint = dict(model=config.model, base_url=config.base_url, api_key=config.api_key,
                        timeout=config.request_timeout, context_window=config.context_window)
        if config.backend == "openai":
            return make_backend("openai", **endpoint)
        return make_backend(
            "openai-batch",
            **endpoint,
            poll_interval=config.batch_poll_interval,
            # running batches are remembered beside the response cache
            state_path=None if config.cache_path is None else Path(config.cache_path).with_name("batches.json"),
        )
    return make_backend(config.backend)


def _origin(rec: Example) -> tuple[str, int, int, int] | None:
    try:
        return (str(rec.label), int(rec.extra["conversation"]), int(rec.extra["conversation_turn"]), int(rec.extra["item"]))
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class _Ahead:
    """A request sent ahead of its round: the task answering it (-> (request, response)) and
    whether it reached the backend (a started call costs even when the round does not need it)."""

    task: asyncio.Task | None = None
    started: bool = False


def _ident(p: PlannedRequest) -> tuple[str, int, int]:
    return (p.label, p.index, p.turn)


class _Run:
    def __init__(self, config: GenerationConfig, out_path: Path, backend: Backend):
        self.config = config
        self.out_path = out_path
        self.backend = backend
        self.labels = config.run_labels
        self.target = config.per_label
        self.planner = Planner(config, backend)
        self.filter = TextFilter(config.filter_settings())
        self.cache = ResponseCache(config.cache_path) if config.cache else None
        self.namespace = backend.cache_namespace or backend.name
        self.semaphore = asyncio.Semaphore(1 if backend.max_batch > 1 else config.concurrency)
        self.policy = RetryPolicy(config.max_retries, config.backoff_base, config.backoff_max)
        # The adaptive limit is for endpoints called one request at a time ("openai"); 429s are
        # waited out while the endpoint served something within the time the retries could wait.
        self.limiter = (
            AdaptiveLimiter(config.concurrency, patience=config.max_retries * config.backoff_max)
            if config.adaptive_concurrency and backend.max_batch == 1 and backend.concurrent_calls else None
        )
        self.jitter = random.Random()
        self.budget = config.effective_max_requests
        self.used = 0  #: the budget spent: requests sent by rounds and ahead of them (cache hits are free)
        # Requests are sent ahead of their round only to endpoints that serve calls at once, one
        # request per call ("openai"): the local model computes here (a request sent for nothing
        # costs real compute) and the Batch API takes a whole round as one batch.
        self.send_ahead = backend.max_batch == 1 and backend.concurrent_calls
        self.ahead: dict[tuple[str, int, int], _Ahead] = {}
        self.pending_puts: list[tuple[str, ChatResponse]] = []  #: answered, not yet in the cache
        self.dropped: list[asyncio.Task] = []
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
    def _key(self, p: PlannedRequest) -> str:
        return request_key(self.namespace, self.backend.model, p.request)

    def _count_retry(self, _exc: RetryableError) -> None:
        self.summary.retries += 1

    async def _call(self, requests: list[ChatRequest], handle: _Ahead | None = None) -> list[ChatResponse]:
        """One backend call (at most `concurrency` at once, or what the adaptive limiter allows),
        retried per the policy; counts it."""

        def started() -> None:
            if handle is not None:
                handle.started = True

        def call() -> Awaitable[list[ChatResponse]]:
            return self.backend.complete(requests)

        try:
            if self.limiter is None:
                async with self.semaphore:
                    started()
                    responses = await with_retries(call, self.policy, self.jitter, self._count_retry)
            else:
                prompt = sum(self.backend.count_tokens(r.messages) for r in requests)
                attempt = self.limiter.attempts(call, prompt, sum(r.max_tokens for r in requests), started)
                responses = await with_retries(attempt, self.policy, self.jitter, self._count_retry, self.limiter)
        except BackendError as exc:  # RetriesExhausted included; BackendAuthError passes as is
            raise GenerationError(str(exc)) from None
        if len(responses) != len(requests):
            raise GenerationError(f"the backend returned {len(responses)} responses for {len(requests)} requests")
        self.summary.requests += len(requests)
        for resp in responses:
            self.summary.tokens_in += resp.tokens_in
            self.summary.tokens_out += resp.tokens_out
        return responses

    async def _answer(self, planned: list[PlannedRequest], keys: list[str | None]) -> list[ChatResponse]:
        """Send a chunk of a round's requests; their responses join the round's cache puts."""
        responses = await self._call([p.request for p in planned])
        self._remember(keys, responses)
        return responses

    def _remember(self, keys: Sequence[str | None], responses: Sequence[ChatResponse]) -> None:
        if self.cache is not None:
            self.pending_puts.extend((k, r) for k, r in zip(keys, responses) if k is not None and not r.cached)

    async def _adopt(self, ahead: _Ahead, p: PlannedRequest, key: str | None) -> list[ChatResponse]:
        """Use the reply of a request sent ahead (the very request the round planned)."""
        assert ahead.task is not None
        request, response = await ahead.task
        if request != p.request:  # cannot happen: a plan is a function of the committed replies
            self._discard(ahead)
            self.used += 1
            return await self._answer([p], [key])
        self._remember([key], [response])
        return [response]

    def _start(self, planned: list[PlannedRequest], keys: list[str | None]):
        """Answer what the cache holds, adopt the requests sent ahead for this round (their budget
        is spent already), start the rest, as far as the budget goes. Returns (cache hits by index,
        [(indexes, task)], whether the budget cut the round)."""
        hits: dict[int, ChatResponse] = {}
        misses: list[int] = []
        for i, key in enumerate(keys):
            hit = self.cache.get(key) if self.cache is not None and key is not None else None
            if hit is not None:
                hits[i] = hit
                self.summary.cache_hits += 1
            else:
                misses.append(i)
        adopted = {i: self.ahead.pop(_ident(planned[i])) for i in misses if _ident(planned[i]) in self.ahead}
        for ahead in self.ahead.values():  # sent ahead, not needed after all
            self._discard(ahead)
        self.ahead.clear()
        fresh = [i for i in misses if i not in adopted]
        allowed = max(0, self.budget - self.used)
        cut = len(fresh) > allowed
        fresh = fresh[:allowed]
        self.used += len(fresh)
        calls: list[tuple[list[int], asyncio.Task]] = [
            ([i], asyncio.ensure_future(self._adopt(ahead, planned[i], keys[i]))) for i, ahead in adopted.items()
        ]
        size = self.backend.max_batch
        for s in range(0, len(fresh), size):
            chunk = fresh[s : s + size]
            coro = self._answer([planned[i] for i in chunk], [keys[i] for i in chunk])
            calls.append((chunk, asyncio.ensure_future(coro)))
        return hits, calls, cut

    def _discard(self, ahead: _Ahead) -> None:
        """Drop a request sent ahead that no round uses: cancel it, or cache its reply."""
        task = ahead.task
        if ahead.started:
            self.summary.unused_requests += 1
        if task is None:
            return
        if not task.done():
            task.cancel()
            self.dropped.append(task)
        elif not task.cancelled() and task.exception() is None:
            request, response = task.result()
            if self.cache is not None and not response.cached:
                self.pending_puts.append((request_key(self.namespace, self.backend.model, request), response))

    async def _gather(self, n: int, hits: dict[int, ChatResponse], calls) -> list[ChatResponse | None]:
        responses: list[ChatResponse | None] = [None] * n
        for i, resp in hits.items():
            responses[i] = resp
        tasks = [task for _, task in calls]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        for (chunk, _), res in zip(calls, results):
            for i, resp in zip(chunk, res):
                responses[i] = resp
        return responses

    # -- sending ahead ----------------------------------------------------------------------
    def _send_ahead(self, lanes: list[Lane], hits: dict[int, ChatResponse], calls, tracked: Counter[str],
                    next_index: dict[str, int]) -> None:
        """Start the requests the next round will most likely make, while this round finishes.

        The guess assumes each of this round's requests yields one accepted text (no stall): a
        conversation's next turn starts as soon as its own reply is in, a new lane's first request
        at once. The next round is still planned from what was committed; it adopts the requests
        it planned and drops the rest (`_discard`). Each request sent ahead takes its place in the
        budget when it is sent (so the budget caps every call made, and where a run stops does not
        depend on timing); requests the cache will answer are not sent ahead.
        """
        c = self.config
        room = self.budget - self.used
        if room <= 0:
            return
        replies: dict[int, ChatResponse | asyncio.Task] = dict(hits)
        for chunk, task in calls:
            replies[chunk[0]] = task
        this_round = Counter(lane.label for lane in lanes)
        need = {lab: max(0, self.target - tracked[lab] - this_round[lab]) for lab in self.labels}
        position = {id(lane): i for i, lane in enumerate(lanes)}
        going_on = [lane for lane in lanes if lane.conversation is not None and lane.conversation.turn + 1 < c.max_turns]
        for lane in self._assign(going_on, need, dict(next_index)):
            if room <= 0:
                break
            handle = _Ahead()
            reply = replies.get(position[id(lane)]) if id(lane) in position else None
            if isinstance(reply, asyncio.Task):  # the next turn waits for this turn's reply
                conv = lane.conversation
                assert conv is not None
                ident = (lane.label, lane.index, conv.turn + 1)
                coro = self._ahead_turn(lane, list(conv.history), conv.turn, reply, handle)
            else:
                planned = self.planner.plan(lane if reply is None else next_turn(lane, lane.conversation.history,
                                                                                  lane.conversation.turn, reply))
                if self.cache is not None and self.cache.get(self._key(planned)) is not None:
                    continue  # the round will find it in the cache
                ident = _ident(planned)
                coro = self._ahead_request(planned, handle)
            handle.task = asyncio.ensure_future(coro)
            self.ahead[ident] = handle
            self.used += 1
            room -= 1

    async def _ahead_turn(self, lane: Lane, history: list[Message], turn: int,
                          reply: asyncio.Task, handle: _Ahead) -> tuple[ChatRequest, ChatResponse]:
        """The next turn of a conversation, sent once this round's reply to it is in."""
        response = (await asyncio.shield(reply))[0]  # shield: dropping this must not cancel the round's call
        return await self._ahead_request(self.planner.plan(next_turn(lane, history, turn, response)), handle)

    async def _ahead_request(self, planned: PlannedRequest, handle: _Ahead) -> tuple[ChatRequest, ChatResponse]:
        hit = self.cache.get(self._key(planned)) if self.cache is not None else None
        if hit is not None:  # the round will find it in the cache itself
            return planned.request, hit
        return planned.request, (await self._call([planned.request], handle))[0]

    async def _drop_all_ahead(self) -> None:
        for ahead in self.ahead.values():
            self._discard(ahead)
        self.ahead.clear()
        dropped, self.dropped = self.dropped, []
        await asyncio.gather(*dropped, return_exceptions=True)

    # -- scheduling -------------------------------------------------------------------------
    def _going_on(self, lanes: list[Lane], need: dict[str, int]) -> list[Lane]:
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

    def _assign(self, going_on: list[Lane], need: dict[str, int], next_index: dict[str, int]) -> list[Lane]:
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
        lanes: list[Lane] = []
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
                    need = {lab: self.target - tracked[lab] for lab in self.labels}
                    lanes = self._assign(self._going_on(lanes, need), need, next_index)
                    planned = [self.planner.plan(lane) for lane in lanes]
                    self.summary.trimmed_requests += sum(1 for p in planned if p.trimmed_turns)
                    keys = [self._key(p) for p in planned] if self.cache is not None else [None] * len(planned)
                    hits, calls, cut = self._start(planned, keys)
                    if self.send_ahead and not cut:
                        self._send_ahead(lanes, hits, calls, tracked, next_index)
                    responses = await self._gather(len(planned), hits, calls)
                    self.summary.rounds += 1
                    records = self._commit_round(lanes, planned, responses, origins, tracked, file_count)
                    await self._persist(writer, records)
                    written += len(records)
                    bar.update(len(records))
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
            await self._drop_all_ahead()
            if self.cache is not None:
                self.cache.put_many(self.pending_puts)  # replies paid for: keep them
                self.pending_puts = []
                self.cache.close()
            self.summary.written = written
            self.summary.per_label = {lab: file_count[lab] for lab in self.labels}
            self.summary.filters = self.filter.counts()
            self.summary.elapsed_s = round(time.monotonic() - start, 3)
            self.summary.rate_limit = None if self.limiter is None else self.limiter.report()
            self.summary.texts_per_s = round(written / self.summary.elapsed_s, 3) if self.summary.elapsed_s > 0 else 0.0
            self.summary.estimated_cost_usd = (
                None if self.price is None else round(self.price.cost(self.summary.tokens_in, self.summary.tokens_out), 6)
            )
            write_summary(self.summary, summary_path(self.out_path))
        return self.summary

    async def _persist(self, writer: OutputWriter, records: list[Example]) -> None:
        """Make a round durable: its responses in the cache (one transaction), then its records in
        the output (one write, one fsync, off the event loop so replies keep arriving meanwhile).
        Every record on disk thus has its response cached, which a resumed run replays."""
        if self.cache is not None:
            self.cache.put_many(self.pending_puts)
            self.pending_puts = []
        if records:
            await asyncio.to_thread(writer.write_many, records)

    def _commit_round(self, lanes: list[Lane], planned: list[PlannedRequest], responses: list[ChatResponse | None],
                      origins: set, tracked: Counter[str], file_count: Counter[str]) -> list[Example]:
        """Parse, filter and accept a round's responses in lane order; return the records to write.
        A conversation's stall count grows by one for a turn without an accepted text, else resets."""
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

    def _commit(self, p: PlannedRequest, candidates: Sequence[str], origins: set, tracked: Counter[str],
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
