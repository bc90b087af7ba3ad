"""The engine against real OpenAI-compatible servers on 127.0.0.1 (the real `openai` client):
concurrency, retries and fault handling, the response cache, budgets, conversations, resume,
one fsync per round, requests sent ahead of their round, abandoning stalled conversations."""

from __future__ import annotations

import json
import os

import pytest

from generation.backends.base import BackendAuthError
from generation.backends.openai_backend import estimate_tokens
from generation.engine import GenerationConfig, GenerationError, generate, summary_path
from generation.prompts import DIVERSITY_PROMPT, IMITATION_INSTRUCTION, Message
from subjlab.records import read_examples


def _config(server, tmp_path, **kw) -> GenerationConfig:
    base = dict(
        task="sms_spam",
        backend="openai",
        base_url=server.url,
        model="scripted",
        per_label=4,
        near_duplicate_threshold=None,  # the MiniLM checks have their own tests (test_filters.py)
        demo_copy_threshold=None,
        cache_path=tmp_path / "cache.sqlite",
        backoff_base=0.01,
        progress=False,
    )
    base.update(kw)
    return GenerationConfig(**base)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_writes_exact_count_with_provenance_and_summary(serve, scripted, tmp_path):
    responder = scripted()
    server = serve(responder)
    out = tmp_path / "out.jsonl"
    summary = generate(_config(server, tmp_path, per_label=5, seed=3), out)
    records = read_examples(out)
    assert summary.per_label == {"ham": 5, "spam": 5} and summary.complete
    assert len(records) == 10
    assert sorted(r.id for r in records) == sorted(f"sms_spam:zero-shot:{lab}:{n}" for lab in ("ham", "spam") for n in range(5))
    rec = records[0].to_dict()
    for key in ("task", "mode", "backend", "model", "prompt_hash", "demonstration_ids", "conversation",
                "conversation_turn", "seed", "created_at"):
        assert key in rec
    assert (rec["task"], rec["mode"], rec["backend"], rec["model"], rec["seed"]) == ("sms_spam", "zero-shot", "openai", "scripted", 3)
    assert summary.requests == responder.count == 10
    assert summary.tokens_in == 20 * 10 and summary.tokens_out == sum(len(r.text.split()) for r in records)
    saved = json.loads(summary_path(out).read_text())
    assert saved["per_label"] == {"ham": 5, "spam": 5} and saved["requests"] == 10 and saved["complete"] is True


def test_concurrency_is_bounded_and_used(serve, scripted, tmp_path):
    responder = scripted(latency=0.15)
    server = serve(responder)
    generate(_config(server, tmp_path, per_label=12, concurrency=4), tmp_path / "out.jsonl")
    assert responder.max_in_flight == 4


def test_rate_limit_honours_retry_after(serve, scripted, tmp_path):
    responder = scripted(faults={0: ("status", 429, {"Retry-After": "1"})})
    server = serve(responder)
    summary = generate(_config(server, tmp_path, per_label=1, labels=("spam",), concurrency=1), tmp_path / "out.jsonl")
    (t0, first), (t1, second) = responder.log[:2]
    assert first["messages"] == second["messages"]  # the same request, retried
    assert t1 - t0 >= 1.0
    assert summary.retries == 1 and summary.per_label == {"spam": 1}


def test_server_errors_timeouts_and_malformed_bodies_are_retried(serve, scripted, tmp_path):
    faults = {0: ("status", 500), 1: ("sleep", 1.5), 2: ("malformed",), 3: ("no_choices",), 4: ("status", 503)}
    responder = scripted(faults=faults)
    server = serve(responder)
    cfg = _config(server, tmp_path, per_label=1, labels=("ham",), concurrency=1, request_timeout=0.5)
    summary = generate(cfg, tmp_path / "out.jsonl")
    assert summary.retries == 5
    assert summary.requests == 1 and summary.per_label == {"ham": 1}
    assert len({json.dumps(b["messages"]) for _, b in responder.log}) == 1


def test_auth_error_stops_at_once(serve, scripted, tmp_path):
    responder = scripted(always=("status", 401))
    server = serve(responder)
    with pytest.raises(BackendAuthError, match="401"):
        generate(_config(server, tmp_path, concurrency=1, conversations=1), tmp_path / "out.jsonl")
    assert responder.count == 1  # no retry
    assert json.loads(summary_path(tmp_path / "out.jsonl").read_text())["stopped"].startswith("error:")


