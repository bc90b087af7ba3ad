"""`generation.retry`: the one retry loop of the engine and the LLM judge, against real servers on
127.0.0.1 through the real `openai` client."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from generation.backends.base import BackendAuthError, ChatRequest, RetryableError
from generation.backends.openai_backend import OpenAIBackend
from generation.judge import JudgeConfig, judge_tasks
from generation.limiter import AdaptiveLimiter
from generation.openai_server import RateLimit
from generation.prompts import Message
from generation.retry import RetriesExhausted, RetryPolicy, with_retries
from subjlab.records import read_judgments
from subjlab.tasks import get_task

REQUEST = ChatRequest((Message("user", "Write an SMS text message."),), max_tokens=20)


def _complete_with_retries(server, policy: RetryPolicy, seen: list[RetryableError]):
    async def go():
        backend = OpenAIBackend(model="scripted", base_url=server.url, api_key="test", timeout=5)
        try:
            return await with_retries(lambda: backend.complete([REQUEST]), policy, random.Random(0), seen.append)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_retryable_failures_are_retried_until_a_reply_comes(serve, scripted):
    responder = scripted(faults={0: ("status", 503), 1: ("status", 429, {"Retry-After": "0"})})
    seen: list[RetryableError] = []
    [reply] = _complete_with_retries(serve(responder), RetryPolicy(max_retries=2, backoff_base=0.01), seen)
    assert reply.text == responder.text(responder.log[2][1])
    assert responder.count == 3 and [e.status for e in seen] == [503, 429]
    assert seen[1].retry_after == 0.0


def test_exhausted_retries_name_the_attempts_and_the_last_error(serve, scripted):
    responder = scripted(always=("status", 500))
    with pytest.raises(RetriesExhausted, match="gave up after 2 attempts.*HTTP 500") as info:
        _complete_with_retries(serve(responder), RetryPolicy(max_retries=1, backoff_base=0.01), [])
    assert info.value.attempts == 2 and info.value.last.status == 500 and responder.count == 2


def test_rejected_credentials_are_not_retried(serve, scripted):
    responder = scripted(always=("status", 401))
    with pytest.raises(BackendAuthError, match="401"):
        _complete_with_retries(serve(responder), RetryPolicy(max_retries=3, backoff_base=0.01), [])
    assert responder.count == 1


def test_backoff_doubles_up_to_its_cap_with_jitter_and_retry_after_wins():
    rng = random.Random(1)
    policy = RetryPolicy(backoff_base=1.0, backoff_max=5.0)
    for attempt, base in enumerate([1.0, 2.0, 4.0, 5.0, 5.0]):
        assert base * 0.5 <= policy.delay(attempt, None, rng) <= base
    assert 3.0 <= policy.delay(0, 3.0, rng) <= 3.3
    exact = RetryPolicy(backoff_base=1.0, backoff_max=60.0, jitter=False)
    assert [exact.delay(n, None, rng) for n in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)


def test_the_llm_judge_retries_through_the_same_loop(serve, scripted, task_data, tmp_path):
    responder = scripted(faults={0: ("status", 503)}, text=lambda body: "A")
    server = serve(responder)
    config = JudgeConfig(backend="openai", model="scripted", base_url=server.url, per_pair=2, n_examples=1,
                         data_dir=task_data, cache=False, max_retries=1)
    summary = judge_tasks([get_task("sms_spam"), get_task("humor")], config, tmp_path / "judgments.jsonl")
    assert summary.written == 2 and summary.requests == 2
    assert responder.count == 4  # one call of two requests failed (503) and was repeated whole
    assert len(read_judgments(tmp_path / "judgments.jsonl")) == 2


def _complete_through_limiter(server, policy: RetryPolicy, limiter: AdaptiveLimiter | None, seen: list[RetryableError]):
    async def go():
        backend = OpenAIBackend(model="scripted", base_url=server.url, api_key="test", timeout=5)

        def call():
            return backend.complete([REQUEST])

        try:
            attempt = call if limiter is None else limiter.attempts(call, 10, REQUEST.max_tokens)
            return await with_retries(attempt, policy, random.Random(0), seen.append, limiter)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_429s_through_the_limiter_do_not_use_up_the_retry_budget(serve, scripted):
    faults = {n: ("status", 429, {"Retry-After": "0"}) for n in range(4)}
    responder = scripted(faults=faults)
    seen: list[RetryableError] = []
    [reply] = _complete_through_limiter(serve(responder), RetryPolicy(max_retries=1, backoff_base=0.01),
                                        AdaptiveLimiter(4), seen)
    assert reply.text == responder.text(responder.log[4][1]) and responder.count == 5
    assert [e.status for e in seen] == [429] * 4
    # the same endpoint without the limiter: the second 429 ends the request
    with pytest.raises(RetriesExhausted, match="gave up after 2 attempts.*429"):
        _complete_through_limiter(serve(scripted(faults=faults)), RetryPolicy(max_retries=1, backoff_base=0.01), None, [])


def test_the_limiter_gives_up_on_429s_when_nothing_is_served_for_its_patience(serve, scripted):
    responder = scripted(always=("status", 429, {"Retry-After": "0"}))
    start = time.monotonic()
    with pytest.raises(RetriesExhausted, match="429"):
        _complete_through_limiter(serve(responder), RetryPolicy(max_retries=1, backoff_base=0.01),
                                  AdaptiveLimiter(4, patience=0.8), [])
    took = time.monotonic() - start
    assert 0.8 <= took < 5.0
    assert responder.count < 20  # probed with pauses between, not hammered


def test_the_client_leaves_429s_to_the_engine_and_hands_over_the_rate_limit_headers(serve, scripted):
    limit = RateLimit(scripted(), requests_per_s=1, tokens_per_min=60_000, headers=True)
    server = serve(limit)

    async def go():
        backend = OpenAIBackend(model="scripted", base_url=server.url, api_key="test", timeout=5)
        try:
            assert backend.client.max_retries == 0
            [reply] = await backend.complete([REQUEST])
            with pytest.raises(RetryableError) as info:
                await backend.complete([REQUEST])
            return reply, info.value
        finally:
            await backend.aclose()

    reply, error = asyncio.run(go())
    assert limit.admitted == 1 and limit.rejected == 1  # the client did not retry the 429 itself
    assert reply.rate_limit.limit_requests == 1 and reply.rate_limit.remaining_requests == 0
    assert reply.rate_limit.limit_tokens == 1000 and 0 < reply.rate_limit.reset_tokens <= 1.0
    assert error.status == 429 and error.retry_after == 1.0 and error.rate_limit.retry_after == 1.0
    assert error.rate_limit.remaining_requests == 0 and 0 < error.rate_limit.reset_requests <= 1.0
