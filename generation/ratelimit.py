"""What an endpoint says about its rate limits, and what this client may still send without a 429.

OpenAI (and the servers and proxies that imitate it) put the state of its two token buckets on
every reply, 429s included:

    x-ratelimit-limit-requests / x-ratelimit-limit-tokens          the bucket sizes
    x-ratelimit-remaining-requests / x-ratelimit-remaining-tokens  what is left after this request
    x-ratelimit-reset-requests / x-ratelimit-reset-tokens          time until the bucket is full
                                                                   again: "1s", "6m0s", "20ms", ...

and a 429 may say when to come back: `retry-after-ms` (milliseconds) or `retry-after` (seconds or
an HTTP date). `read_rate_limit(headers)` reads them all into a `RateLimitHeaders` (None where a
header is absent or unreadable). `ServerBudget` keeps the last few readings and answers how long a
request of a given token cost must wait so as not to overdraw either bucket, counting what this
client sent after each reading and what the buckets refilled since (`RefillRate`: the refill
rate the replies imply). Nothing here does I/O.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

SLACK_S = 0.05  #: refill time kept in reserve when deciding that a request fits
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(value: str | None) -> float | None:
    """Return seconds from OpenAI's reset format (Go durations: "1s", "6m0s", "1h2m3.5s", "20ms",
    "0s") or a plain number of seconds ("0.5"); None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    return total if pos == len(text) and pos > 0 else None


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Return the wait the server asked for, in seconds, from `retry-after-ms` or `retry-after`
    (seconds or an HTTP date); None when absent or unreadable."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            wait = float(ms) / 1000.0
        except ValueError:
            wait = math.nan
        if math.isfinite(wait):
            return max(0.0, wait)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        wait = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return max(0.0, wait) if math.isfinite(wait) else None


def _number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


@dataclass(frozen=True)
class RateLimitHeaders:
    """One reply's rate-limit headers; None for each one absent or unreadable (seconds for times)."""

    limit_requests: float | None = None
    remaining_requests: float | None = None
    reset_requests: float | None = None
    limit_tokens: float | None = None
    remaining_tokens: float | None = None
    reset_tokens: float | None = None
    retry_after: float | None = None

    @property
    def has_budget(self) -> bool:
        """True when the reply said what is left of either bucket."""
        return self.remaining_requests is not None or self.remaining_tokens is not None


def read_rate_limit(headers: Mapping[str, str] | Any) -> RateLimitHeaders | None:
    """Read the rate-limit headers of a reply (a mapping with `items()`, e.g. httpx's `Headers`;
    names in any case); None when it carries none of them."""
    if headers is None:
        return None
    # One pass over the reply's headers, undecoded where httpx keeps them (`raw`): most replies
    # have none of these, and a lookup per name would walk (and decode) all headers each time.
    raw = getattr(headers, "raw", None)
    if isinstance(raw, list):
        found = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw
                 if name[:1] in b"xXrR" and name.lower().startswith((b"x-ratelimit-", b"retry-after"))}
    else:
        found = {name.lower(): value for name, value in headers.items()
                 if name[:1] in "xXrR" and name.lower().startswith(("x-ratelimit-", "retry-after"))}
    if not found:
        return None
    return RateLimitHeaders(
        limit_requests=_number(found, "x-ratelimit-limit-requests"),
        remaining_requests=_number(found, "x-ratelimit-remaining-requests"),
        reset_requests=parse_duration(found.get("x-ratelimit-reset-requests")),
        limit_tokens=_number(found, "x-ratelimit-limit-tokens"),
        remaining_tokens=_number(found, "x-ratelimit-remaining-tokens"),
        reset_tokens=parse_duration(found.get("x-ratelimit-reset-tokens")),
        retry_after=parse_retry_after(found),
    )