def test_gives_up_after_max_retries_with_a_clear_error(serve, scripted, tmp_path):
    responder = scripted(always=("status", 500))
    server = serve(responder)
    with pytest.raises(GenerationError, match="gave up after 3 attempts.*500"):
        generate(_config(server, tmp_path, max_retries=2, concurrency=1, conversations=1), tmp_path / "out.jsonl")
    assert responder.count == 3


def test_bad_request_is_not_retried(serve, scripted, tmp_path):
    responder = scripted(always=("status", 400))
    server = serve(responder)
    with pytest.raises(GenerationError, match="400"):
        generate(_config(server, tmp_path, concurrency=1, conversations=1), tmp_path / "out.jsonl")
    assert responder.count == 1


def test_repeating_a_run_is_answered_from_the_cache(serve, scripted, tmp_path):
    responder = scripted()
    server = serve(responder)
    cfg = _config(server, tmp_path, per_label=6)
    first = generate(cfg, tmp_path / "a.jsonl")
    calls = responder.count
    second = generate(cfg, tmp_path / "b.jsonl")
    assert second.requests == 0 and responder.count == calls
    assert second.cache_hits == first.requests
    strip = lambda rows: [{k: v for k, v in r.items() if k != "created_at"} for r in rows]  # noqa: E731
    assert strip(_rows(tmp_path / "a.jsonl")) == strip(_rows(tmp_path / "b.jsonl"))
    third = generate(_config(server, tmp_path, per_label=6, cache=False), tmp_path / "c.jsonl")
    assert third.requests == first.requests and third.cache_hits == 0  # --no-cache asks again


def test_rerun_of_a_finished_output_makes_no_requests(serve, scripted, tmp_path):
    responder = scripted()
    server = serve(responder)
    out = tmp_path / "out.jsonl"
    generate(_config(server, tmp_path, per_label=3, cache=False), out)
    calls = responder.count
    again = generate(_config(server, tmp_path, per_label=3, cache=False), out)
    assert responder.count == calls and again.resumed == 6 and again.written == 0 and len(_rows(out)) == 6


def test_budget_stops_a_run_that_cannot_finish(serve, scripted, tmp_path):
    responder = scripted(always=("text", "Here is a spam message for you:"))
    server = serve(responder)
    summary = generate(_config(server, tmp_path, max_requests=6, max_turns=1), tmp_path / "out.jsonl")  # one-turn lanes
    assert summary.stopped == "budget" and not summary.complete
    assert summary.requests == 6 == responder.count
    assert summary.filters["meta"] == 6 and summary.written == 0


def test_zero_shot_conversation_carries_replies_and_diversity_prompt(serve, scripted, tmp_path):
    responder = scripted()
    server = serve(responder)
    cfg = _config(server, tmp_path, per_label=7, labels=("spam",), conversations=1, diversity_every=3, max_turns=20)
    generate(cfg, tmp_path / "out.jsonl")
    bodies = [b for _, b in responder.log]
    assert len(bodies) == 7
    for turn, body in enumerate(bodies):
        msgs = body["messages"]
        assert msgs[0] == {"role": "system", "content": "You are a mobile phone user writing and receiving short text messages."}
        assert len(msgs) == 2 + 2 * turn
        assert (msgs[-1]["content"] == DIVERSITY_PROMPT) == (turn in (3, 6))
        if turn:  # the previous reply is in the conversation
            prev = bodies[turn - 1]
            assert msgs[-2] == {"role": "assistant", "content": responder.text(prev)}
    turns = [r["conversation_turn"] for r in _rows(tmp_path / "out.jsonl")]
    assert turns == list(range(7))


def test_long_conversations_are_trimmed_to_the_context_window_and_say_so(serve, scripted, tmp_path):
    responder = scripted()
    server = serve(responder)
    cfg = _config(server, tmp_path, per_label=10, labels=("ham",), conversations=1, context_window=400, max_tokens=60)
    summary = generate(cfg, tmp_path / "out.jsonl")
    for _, body in responder.log:
        msgs = [Message(m["role"], m["content"]) for m in body["messages"]]
        assert estimate_tokens(msgs) <= 400 - 60
        assert "whose label is \"ham\"" in msgs[1].content  # the instruction is never trimmed
    rows = _rows(tmp_path / "out.jsonl")
    assert rows[0]["trimmed_turns"] == 0 and rows[-1]["trimmed_turns"] > 0
    assert summary.trimmed_requests == sum(1 for r in rows if r["trimmed_turns"] > 0)


