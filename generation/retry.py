"""Retrying backend calls: one policy and one loop for the engine and the LLM judge.

`with_retries(call, policy)` awaits `call()`; when it raises `RetryableError` (429, 5xx, timeouts,
connection errors, malformed bodies) it waits `policy.delay(...)` (the server's Retry-After when
given, else exponential backoff, with jitter) and calls again, up to `policy.max_retries` times.
`RetriesExhausted` (a `BackendError`) is raised when the last retry fails too; any other error
(e.g. `BackendAuthError`, a plain `BackendError`) passes through at once.

With a rate limiter (`limiter=`, the engine's `generation.limiter.AdaptiveLimiter`), a 429 is not
a failure of the request but the endpoint's "not now": while `limiter.waits_out(error)` says so, it
is retried at once without using the retry budget, and the limiter holds the next attempt until
the endpoint has room (Retry-After, its budget headers, the cut window).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol, TypeVar

from generation.backends.base import BackendError, RetryableError

T = TypeVar("T")


class RetriesExhausted(BackendError):
    """A call still failed after all its retries. `attempts`: calls made; `last`: the last error."""

    def __init__(self, attempts: int, last: RetryableError):
        super().__init__(f"gave up after {attempts} attempts: {last}")
        self.attempts = attempts
        self.last = last


class RateLimitWaiter(Protocol):
    """What `with_retries` asks a rate limiter: is this error one to wait out, uncounted?"""

    def waits_out(self, error: RetryableError) -> bool: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between retries.

    max_retries: retries after the first call (0: never retry). backoff_base, backoff_max: the
    wait before retry n (0-based) is min(backoff_max, backoff_base * 2**n), times a uniform factor
    in [0.5, 1] when `jitter`. A server's Retry-After is honoured instead (plus up to 10% jitter).
    """

    max_retries: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError(f"backoff times must be >= 0, got {self.backoff_base} and {self.backoff_max}")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Return the seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None:
            return retry_after * (1.0 + (0.1 * rng.random() if self.jitter else 0.0))
        base = min(self.backoff_max, self.backoff_base * (2**attempt))
        return base * (0.5 + 0.5 * rng.random()) if self.jitter else base


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    rng: random.Random | None = None,
    on_retry: Callable[[RetryableError], None] | None = None,
    limiter: RateLimitWaiter | None = None,
) -> T:
    """Return `await call()`, retrying `RetryableError` as `policy` says; `on_retry(error)` is
    called before each wait. Raises `RetriesExhausted` when the retries run out. Errors the
    `limiter` waits out are retried at once, uncounted (`call` must then wait in the limiter)."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            return await call()
        except RetryableError as exc:
            if limiter is not None and limiter.waits_out(exc):
                if on_retry is not None:
                    on_retry(exc)
                continue
            if attempt >= policy.max_retries:
                raise RetriesExhausted(attempt + 1, exc) from None
            if on_retry is not None:
                on_retry(exc)
            await asyncio.sleep(policy.delay(attempt, exc.retry_after, rng))
            attempt += 1
