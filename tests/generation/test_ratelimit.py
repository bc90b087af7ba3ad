"""`generation.ratelimit`: reading OpenAI's rate-limit headers and Retry-After, and the client's
view of the endpoint's buckets that decides when a request fits."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from generation.ratelimit import (
    SLACK_S,
    RateLimitHeaders,
    RefillRate,
    ServerBudget,
    parse_duration,
    parse_retry_after,
    read_rate_limit,
)


@pytest.mark.parametrize(
    "text, seconds",
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0s", 0.0), ("1.5s", 1.5),
     ("250us", 0.00025), ("17", 17.0), ("0.5", 0.5), (" 2m ", 120.0)],
)
def test_reset_durations_in_openais_format_are_read_as_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "1x", "-1s", "1s2", "s", "m1s", "inf", "nan"])
def test_unreadable_durations_are_none_not_zero(text):
    assert parse_duration(text) is None


def test_retry_after_prefers_milliseconds_then_seconds_then_a_date():
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "7"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "junk", "retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= parse_retry_after({"retry-after": when}) <= 30
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after({"retry-after": past}) == 0.0
    assert parse_retry_after({"retry-after": "whenever"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


def test_all_rate_limit_headers_are_read_case_insensitively():
    headers = httpx.Headers({
        "X-RateLimit-Limit-Requests": "5000", "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-reset-requests": "12ms", "x-ratelimit-limit-tokens": "160000",
        "x-ratelimit-remaining-tokens": "159976", "x-ratelimit-reset-tokens": "6m0s", "Retry-After": "2",
    })
    assert read_rate_limit(headers) == RateLimitHeaders(5000, 4999, 0.012, 160000, 159976, 360.0, 2.0)


def test_a_reply_without_rate_limit_headers_reads_as_none_and_bad_values_as_missing():
    assert read_rate_limit(httpx.Headers({"content-type": "application/json"})) is None
    partial = read_rate_limit({"x-ratelimit-remaining-requests": "-1", "x-ratelimit-remaining-tokens": "12",
                               "x-ratelimit-reset-tokens": "later"})
    assert partial == RateLimitHeaders(remaining_tokens=12.0)
    assert partial.has_budget and not RateLimitHeaders(retry_after=1.0).has_budget


def test_refill_rate_narrows_to_the_true_rate_from_rounded_replies():
    # a bucket of 8 refilled at 8/s: levels 0.3, 2.6, 5.9 are reported as remaining 0, 2, 5
    rate = RefillRate()
    estimates = [rate.update(int(level), 8, (8 - level) / 8) for level in (0.3, 2.6, 5.9)]
    assert estimates[0] == pytest.approx(7.5 / 0.9625)  # one reply: the middle of [7, 8] / reset
    assert abs(estimates[-1] - 8.0) < abs(estimates[0] - 8.0) and estimates[-1] == pytest.approx(8.0, rel=0.03)
    assert rate.update(0, 100, 1.0) == pytest.approx(99.5)  # a reply that contradicts them: a new limit


def test_budget_holds_a_request_until_the_bucket_has_refilled_enough():
    budget = ServerBudget()
    # request number 1 (sent at t=10) left 0 of 10 requests, full again in 1 s: refill 10/s
    budget.update(RateLimitHeaders(limit_requests=10, remaining_requests=0, reset_requests=1.0), 10.0, 1, 50)
    rate = budget.request_rate.estimate
    assert rate == pytest.approx(9.5)
    wait = budget.wait(0, 1, 0, now=10.0)  # nothing sent since: one request needs 1 - 0.5 + slack
    assert wait == pytest.approx((1 - 0.5) / rate + SLACK_S)
    assert budget.wait(0, 1, 0, now=10.0 + wait + 1e-9) == 0.0
    # two more requests sent since that reply: they come off the budget too
    assert budget.wait(0, 3, 0, now=10.0) == pytest.approx((3 - 0.5) / rate + SLACK_S)


def test_budget_checks_tokens_at_the_requests_cost():
    budget = ServerBudget()
    budget.update(RateLimitHeaders(limit_tokens=6000, remaining_tokens=5999, reset_tokens=0.01), 0.0, 5, 1000)
    assert budget.wait(500, 5, 1000, now=0.0) == 0.0
    budget.update(RateLimitHeaders(limit_tokens=6000, remaining_tokens=100, reset_tokens=1.0), 1.0, 7, 1400)
    token_rate = budget.token_rate.estimate
    assert token_rate == pytest.approx(5899.5, rel=0.01)
    assert budget.wait(500, 7, 1400, now=1.0) == pytest.approx((500 - 100.5) / token_rate + SLACK_S, rel=0.01)
    assert budget.tokens.remaining == 100 and budget.readings == 2


def test_a_reply_counted_early_does_not_make_the_budget_optimistic():
    # requests 1 and 2 went out together; the server counted 2 first (9 left), then 1 (8 left)
    second = RateLimitHeaders(limit_requests=10, remaining_requests=9, reset_requests=0.1)
    first = RateLimitHeaders(limit_requests=10, remaining_requests=8, reset_requests=0.2)
    alone = ServerBudget()
    alone.update(second, 0.0, 2, 0)
    both = ServerBudget()
    both.update(second, 0.0, 2, 0)
    both.update(first, 0.0, 1, 0)
    # 7 more sent after request 2: its reply alone says 2 more fit; request 1's reply knows better
    assert alone.wait(0, 9, 0, now=0.0) == 0.0
    assert both.wait(0, 9, 0, now=0.0) > 0.0
    assert both.requests.remaining == 8 and both.readings == 2


def test_without_a_limit_header_the_budget_waits_for_the_reset():
    budget = ServerBudget()
    budget.update(RateLimitHeaders(remaining_requests=0, reset_requests=2.0), 5.0, 1, 0)
    assert budget.wait(0, 1, 0, now=5.5) == pytest.approx(1.5)
    assert budget.wait(0, 1, 0, now=7.0) == 0.0  # full again, size unknown: the 429s will tell


def test_a_reply_that_later_sends_have_outdated_holds_requests_at_most_until_its_bucket_is_full():
    budget = ServerBudget()
    budget.update(RateLimitHeaders(limit_requests=4, remaining_requests=0, reset_requests=1.0), 0.0, 1, 0)
    # five requests went out since (their replies said so, then were pushed out): more than the
    # bucket holds, so by the time it is full again this reply cannot describe the present
    wait = budget.wait(0, 6, 0, now=0.0)
    assert 0.0 < wait <= 4 / budget.request_rate.estimate
    assert budget.wait(0, 6, 0, now=wait + 1e-6) == 0.0
    # likewise when what was sent since leaves less than the reserve: full again, it no longer holds
    budget = ServerBudget()
    budget.update(RateLimitHeaders(limit_requests=10, remaining_requests=3, reset_requests=0.7), 0.0, 7, 0)
    assert budget.wait(0, 16, 0, now=5.0) == 0.0