def test_few_shot_requests_carry_real_labeled_examples_and_copies_are_rejected(serve, scripted, tmp_path, task_data):
    def copy_first_example(body):  # a lazy model: echo the first demonstration
        user = body["messages"][1]["content"]
        line = next(ln for ln in user.splitlines() if ln.startswith("Example 1 ("))
        return line.split("): ", 1)[1]

    responder = scripted(text=copy_first_example)
    server = serve(responder)
    cfg = _config(server, tmp_path, mode="few-shot", shots=4, max_requests=8, data_dir=task_data)
    summary = generate(cfg, tmp_path / "out.jsonl")
    assert summary.filters["demo_copy"] + summary.filters["word_limit"] == 8 and summary.written == 0
    for _, body in responder.log:
        user = body["messages"][1]["content"]
        assert user.count("Example ") == 4 and "(label: ham)" in user and "(label: spam)" in user
        assert IMITATION_INSTRUCTION in user


def test_few_shot_records_name_their_demonstrations(serve, scripted, tmp_path, task_data):
    responder = scripted()
    server = serve(responder)
    cfg = _config(server, tmp_path, mode="few-shot", shots=2, per_label=3, data_dir=task_data)
    generate(cfg, tmp_path / "out.jsonl")
    train_ids = {ex.id for ex in read_examples(task_data / "sms_spam" / "train.jsonl", id_prefix="sms_spam:train")}
    for row in _rows(tmp_path / "out.jsonl"):
        assert row["mode"] == "few-shot" and len(row["demonstration_ids"]) == 2
        assert set(row["demonstration_ids"]) <= train_ids


def test_output_of_another_task_is_refused(serve, scripted, tmp_path):
    server = serve(scripted())
    out = tmp_path / "out.jsonl"
    generate(_config(server, tmp_path, per_label=1), out)
    with pytest.raises(ValueError, match="sms_spam"):
        generate(_config(server, tmp_path, task="humor", per_label=1), out)


def test_a_torn_last_line_is_repaired_and_the_run_completes(serve, scripted, tmp_path):
    server = serve(scripted())
    out = tmp_path / "out.jsonl"
    generate(_config(server, tmp_path, per_label=3), out)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])  # a crash mid-line
    summary = generate(_config(server, tmp_path, per_label=3), out)
    assert summary.repaired_tail and summary.resumed == 4 and summary.written == 2
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == [json.loads(x)["id"] for x in lines]


# -- durability and throughput: one fsync per round, requests sent ahead ---------------------------


def test_each_round_is_made_durable_with_one_fsync(serve, scripted, tmp_path, monkeypatch):
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd):  # the OS boundary: count, then really sync
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    server = serve(scripted())
    out = tmp_path / "out.jsonl"
    summary = generate(_config(server, tmp_path, per_label=6, conversations=4, diversity_every=0, cache=False), out)
    assert summary.written == 12 and summary.rounds == 3  # 4 texts per round
    assert len(fsyncs) == summary.rounds
    assert len(_rows(out)) == 12


def test_next_turns_are_sent_while_a_slow_reply_holds_the_round(serve, scripted, tmp_path):
    slow = scripted(latency=0.02, faults={0: ("sleep", 0.6)})  # the round's first request takes 0.6 s
    server = serve(slow)
    cfg = _config(server, tmp_path, per_label=6, conversations=4, concurrency=4, cache=False)
    summary = generate(cfg, tmp_path / "ahead.jsonl")
    t_slow = slow.log[0][0]
    second_turns = [t for t, body in slow.log if len(body["messages"]) == 4]  # context, ask, reply, ask
    assert second_turns and min(second_turns) < t_slow + 0.5  # before the slow reply was back
    assert summary.unused_requests == 0 and summary.requests == slow.count == 12

    # The records do not depend on that timing: one request at a time writes the same file.
    calm = serve(scripted())
    reference = generate(_config(calm, tmp_path, per_label=6, conversations=4, concurrency=1, cache=False),
                         tmp_path / "serial.jsonl")
    keys = ("id", "text", "label", "conversation", "conversation_turn", "item", "prompt_hash")
    assert [[r[k] for k in keys] for r in _rows(tmp_path / "ahead.jsonl")] == \
        [[r[k] for k in keys] for r in _rows(tmp_path / "serial.jsonl")]
    assert reference.written == summary.written == 12


def test_requests_sent_ahead_that_are_not_needed_are_counted_not_written(serve, scripted, canned_text, tmp_path):
    def two_texts(body):  # every reply holds two texts, so each label fills in one round
        return f"1. {canned_text(body)}\n2. {canned_text({**body, 'seed': body['seed'] + 1})}"

    responder = scripted(latency=0.05, text=two_texts)
    server = serve(responder)
    summary = generate(_config(server, tmp_path, per_label=4, conversations=4, diversity_every=0), tmp_path / "out.jsonl")
    # The guess "one text per reply" sent each conversation's second turn ahead; none was needed.
    assert summary.per_label == {"ham": 4, "spam": 4} and summary.rounds == 1
    assert summary.unused_requests == 4
    assert [r["conversation_turn"] for r in _rows(tmp_path / "out.jsonl")] == [0] * 8


