"""OpenAI's request and token rate limits in front of a responder of the loopback stand-in: token
buckets, 429s with Retry-After, `x-ratelimit-*` headers, 429 storms."""

from __future__ import annotations

import math
import random
import threading
import time
from typing import Any

from tests.support.openai_replies import Reply, Responder, prompt_tokens

def format_duration(seconds: float) -> str:
    """Seconds in OpenAI's reset format: "20ms", "1.5s", "6m0s"."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60.0)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{rest_text}" if minutes else rest_text


class _Bucket:
    """A token bucket: `capacity` units, refilled at `rate` units per second."""

    def __init__(self, rate: float, capacity: float, now: float):
        self.rate, self.capacity, self.level, self.at = rate, capacity, capacity, now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + self.rate * (now - self.at))
        self.at = now

    def wait(self, cost: float) -> float:
        """Seconds until `cost` units are in the bucket (0 when they are now)."""
        return max(0.0, (min(cost, self.capacity) - self.level) / self.rate)

    def headers(self, kind: str) -> dict[str, str]:
        return {f"x-ratelimit-limit-{kind}": str(int(self.capacity)),
                f"x-ratelimit-remaining-{kind}": str(max(0, int(self.level))),
                f"x-ratelimit-reset-{kind}": format_duration((self.capacity - self.level) / self.rate)}


class RateLimit:
    """A responder behind OpenAI-style rate limits: `requests_per_s` requests and `tokens_per_min`
    tokens (prompt tokens as `prompt_tokens` counts them plus `max_tokens`, charged when a request
    is admitted), each a token bucket holding `burst_s` seconds of its rate. A request over either
    limit gets 429 at once, with `retry-after` (whole seconds until enough is back, as OpenAI
    sends it; also `retry-after-ms` if `retry_after_ms`) and the `x-ratelimit-*` headers, or, for a
    share `bare_share` of them (seeded), no headers at all.
    Admitted replies carry the `x-ratelimit-*` headers too, unless `headers=False` (as vLLM,
    Ollama). `storm(start, end)`: every request between those `time.monotonic()` times gets 429
    (Retry-After 1 s, or none for the bare share). Thread-safe; counts in `admitted`,
    `rejected`, `tokens_charged`; `log` holds (time, status) per request.
    """

    def __init__(self, responder: "Responder", requests_per_s: float, tokens_per_min: float | None = None,
                 burst_s: float = 1.0, headers: bool = True, bare_share: float = 0.0, retry_after_ms: bool = False,
                 seed: int = 0):
        if requests_per_s <= 0 or (tokens_per_min is not None and tokens_per_min <= 0) or burst_s <= 0:
            raise ValueError("rate limits and burst must be positive")
        now = time.monotonic()
        self.responder = responder
        self.requests = _Bucket(requests_per_s, max(1.0, requests_per_s * burst_s), now)
        self.tokens = None if tokens_per_min is None else _Bucket(tokens_per_min / 60.0, tokens_per_min / 60.0 * burst_s, now)
        self.headers = headers
        self.bare_share = bare_share
        self.retry_after_ms = retry_after_ms
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._storms: list[tuple[float, float]] = []
        self.admitted = 0
        self.rejected = 0
        self.tokens_charged = 0
        self.log: list[tuple[float, int]] = []

    def storm(self, start: float, end: float) -> None:
        """Answer every request between `start` and `end` (`time.monotonic()`) with 429."""
        with self._lock:
            self._storms.append((start, end))

    def _budget_headers(self) -> dict[str, str]:
        if not self.headers:
            return {}
        out = self.requests.headers("requests")
        if self.tokens is not None:
            out.update(self.tokens.headers("tokens"))
        return out

    def _admit(self, cost: int) -> Reply | dict[str, str]:
        """Charge the buckets and return the headers of the reply, or the 429 (under the lock)."""
        now = time.monotonic()
        self.requests.refill(now)
        if self.tokens is not None:
            self.tokens.refill(now)
        storm = any(start <= now < end for start, end in self._storms)
        wait = 1.0 if storm else max(self.requests.wait(1), self.tokens.wait(cost) if self.tokens else 0.0)
        if wait > 0:
            self.rejected += 1
            self.log.append((now, 429))
            bare = self._rng.random() < self.bare_share
            headers = {} if bare else {"retry-after": str(math.ceil(wait)), **self._budget_headers()}
            if self.retry_after_ms and not bare:
                headers["retry-after-ms"] = str(math.ceil(wait * 1000))
            which = "a 429 storm" if storm else "requests" if self.requests.wait(1) > 0 else "tokens"
            return Reply(429, {"error": {"message": f"Rate limit reached ({which}); try again later", "type": which,
                                         "param": None, "code": "rate_limit_exceeded"}}, headers)
        self.requests.level -= 1
        if self.tokens is not None:
            self.tokens.level -= cost
        self.admitted += 1
        self.tokens_charged += cost
        self.log.append((now, 200))
        return self._budget_headers()

    def __call__(self, body: dict[str, Any]) -> dict[str, Any] | Reply:
        cost = prompt_tokens(body) + int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        with self._lock:
            admitted = self._admit(cost)
        if isinstance(admitted, Reply):
            return admitted
        out = self.responder(body)
        reply = out if isinstance(out, Reply) else Reply(200, out)
        return Reply(reply.status, reply.body, {**admitted, **reply.headers})
