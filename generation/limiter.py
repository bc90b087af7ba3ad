"""The adaptive request limit of the `openai` backend: how many requests are in flight, and when the
next one may start, learnt from the endpoint's rate-limit headers and its 429s.

`--concurrency` is a ceiling, not a promise: an endpoint that allows R requests/s or T tokens/min
answers anything beyond them with 429, and a client that keeps sending at the ceiling spends its
time in backoff. `AdaptiveLimiter` sits in front of every call:

- Until the endpoint pushes back, `--concurrency` requests are in flight, as with a fixed limit.
- Headers (`generation.ratelimit`): when replies carry `x-ratelimit-remaining-*` /
  `x-ratelimit-reset-*`, a request waits until both buckets (requests, and tokens at the request's
  estimated cost: prompt tokens as the endpoint counts them, learnt from `usage`, plus
  `max_tokens`) have room for it, counting what was sent since the last replies and what the
  buckets refilled since (their refill rates follow from limit, remaining and reset).
- 429s (with or without headers): the window of requests in flight (`AIMDWindow`) is cut once
  per burst of 429s (those of requests sent before the cut are the same burst): by at least
  `BETA`, and down to `SERVED_SHARE` of what the endpoint served over the last second; while it is
  what holds requests back it grows by `GROWTH_PER_S` of that size per second (additive increase,
  multiplicative decrease; never below 1, never above `--concurrency`). After the first 429,
  requests are also paced: one every latency / window seconds, so a window of 1.6 means 1.6
  requests in flight on average, not 1 or 2. After a storm of 429s the window climbs back to where
  it was cut from one step per success (doubling per round trip).
- `Retry-After` / `retry-after-ms` on a 429: that request comes back when the server said; if 429s
  go on after the window was cut, every new request is held that long. 429s in a row without any
  header are probed with one request at a time after a doubling pause (0.2 s up to
  `PROBE_CAP_S`), so a run recovers within seconds of the endpoint's recovery.
- A request that got 429 is retried through the limiter, ahead of requests sent after it, and a
  429 does not use up `--max-retries`: the run waits as long as the endpoint has served some request
  within `patience` seconds (the engine passes `max_retries x backoff_max`, 6 minutes by default).

`report()` says what limit the run settled at; the engine puts it in the summary (`rate_limit`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

from generation.backends.base import ChatResponse, RetryableError
from generation.ratelimit import ServerBudget

GROWTH_PER_S = 0.02  #: additive increase: this share of the window's last good size per second
BETA = 0.9  #: multiplicative decrease: at least this cut on a burst of 429s ...
SERVED_SHARE = 0.95  #: ... and down to this share of what the endpoint served over the last second
EMPTY_BETA = 0.5  #: the cut when the endpoint served nothing over the last second
REBOUND = 1.25  #: after a cut the window climbs back quickly to this much of it (see AIMDWindow)
PROBE_CAP_S = 2.0  #: longest pause between probes while 429s without headers go on
_FIRST_PROBE_S = 0.2
TOKEN_SCALE_RANGE = (0.5, 4.0)  #: bounds of the prompt tokens charged per estimated prompt token
_LATENCY_GUESS_S = 0.25  #: assumed until the first success is timed
_EWMA = 0.2


class AIMDWindow:
    """The number of requests in flight the endpoint accepts, learnt from 429s (additive increase,
    multiplicative decrease), between 1 and `ceiling`.

    `size` is fractional (requests are paced: 1.6 means 1.6 requests per latency); `cap` is how
    many may be in flight at once. On a burst of 429s the window is cut by at least `BETA`, and down
    to `SERVED_SHARE` of what the endpoint served over the last second (its rate x the latency: at
    the limit the endpoint serves exactly what it allows, so this lands just under the limit however
    far above it the window was). The `threshold` is set `REBOUND` x above that, but not above
    `BETA` x the window before the cut: the last second may have been partly below the limit. If
    nothing was served since the last cut (a storm of 429s) or the first success is less than a
    second old, the window halves and the threshold stays. While the window holds requests back it
    grows one step per success below the threshold (doubling per round trip: back to where the
    endpoint was serving), then by `GROWTH_PER_S` of the threshold per second.
    """

    def __init__(self, ceiling: int, growth_per_s: float = GROWTH_PER_S, beta: float = BETA,
                 served_share: float = SERVED_SHARE):
        if ceiling < 1:
            raise ValueError(f"the window's ceiling must be at least 1, got {ceiling}")
        if not 0 < beta < 1 or not 0 < served_share <= 1 or growth_per_s <= 0:
            raise ValueError(f"need growth_per_s > 0, 0 < beta < 1 and 0 < served_share <= 1, got "
                             f"{growth_per_s}, {beta}, {served_share}")
        self.ceiling = ceiling
        self.growth_per_s = growth_per_s
        self.beta = beta
        self.served_share = served_share
        self.size = float(ceiling)
        self.threshold = float(ceiling)
        self.cuts = 0
        self._cut_after = -1  #: requests sent up to this send number were sent before the last cut
        self._cut_at = -math.inf  #: when the last cut was
        self._served: list[float] = []  #: when recent successes came back (the last few seconds)
        self._grown_at: float | None = None

    @property
    def cap(self) -> int:
        """Requests that may be in flight at once."""
        return max(1, math.ceil(self.size - 1e-9))

    def on_success(self, pressed: bool, now: float) -> None:
        """A request was served at `now`; the window grows only if it held that request back
        (`pressed`), so a window nobody fills does not grow past what the endpoint was shown to
        accept."""
        self._served.append(now)
        if len(self._served) > 4096:
            del self._served[:2048]
        grown_at, self._grown_at = self._grown_at, now
        if not pressed:
            return
        if self.size < self.threshold:
            self.size = min(self.threshold, self.size + 1.0)
        elif grown_at is not None:
            elapsed = min(1.0, now - grown_at)  # idle time earns nothing
            self.size = min(float(self.ceiling), self.size + self.growth_per_s * self.threshold * elapsed)

    def served_rate(self, now: float, span: float) -> float:
        """Requests served per second over the last `span` seconds."""
        return sum(1 for t in self._served if t > now - span) / span

    def on_rate_limited(self, send_no: int, last_send_no: int, now: float, latency: float) -> bool:
        """Request number `send_no` got 429 at `now` while `last_send_no` requests had been sent;
        cut the window unless the request was sent before the last cut (the same burst). Returns
        whether it cut."""
        if send_no <= self._cut_after:
            return False
        span = max(1.0, 2 * latency)
        served = self.served_rate(now, span) * latency  # requests in flight the endpoint sustained
        # Measured only over a whole span, and only if requests were served since the last cut: the
        # later cuts of a storm would measure the storm (the served rate falling to 0), not the limit.
        if served > 0 and self._served[0] <= now - span and self._served[-1] > self._cut_at:
            cut = max(1.0, min(self.size * self.beta, served * self.served_share))
            # The last second may have been partly below the limit (after earlier cuts): climb back
            # quickly to REBOUND x the cut, though never past BETA x where these 429s began.
            self.threshold = max(cut, min(self.size * self.beta, cut * REBOUND))
            self.size = cut
        else:
            self.size = max(1.0, self.size * EMPTY_BETA)
        self._cut_after = last_send_no
        self._cut_at = now
        self._grown_at = None
        self.cuts += 1
        return True


@dataclass
class _Send:
    """One attempt on its way: its send number and time, its token cost, the client's totals
    sent up to and including it, and whether the window held it back."""

    no: int
    at: float
    prompt_tokens: float
    cost: float
    requests_spent: float
    tokens_spent: float
    pressed: bool


class AdaptiveLimiter:
    """The gate every call of the `openai` backend passes (see the module docstring).

    ceiling: `--concurrency`. patience: seconds of nothing but 429s after which a 429 counts
    against the retry budget like any other failure.
    """

    def __init__(self, ceiling: int, patience: float = 360.0):
        self.window = AIMDWindow(ceiling)
        self.budget = ServerBudget()
        self.patience = patience
        self._clock = time.monotonic
        self._wake: dict[int, asyncio.Future] = {}  #: a waiting request's wake-up, by ticket
        self._queue: list[int] = []  #: tickets waiting, oldest request first
        self._tickets = itertools.count()
        self.in_flight = 0
        self.sent = 0
        self._requests_spent = 0.0
        self._tokens_spent = 0.0
        self._usage_scale = 1.0  #: the endpoint's prompt tokens per estimated one, from `usage`
        self._token_floor = TOKEN_SCALE_RANGE[0]  #: raised by 429s the token budget did not foresee
        self.latency: float | None = None
        self.paced = False
        self._next_send = 0.0
        self._hold_until = 0.0
        self._cuts_in_row = 0  #: window cuts since the last success
        self._not_before: dict[int, float] = {}  #: when a request that got 429 may go again
        self._last_served = self._clock()
        self.rate_limited = 0  #: 429s
        self.waits_for_budget = 0  #: requests that waited for the budget the headers gave
        self.held_s = 0.0

    # -- the call path --------------------------------------------------------------------------
    def attempts(self, call: Callable[[], Awaitable[list[ChatResponse]]], prompt_tokens: float, max_tokens: float,
                 on_start: Callable[[], None] | None = None) -> Callable[[], Awaitable[list[ChatResponse]]]:
        """Return a function making one attempt of `call` through the limiter (give it to
        `with_retries`); every attempt keeps the request's place in line."""
        ticket = next(self._tickets)
        return lambda: self._attempt(ticket, call, prompt_tokens, max_tokens, on_start)

    async def _attempt(self, ticket: int, call, prompt_tokens: float, max_tokens: float, on_start) -> list[ChatResponse]:
        wait = self._not_before.pop(ticket, 0.0) - self._clock()
        if wait > 0:  # a 429's Retry-After: this request waits; the others go on at the cut window
            await asyncio.sleep(wait)
        send = await self._acquire(ticket, prompt_tokens, max_tokens)
        if on_start is not None:
            on_start()
        try:
            responses = await call()
        except RetryableError as exc:
            self._release()
            if exc.status == 429:
                self._on_rate_limited(ticket, send, exc)
            raise
        except BaseException:
            self._release()
            raise
        self._release()
        self._on_served(send, responses)
        return responses

    @property
    def token_scale(self) -> float:
        """Prompt tokens the endpoint charges per estimated prompt token: what its `usage` says,
        within `TOKEN_SCALE_RANGE`, and no lower than 429s for want of tokens have pushed it."""
        low, high = TOKEN_SCALE_RANGE
        return min(high, max(low, self._token_floor, self._usage_scale))

    def waits_out(self, error: RetryableError) -> bool:
        """Whether a failed attempt is retried without using the retry budget: a 429, while the
        endpoint served some request within `patience` seconds."""
        return error.status == 429 and self._clock() - self._last_served < self.patience

    async def _acquire(self, ticket: int, prompt_tokens: float, max_tokens: float) -> _Send:
        """Wait until this request is the oldest waiting and the window, the pace, a hold and the
        server's budget all let it go; then count it as sent. (No lock: the event loop runs one
        task at a time and nothing below awaits between the last check and the count.)"""
        pressed = for_budget = False
        heapq.heappush(self._queue, ticket)
        try:
            while True:
                timeout: float | None = None
                if self._queue[0] == ticket:
                    if self.in_flight >= self.window.cap:
                        pressed = True
                    else:
                        now = self._clock()
                        cost = prompt_tokens * self.token_scale + max_tokens
                        pace = self._next_send - now if self.paced else 0.0
                        hold = self._hold_until - now
                        budget = self.budget.wait(cost, self._requests_spent, self._tokens_spent, now,
                                                  self.latency or _LATENCY_GUESS_S)
                        timeout = max(pace, hold, budget)
                        if timeout <= 0:
                            break
                        pressed = pressed or pace >= max(hold, budget)
                        for_budget = for_budget or budget > max(pace, hold)
                await self._wait_turn(ticket, timeout)
        except BaseException:
            self._queue.remove(ticket)
            heapq.heapify(self._queue)
            self._changed()
            raise
        heapq.heappop(self._queue)
        self.in_flight += 1
        self.sent += 1
        self._requests_spent += 1
        self._tokens_spent += cost
        self.waits_for_budget += for_budget
        self._next_send = max(self._next_send, now) + (self.latency or _LATENCY_GUESS_S) / self.window.size
        self._changed()
        return _Send(self.sent, now, prompt_tokens, cost, self._requests_spent, self._tokens_spent, pressed)

    async def _wait_turn(self, ticket: int, timeout: float | None) -> None:
        """Sleep until `_changed` wakes this request (only the oldest waiting one is woken: a
        release, a send or a reply can only let that one go), or `timeout` seconds."""
        loop = asyncio.get_running_loop()
        wake = self._wake[ticket] = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _resolve, wake)
        try:
            await wake
        finally:
            self._wake.pop(ticket, None)
            if timer is not None:
                timer.cancel()

    def _changed(self) -> None:
        """Wake the oldest waiting request to look again."""
        if self._queue:
            _resolve(self._wake.get(self._queue[0]))

    def _release(self) -> None:
        self.in_flight -= 1
        self._changed()

    # -- what replies teach ---------------------------------------------------------------------
    def _on_served(self, send: _Send, responses: Sequence[ChatResponse]) -> None:
        now = self._clock()
        took = now - send.at
        self.latency = took if self.latency is None else (1 - _EWMA) * self.latency + _EWMA * took
        counted = sum(r.tokens_in for r in responses)
        if counted > 0 and send.prompt_tokens > 0:
            self._usage_scale = (1 - _EWMA) * self._usage_scale + _EWMA * (counted / send.prompt_tokens)
        self._token_floor = max(TOKEN_SCALE_RANGE[0], self._token_floor * 0.995)
        headers = next((r.rate_limit for r in reversed(responses) if r.rate_limit is not None), None)
        if headers is not None:
            self.budget.update(headers, send.at, send.requests_spent, send.tokens_spent)
        self.window.on_success(send.pressed, now)
        self._cuts_in_row = 0
        self._last_served = now
        self._changed()

    def _on_rate_limited(self, ticket: int, send: _Send, exc: RetryableError) -> None:
        now = self._clock()
        self.rate_limited += 1
        self.paced = True
        headers = exc.rate_limit
        if headers is not None:  # the server did not count this request: its budget is without it
            self.budget.update(headers, send.at, send.requests_spent - 1, send.tokens_spent - send.cost)
            requests_left = headers.remaining_requests is None or headers.remaining_requests >= 1
            if headers.remaining_tokens is not None and requests_left:
                # out of tokens although the budget let it go: requests cost more than estimated
                # (the floor sinks back slowly with each success, see `_on_served`)
                self._token_floor = min(TOKEN_SCALE_RANGE[1], self.token_scale * 1.25)
        if exc.retry_after is not None:  # this request comes back when the server said
            self._not_before[ticket] = now + exc.retry_after
        if not self.window.on_rate_limited(send.no, self.sent, now, self.latency or _LATENCY_GUESS_S):
            return  # sent before the last cut: the same burst of 429s
        self._cuts_in_row += 1
        if self._cuts_in_row > 1:  # 429s went on after a cut: hold everyone as the server said, or probe
            pause = min(PROBE_CAP_S, _FIRST_PROBE_S * 2 ** (self._cuts_in_row - 2))
            self._hold(now, pause if exc.retry_after is None else exc.retry_after)

    def _hold(self, now: float, seconds: float) -> None:
        """Hold every new request for `seconds` from `now` (counting the time held in `held_s`)."""
        until = now + seconds
        if until > self._hold_until:
            self.held_s += until - max(self._hold_until, now)
            self._hold_until = until

    # -- what the run settled at ----------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """The limit as the run left it, for the summary: `limited_by` ("headers": requests waited
        for the budget the endpoint's headers gave; "429s": the window learnt from 429s; "nothing":
        the endpoint never held anything back), `concurrency` (the window: requests in flight),
        `requests_per_s` (the pace after 429s: window / latency; null before any),
        `allowed_requests_per_s` / `allowed_tokens_per_min` (the refill rates the headers gave;
        null without), `rate_limited` (429s), `window_cuts`, `held_s` (time new requests were held
        by Retry-After or probe pauses), `waits_for_budget` (requests that waited for the headers'
        budget), `latency_s`, `token_scale` (prompt tokens charged per estimated one)."""
        requests, tokens = self.budget.request_rate.estimate, self.budget.token_rate.estimate
        limited_by = "headers" if self.waits_for_budget else "429s" if self.rate_limited else "nothing"
        return {
            "limited_by": limited_by,
            "ceiling": self.window.ceiling,
            "concurrency": round(self.window.size, 2),
            "requests_per_s": round(self.window.size / self.latency, 2) if self.paced and self.latency else None,
            "allowed_requests_per_s": None if requests is None else round(requests, 2),
            "allowed_tokens_per_min": None if tokens is None else round(tokens * 60),
            "rate_limited": self.rate_limited,
            "window_cuts": self.window.cuts,
            "held_s": round(self.held_s, 2),
            "waits_for_budget": self.waits_for_budget,
            "latency_s": None if self.latency is None else round(self.latency, 3),
            "token_scale": round(self.token_scale, 2),
        }


def _resolve(future: asyncio.Future | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def describe(report: dict[str, Any] | None) -> str:
    """One line for the terminal summary: what limit the run settled at."""
    if not report:
        return "fixed (--fixed-concurrency)"
    allowed = [f"{report['allowed_requests_per_s']:g} requests/s" if report["allowed_requests_per_s"] else "",
               f"{report['allowed_tokens_per_min']:g} tokens/min" if report["allowed_tokens_per_min"] else ""]
    allows = ", ".join(a for a in allowed if a)
    if report["limited_by"] == "headers":
        head = f"kept to the endpoint's headers: it allows {allows}"
    elif report["limited_by"] == "429s":
        pace = f", {report['requests_per_s']:g} requests/s" if report["requests_per_s"] else ""
        head = f"learnt from 429s: settled at {report['concurrency']:g} in flight{pace}"
    else:
        head = f"not reached: up to {report['concurrency']:g} in flight" + (f" (endpoint allows {allows})" if allows else "")
    return f"{head}; {report['rate_limited']} x 429"