def test_sending_ahead_never_goes_past_the_budget(serve, scripted, tmp_path):
    responder = scripted(latency=0.02, always=("text", "Here is a spam message for you:"))  # all rejected
    server = serve(responder)
    summary = generate(_config(server, tmp_path, per_label=2, conversations=2, max_requests=5), tmp_path / "out.jsonl")
    assert summary.stopped == "budget" and responder.count <= 5 and summary.requests <= 5


# -- stalled conversations ----------------------------------------------------------------------------


@pytest.fixture
def repeats_itself(canned_text):
    """A model that, after its first reply in a conversation, only repeats that reply."""

    def reply(body):
        msgs = body["messages"]
        return msgs[2]["content"] if len(msgs) > 2 else canned_text(body)

    return reply


def test_a_stalled_conversation_is_abandoned_for_a_new_one(serve, scripted, repeats_itself, tmp_path):
    responder = scripted(text=repeats_itself)
    server = serve(responder)
    cfg = _config(server, tmp_path, per_label=3, labels=("spam",), conversations=1, max_turns=5, stall_turns=2)
    summary = generate(cfg, tmp_path / "out.jsonl")
    rows = _rows(tmp_path / "out.jsonl")
    # conversation 0: turn 0 accepted, turns 1-2 duplicates -> abandoned; the same for 1; 2 gives the last text
    assert [(r["conversation"], r["conversation_turn"]) for r in rows] == [(0, 0), (1, 0), (2, 0)]
    assert summary.abandoned_conversations == 2 and summary.filters["duplicate"] == 4
    assert summary.requests == 7 and summary.complete

    # stall_turns=0 keeps each conversation to max_turns: 4 wasted turns per conversation, not 2
    again = generate(_config(server, tmp_path, per_label=3, labels=("spam",), conversations=1, max_turns=5,
                             stall_turns=0, cache=False), tmp_path / "patient.jsonl")
    assert again.abandoned_conversations == 0 and again.requests == 11 and again.filters["duplicate"] == 8
    assert [r["text"] for r in _rows(tmp_path / "patient.jsonl")] == [r["text"] for r in rows]


def test_stall_rule_is_replayed_exactly_after_a_resume(serve, scripted, repeats_itself, tmp_path):
    responder = scripted(text=repeats_itself)
    server = serve(responder)
    cfg = dict(per_label=5, labels=("spam",), conversations=2, max_turns=6, stall_turns=2)
    full = generate(_config(server, tmp_path, **cfg), tmp_path / "full.jsonl")
    out = tmp_path / "cut.jsonl"
    out.write_text("".join(line + "\n" for line in (tmp_path / "full.jsonl").read_text().splitlines()[:2]))
    resumed = generate(_config(server, tmp_path, **cfg), out)
    assert resumed.resumed == 2 and resumed.written == 3 and resumed.requests == 0  # all from the cache
    strip = lambda rows: [{k: v for k, v in r.items() if k != "created_at"} for r in rows]  # noqa: E731
    assert strip(_rows(out)) == strip(_rows(tmp_path / "full.jsonl"))
    assert full.abandoned_conversations >= 1


def test_a_few_texts_per_label_still_come_from_conversations_with_diversity_turns(serve, scripted, tmp_path):
    """12 texts a label with room for 8 lanes used to give 12 one-turn conversations (the diversity
    prompt never sent); now each label opens ceil(12 / 3) conversations of 3 turns."""
    responder = scripted()
    server = serve(responder)
    cfg = _config(server, tmp_path, per_label=12, concurrency=8, conversations=24, diversity_every=2, max_turns=3)
    summary = generate(cfg, tmp_path / "out.jsonl")
    assert summary.complete and summary.requests == 24
    bodies = [b for _, b in responder.log]
    assert sum(b["messages"][-1]["content"] == DIVERSITY_PROMPT for b in bodies) == 8  # one in each conversation
    rows = _rows(tmp_path / "out.jsonl")
    for label in ("ham", "spam"):
        turns = sorted((r["conversation"], r["conversation_turn"]) for r in rows if r["label"] == label)
        assert turns == [(c, t) for c in range(4) for t in range(3)]
