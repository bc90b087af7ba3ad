"""`generation.openai_server.RateLimit`: OpenAI's request and token rate limits in front of a
responder (the stand-in endpoint of the rate-limit tests and benchmark)."""

from __future__ import annotations

import time

import pytest

from generation.openai_server import RateLimit, Reply, completion_body, format_duration, prompt_tokens
from generation.ratelimit import parse_duration, read_rate_limit

BODY = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 10}


def _answer(body):
    return completion_body("m", "fine", prompt_tokens(body), 1)


def test_requests_beyond_the_bucket_get_429_with_retry_after_and_budget_headers():
    limit = RateLimit(_answer, requests_per_s=2, headers=True)
    first, second, third = (limit(BODY) for _ in range(3))
    assert first.status == second.status == 200 and first.body["choices"][0]["message"]["content"] == "fine"
    assert read_rate_limit(first.headers).remaining_requests == 1 and read_rate_limit(second.headers).remaining_requests == 0
    assert third.status == 429 and third.body["error"]["code"] == "rate_limit_exceeded"
    seen = read_rate_limit(third.headers)
    assert seen.retry_after == 1.0 and seen.limit_requests == 2 and seen.remaining_requests == 0
    assert 0.9 <= seen.reset_requests <= 1.0  # empty: full again in a second
    assert (limit.admitted, limit.rejected) == (2, 1) and [status for _, status in limit.log] == [200, 200, 429]
    time.sleep(0.55)
    assert limit(BODY).status == 200  # refilled at 2 per second


def test_tokens_are_charged_prompt_plus_max_tokens_and_limited_too():
    cost = prompt_tokens(BODY) + 10
    assert prompt_tokens(BODY) == 14  # 40 characters / 4 + 4 for the message
    limit = RateLimit(_answer, requests_per_s=100, tokens_per_min=60 * cost * 2, headers=True)
    assert [limit(BODY).status for _ in range(3)] == [200, 200, 429]
    assert limit.tokens_charged == 2 * cost
    assert "tokens" in limit(BODY).body["error"]["message"]


def test_bare_429s_storms_and_headerless_endpoints():
    quiet = RateLimit(_answer, requests_per_s=1, headers=False, bare_share=1.0)
    ok, bare = quiet(BODY), quiet(BODY)
    assert isinstance(ok, Reply) and ok.headers == {} and bare.status == 429 and bare.headers == {}
    stormy = RateLimit(_answer, requests_per_s=100, headers=True)
    now = time.monotonic()
    stormy.storm(now, now + 0.3)
    reply = stormy(BODY)
    assert reply.status == 429 and reply.headers["retry-after"] == "1" and "storm" in reply.body["error"]["message"]
    time.sleep(0.35)
    assert stormy(BODY).status == 200
    with pytest.raises(ValueError):
        RateLimit(_answer, requests_per_s=0)


@pytest.mark.parametrize("seconds", [0.0, 0.02, 0.5, 1.0, 1.25, 59.9, 360.0, 3725.5])
def test_reset_times_are_written_as_openai_writes_them_and_read_back(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=0.0006)
