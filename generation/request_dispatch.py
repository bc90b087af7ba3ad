"""Sending a round's requests: the response cache, the request budget, backend calls and what
was sent ahead of the round.

`RequestDispatcher.start(planned, keys)` answers what the cache holds, adopts the requests that
were sent ahead for this round, and starts the rest (in chunks of the backend's batch size) as far
as the budget `max_requests` goes; `gather` waits for them in plan order. Every backend call goes
through `call`: at most `concurrency` at once (or what the adaptive limiter allows), retried per
the policy (`generation.retry`), its requests and tokens counted in the run summary. Replies paid
for wait in `pending_puts` until the run makes its round durable (`flush_cache`).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Awaitable, Sequence

from generation.backends.base import Backend, BackendError, ChatRequest, ChatResponse, RetryableError
from generation.cache import ResponseCache, request_key
from generation.config import GenerationConfig
from generation.limiter import AdaptiveLimiter
from generation.planning import PlannedRequest
from generation.retry import RetryPolicy, with_retries
from generation.run_summary import RunSummary

#: A round's calls: (indexes in the plan, the task answering them in that order).
Calls = list[tuple[list[int], asyncio.Task]]


class GenerationError(RuntimeError):
    """The run stopped: a request failed after all retries, or the backend refused it."""


@dataclass
class SentAhead:
    """A request sent ahead of its round: the task answering it (-> (request, response)) and
    whether it reached the backend (a started call costs even when the round does not need it)."""

    task: asyncio.Task | None = None
    started: bool = False


def request_ident(p: PlannedRequest) -> tuple[str, int, int]:
    """Where a request sits in the run: (label, lane index, turn)."""
    return (p.label, p.index, p.turn)


class RequestDispatcher:
    """The run's way to the backend: cache, budget, concurrency, retries, requests sent ahead."""

    def __init__(self, config: GenerationConfig, backend: Backend, summary: RunSummary):
        self.backend = backend
        self.summary = summary
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
        self.ahead: dict[tuple[str, int, int], SentAhead] = {}
        self.pending_puts: list[tuple[str, ChatResponse]] = []  #: answered, not yet in the cache
        self.dropped: list[asyncio.Task] = []

    # -- the cache --------------------------------------------------------------------------
    def key(self, p: PlannedRequest) -> str:
        """The cache key of a planned request."""
        return request_key(self.namespace, self.backend.model, p.request)

    def keys(self, planned: Sequence[PlannedRequest]) -> list[str | None]:
        """The cache keys of a round's requests (None each without a cache)."""
        return [self.key(p) for p in planned] if self.cache is not None else [None] * len(planned)

    def cached(self, p: PlannedRequest) -> ChatResponse | None:
        """The cached response to a planned request, if any."""
        return self.cache.get(self.key(p)) if self.cache is not None else None

    def flush_cache(self) -> None:
        """Put the replies answered so far into the cache, in one transaction."""
        if self.cache is not None:
            self.cache.put_many(self.pending_puts)
            self.pending_puts = []

    def close(self) -> None:
        """Keep the replies paid for, then close the cache."""
        if self.cache is not None:
            self.flush_cache()
            self.cache.close()

    def _remember(self, keys: Sequence[str | None], responses: Sequence[ChatResponse]) -> None:
        if self.cache is not None:
            self.pending_puts.extend((k, r) for k, r in zip(keys, responses) if k is not None and not r.cached)

    # -- backend calls ----------------------------------------------------------------------
    def _count_retry(self, _exc: RetryableError) -> None:
        self.summary.retries += 1

    async def call(self, requests: list[ChatRequest], handle: SentAhead | None = None) -> list[ChatResponse]:
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
        responses = await self.call([p.request for p in planned])
        self._remember(keys, responses)
        return responses

    async def _adopt(self, ahead: SentAhead, p: PlannedRequest, key: str | None) -> list[ChatResponse]:
        """Use the reply of a request sent ahead (the very request the round planned)."""
        assert ahead.task is not None
        request, response = await ahead.task
        if request != p.request:  # cannot happen: a plan is a function of the committed replies
            self.discard(ahead)
            self.used += 1
            return await self._answer([p], [key])
        self._remember([key], [response])
        return [response]

    # -- a round ----------------------------------------------------------------------------
    def start(self, planned: list[PlannedRequest], keys: list[str | None]) -> tuple[dict[int, ChatResponse], Calls, bool]:
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
        adopted = {i: self.ahead.pop(request_ident(planned[i])) for i in misses if request_ident(planned[i]) in self.ahead}
        for ahead in self.ahead.values():  # sent ahead, not needed after all
            self.discard(ahead)
        self.ahead.clear()
        fresh = [i for i in misses if i not in adopted]
        allowed = max(0, self.budget - self.used)
        cut = len(fresh) > allowed
        fresh = fresh[:allowed]
        self.used += len(fresh)
        calls: Calls = [
            ([i], asyncio.ensure_future(self._adopt(ahead, planned[i], keys[i]))) for i, ahead in adopted.items()
        ]
        size = self.backend.max_batch
        for s in range(0, len(fresh), size):
            chunk = fresh[s : s + size]
            coro = self._answer([planned[i] for i in chunk], [keys[i] for i in chunk])
            calls.append((chunk, asyncio.ensure_future(coro)))
        return hits, calls, cut

    async def gather(self, n: int, hits: dict[int, ChatResponse], calls: Calls) -> list[ChatResponse | None]:
        """Wait for a round's calls; return its n responses in plan order (None: not sent, budget)."""
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

    # -- requests sent ahead ----------------------------------------------------------------
    def discard(self, ahead: SentAhead) -> None:
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

    async def drop_all_ahead(self) -> None:
        """Drop every request still sent ahead and wait until the cancelled ones have ended."""
        for ahead in self.ahead.values():
            self.discard(ahead)
        self.ahead.clear()
        dropped, self.dropped = self.dropped, []
        await asyncio.gather(*dropped, return_exceptions=True)