@dataclass(frozen=True)
class _Reading:
    """One bucket as a reply described it. `spent`: what this client had sent, in the bucket's
    unit, up to and including the request the reply answered (so later sends come off `remaining`);
    `at`: when that request was sent (the server counted it about then)."""

    remaining: float
    limit: float | None
    reset: float | None
    at: float
    spent: float

    def level(self, rate: float | None) -> float:
        """The bucket's content when the request was counted: `remaining` is rounded down, so
        from the refill rate when known (limit - rate x reset), else remaining + 0.5."""
        if rate is not None and self.limit is not None and self.reset is not None:
            return min(self.remaining + 1.0, max(self.remaining, self.limit - rate * self.reset))
        return self.remaining + 0.5 if self.limit is None else min(self.limit, self.remaining + 0.5)

    def wait(self, cost: float, spent_now: float, now: float, rate: float | None) -> float:
        """Seconds until a request of `cost` units fits, given `spent_now` units sent so far and
        the bucket's refill `rate` (units per second, None when unknown)."""
        if self.limit is not None:
            cost = min(cost, self.limit)  # larger than the bucket: it goes when the bucket is full
        elapsed = max(0.0, now - self.at)
        if rate is not None:
            level = min(self.limit or math.inf, self.level(rate) + rate * elapsed)
        elif self.reset is not None and elapsed >= self.reset:
            level = self.limit if self.limit is not None else math.inf  # full again
        else:
            level = self.level(rate)
        # Keep SLACK_S of refill in reserve: the estimate is off by the time a request takes to reach
        # the server and by the rounding of the headers. A constant reserve costs no throughput.
        available = level - (spent_now - self.spent) - (rate or 0.0) * SLACK_S
        if available >= cost:
            return 0.0
        if self.limit is not None and level >= self.limit:
            return 0.0  # full again by now, yet short by what was sent since: this reply no longer tells
        if rate is not None:  # until it has refilled enough, or is full (then it no longer tells)
            return min((cost - available) / rate, math.inf if self.limit is None else (self.limit - level) / rate)
        if self.reset is not None:
            return max(0.0, self.at + self.reset - now)
        return 0.0  # nothing says when it refills: the 429s will


class RefillRate:
    """A bucket's refill rate from its replies. Each reply bounds it: the bucket misses between
    `limit - remaining - 1` and `limit - remaining` units (remaining is rounded down) and refills
    them in `reset` seconds. The bounds of successive replies are intersected (a reply that
    contradicts them starts afresh: the limit changed); the estimate is the middle."""

    def __init__(self) -> None:
        self.low = 0.0
        self.high = math.inf

    @property
    def estimate(self) -> float | None:
        """The refill rate in units per second (None while unknown)."""
        return None if self.high == math.inf else (self.low + self.high) / 2

    def update(self, remaining: float, limit: float | None, reset: float | None) -> float | None:
        """Take one reply's numbers; return the current estimate (None while unknown)."""
        if limit is not None and reset is not None and reset > 0 and limit > remaining:
            low, high = max(0.0, limit - remaining - 1.0) / reset, (limit - remaining) / reset
            if low > self.high or high < self.low:
                self.low, self.high = low, high
            else:
                self.low, self.high = max(self.low, low), min(self.high, high)
        return self.estimate


class ServerBudget:
    """The client's view of the endpoint's request and token buckets, from the last `RECENT`
    replies that described them. Each gives a view (its bucket level, less what was sent after
    its request); a request waits for the most careful of the views of requests sent together
    with the last one: those reach the server in any order, so the reply to a later send may
    have been counted before an earlier one and see more room than is left."""

    RECENT = 8

    def __init__(self) -> None:
        self._requests: deque[_Reading] = deque(maxlen=self.RECENT)
        self._tokens: deque[_Reading] = deque(maxlen=self.RECENT)
        self.readings = 0  #: replies that carried a budget
        self.request_rate = RefillRate()
        self.token_rate = RefillRate()

    @property
    def requests(self) -> _Reading | None:
        """The request bucket as the last reply described it."""
        return self._requests[-1] if self._requests else None

    @property
    def tokens(self) -> _Reading | None:
        """The token bucket as the last reply described it."""
        return self._tokens[-1] if self._tokens else None

    def update(self, headers: RateLimitHeaders, sent_at: float, requests_spent: float, tokens_spent: float) -> None:
        """Take a reply's headers; `sent_at`: when its request was sent; `requests_spent`,
        `tokens_spent`: what had been sent up to and including it (a 429's request is not counted
        by the server: pass the totals without it)."""
        h = headers
        if not h.has_budget:
            return
        self.readings += 1
        if h.remaining_requests is not None:
            self.request_rate.update(h.remaining_requests, h.limit_requests, h.reset_requests)
            self._requests.append(_Reading(h.remaining_requests, h.limit_requests, h.reset_requests, sent_at,
                                           requests_spent))
        if h.remaining_tokens is not None:
            self.token_rate.update(h.remaining_tokens, h.limit_tokens, h.reset_tokens)
            self._tokens.append(_Reading(h.remaining_tokens, h.limit_tokens, h.reset_tokens, sent_at, tokens_spent))

    def wait(self, cost_tokens: float, requests_spent: float, tokens_spent: float, now: float,
             together_s: float = 0.25) -> float:
        """Seconds until one more request costing `cost_tokens` fits both buckets (0: send now).
        The views compared are the replies to requests sent within `together_s` (about one
        latency: requests that were on their way together) of the last one sent."""
        waits = [0.0]
        for readings, rate, cost, spent in ((self._requests, self.request_rate.estimate, 1.0, requests_spent),
                                            (self._tokens, self.token_rate.estimate, cost_tokens, tokens_spent)):
            if readings:
                since = max(r.at for r in readings) - together_s
                waits += [r.wait(cost, spent, now, rate) for r in readings if r.at >= since]
        return max(waits)
