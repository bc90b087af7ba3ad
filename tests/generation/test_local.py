"""The embedded SmolLM2-135M-Instruct: converted once and cached, batched generation, real labeled
texts for a real task, and the same model behind a real OpenAI-compatible server on loopback."""

from __future__ import annotations

import time

import pytest
from openai import OpenAI

from generation.backends.base import ChatRequest
from generation.backends.local import DEFAULT_LOCAL_MODEL, ensure_converted, plan_batches
from generation.engine import GenerationConfig, generate
from generation.filters import is_meta
from generation.openai_server import ChatCompletionServer, local_model_responder
from generation.prompts import ZeroShotConversation
from subjlab.models import smollm2_gguf_path
from subjlab.records import read_examples
from subjlab.tasks import get_task

pytestmark = pytest.mark.slow


def test_converted_model_is_cached_and_not_converted_again(local_backend):
    start = time.monotonic()
    path = ensure_converted(smollm2_gguf_path())
    assert time.monotonic() - start < 5  # a finished conversion is reused, not redone (~1 min)
    assert path == local_backend.model_dir
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert local_backend.model == DEFAULT_LOCAL_MODEL and local_backend.context_window == 8192


def _requests(task_name: str, labels: list[str], max_tokens: int) -> list[ChatRequest]:
    task = get_task(task_name)
    out = []
    for i, label in enumerate(labels):
        msgs, _ = ZeroShotConversation(task, label, i).next_messages()
        out.append(ChatRequest(tuple(msgs), max_tokens=max_tokens, seed=100 + i, sample_index=i))
    return out


def test_batched_generation_is_seeded_and_counts_tokens(local_backend):
    reqs = _requests("sms_spam", ["ham", "spam", "ham"], max_tokens=10)
    first = local_backend.complete_sync(reqs)
    again = local_backend.complete_sync(reqs)
    assert [r.text for r in first] == [r.text for r in again]
    for req, resp in zip(reqs, first):
        assert resp.tokens_in == local_backend.count_tokens(req.messages)
        assert 1 <= resp.tokens_out <= 10 and resp.finish_reason in ("stop", "length")
        assert resp.text.strip()


@pytest.mark.parametrize(
    ("lengths", "max_batch", "call_cost", "batches"),
    [
        ([70, 240, 72, 238, 71], 8, 100, [[0, 2, 4], [1, 3]]),  # two lengths: two batches, no row padded by 170
        ([70, 240, 72, 238, 71], 8, 1000, [[0, 1, 2, 3, 4]]),  # a call costs more than the padding
        ([], 4, 10, []),
    ],
)
def test_batches_group_prompts_of_similar_length(lengths, max_batch, call_cost, batches):
    assert plan_batches(lengths, max_batch, call_cost) == batches


def test_batches_never_exceed_the_batch_size():
    batches = plan_batches([5, 9, 5, 9, 5], 2, 1)
    assert len(batches) == 3 and all(len(b) <= 2 for b in batches)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]


def test_a_round_of_short_and_long_prompts_is_answered_in_request_order(local_backend):
    task = get_task("sms_spam")
    reqs = []
    for i, turns in enumerate([0, 3, 0, 3]):
        conv = ZeroShotConversation(task, "ham", i)
        for _ in range(turns):
            conv.add_reply("Running late, save me a seat at the cinema and order the big popcorn please.")
        msgs, _ = conv.next_messages()
        reqs.append(ChatRequest(tuple(msgs), max_tokens=8, seed=7 + i, sample_index=i))
    responses = local_backend.complete_sync(reqs)
    assert [r.tokens_in for r in responses] == [local_backend.count_tokens(q.messages) for q in reqs]
    assert responses[0].tokens_in < responses[1].tokens_in


def test_local_backend_produces_valid_labeled_texts_for_sms_spam(local_backend, tmp_path):
    task = get_task("sms_spam")
    out = tmp_path / "spam.jsonl"
    config = GenerationConfig(task="sms_spam", per_label=2, backend="local", concurrency=4, max_tokens=40,
                              max_requests=24, cache_path=tmp_path / "c.sqlite", progress=False)
    summary = generate(config, out, backend=local_backend)
    records = read_examples(out)
    assert summary.complete, summary.to_dict()
    assert sorted(r.label for r in records) == ["ham", "ham", "spam", "spam"]
    for rec in records:
        assert rec.extra["backend"] == "local" and rec.extra["model"] == DEFAULT_LOCAL_MODEL
        assert 3 <= len(rec.text.split()) <= int(task.word_limit * 1.5)
        assert not is_meta(rec.text)
    assert len({r.text for r in records}) == 4
    assert summary.tokens_out > 0 and summary.estimated_cost_usd == 0.0


def test_openai_client_against_a_loopback_server_serving_smollm2(local_backend, tmp_path):
    with ChatCompletionServer(local_model_responder(local_backend), model_name=local_backend.model) as server:
        client = OpenAI(base_url=server.url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model=local_backend.model,
            messages=[{"role": "user", "content": "Write a short text message to a friend."}],
            max_tokens=12,
            seed=1,
        )
        assert isinstance(reply.choices[0].message.content, str) and reply.choices[0].message.content
        assert 1 <= reply.usage.completion_tokens <= 12 and reply.usage.prompt_tokens > 5

        config = GenerationConfig(task="sms_spam", labels=("spam",), per_label=1, backend="openai", base_url=server.url,
                                  model=local_backend.model, concurrency=2, max_tokens=40, max_requests=12,
                                  cache_path=tmp_path / "c.sqlite", progress=False)
        summary = generate(config, tmp_path / "out.jsonl")
    (rec,) = read_examples(tmp_path / "out.jsonl")
    assert summary.complete and rec.label == "spam"
    assert rec.extra["backend"] == "openai" and rec.extra["model"] == DEFAULT_LOCAL_MODEL
    assert summary.requests >= 1 and summary.tokens_out > 0
