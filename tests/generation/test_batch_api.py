"""The OpenAI Batch API backend against the Files/Batches endpoints of a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import pytest

from generation.backends.base import BackendError, ChatRequest
from generation.batch_api import OpenAIBatchBackend
from generation.engine import GenerationConfig, generate
from generation.prompts import ZeroShotConversation
from subjlab.tasks import get_task


def _batch_lines(server, batch):
    return [json.loads(x) for x in server.store.file_data(batch["input_file_id"]).decode().splitlines()]


def test_a_run_through_the_batch_api_sends_one_batch_per_round(serve, scripted, tmp_path):
    server = serve(scripted())
    config = GenerationConfig(task="sms_spam", per_label=3, backend="openai-batch", base_url=server.url, model="gpt-4o-mini",
                              diversity_every=2, max_turns=1, batch_poll_interval=0.05, near_duplicate_threshold=None,
                              cache_path=tmp_path / "c.sqlite", progress=False)
    summary = generate(config, tmp_path / "out.jsonl")
    batches = server.store.batches()
    assert summary.complete and summary.per_label == {"ham": 3, "spam": 3}
    assert len(batches) == summary.rounds == 1 and all(b["status"] == "completed" for b in batches)
    lines = _batch_lines(server, batches[0])
    assert [line["custom_id"] for line in lines] == [f"r{i}" for i in range(6)]
    assert {line["url"] for line in lines} == {"/v1/chat/completions"}
    assert {line["body"]["model"] for line in lines} == {"gpt-4o-mini"}
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {r["backend"] for r in rows} == {"openai-batch"}
    half_price = (summary.tokens_in * 0.15 + summary.tokens_out * 0.60) / 2 / 1e6
    assert summary.estimated_cost_usd == round(half_price, 6)


def test_zero_shot_turns_become_successive_batches(serve, scripted, tmp_path):
    server = serve(scripted())
    config = GenerationConfig(task="sms_spam", labels=("spam",), per_label=3, backend="openai-batch", base_url=server.url,
                              model="m", conversations=1, diversity_every=2, batch_poll_interval=0.05,
                              near_duplicate_threshold=None, cache_path=tmp_path / "c.sqlite", progress=False)
    generate(config, tmp_path / "out.jsonl")
    batches = server.store.batches()
    assert len(batches) == 3
    third = _batch_lines(server, batches[2])[0]["body"]["messages"]
    assert len(third) == 6 and third[-1]["content"].startswith("Can you provide something more diverse")


def test_failed_lines_are_resubmitted_in_a_follow_up_batch(serve, scripted, tmp_path):
    server = serve(scripted(faults={1: ("status", 500)}))
    backend = OpenAIBatchBackend(model="m", base_url=server.url, poll_interval=0.05, state_path=tmp_path / "state.json")
    task = get_task("sms_spam")
    reqs = [ChatRequest(tuple(ZeroShotConversation(task, lab, i).next_messages()[0]), max_tokens=20, seed=i)
            for i, lab in enumerate(["ham", "spam", "ham"])]
    responses = asyncio.run(backend.complete(reqs))
    batches = server.store.batches()
    assert len(batches) == 2 and batches[0]["error_file_id"] and batches[0]["request_counts"]["failed"] == 1
    assert len(_batch_lines(server, batches[1])) == 1  # only the failed line again
    assert all(r.text for r in responses) and len(responses) == 3


def test_lines_that_keep_failing_stop_with_a_clear_error(serve, scripted, tmp_path):
    server = serve(scripted(always=("status", 400)))
    backend = OpenAIBatchBackend(model="m", base_url=server.url, poll_interval=0.05, max_resubmits=1,
                                 state_path=tmp_path / "state.json")
    task = get_task("sms_spam")
    reqs = [ChatRequest(tuple(ZeroShotConversation(task, "ham", 0).next_messages()[0]), max_tokens=20)]
    with pytest.raises(BackendError, match="still failed after 1 resubmissions.*HTTP 400"):
        asyncio.run(backend.complete(reqs))
    assert len(server.store.batches()) == 2


def test_a_restarted_run_waits_for_its_running_batch_instead_of_submitting_again(serve, scripted, tmp_path):
    server = serve(scripted(latency=0.2))
    task = get_task("sms_spam")
    reqs = [ChatRequest(tuple(ZeroShotConversation(task, lab, i).next_messages()[0]), max_tokens=20, seed=i)
            for i, lab in enumerate(["ham", "spam", "ham", "spam"])]

    def backend():
        return OpenAIBatchBackend(model="m", base_url=server.url, poll_interval=0.05, state_path=tmp_path / "state.json")

    first = backend()
    with pytest.raises(asyncio.TimeoutError):  # the process "dies" while its batch runs
        asyncio.run(asyncio.wait_for(first.complete(reqs), timeout=0.3))
    assert first.batches_submitted == 1
    second = backend()
    responses = asyncio.run(second.complete(reqs))
    assert second.batches_submitted == 0 and len(server.store.batches()) == 1
    assert len(responses) == 4 and json.loads((tmp_path / "state.json").read_text()) == {}
