"""`generation.retry`: the one retry loop of the engine and the LLM judge, against real servers on
127.0.0.1 through the real `openai` client."""

from __future__ import annotations

import asyncio
import random

import pytest

from generation.backends.base import BackendAuthError, ChatRequest, RetryableError
from generation.backends.openai_backend import OpenAIBackend
from generation.judge import JudgeConfig, judge_tasks
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
