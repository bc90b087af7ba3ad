"""Prompts are built exactly from the TaskSpec: zero-shot turns, the diversity prompt, trimming, few-shot."""

from __future__ import annotations

from collections import Counter

import pytest

from generation.prompts import (
    DIVERSITY_PROMPT,
    IMITATION_INSTRUCTION,
    Message,
    ZeroShotConversation,
    demonstration_rng,
    few_shot_messages,
    generation_prompt,
    prompt_hash,
    sample_demonstrations,
    trim_to_fit,
)
from subjlab.data import load_split
from subjlab.tasks import REGISTRY, get_task


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_zero_shot_first_request_is_context_then_generation_prompt_naming_label_style_and_limit(name):
    task = REGISTRY[name]
    for label in task.labels:
        msgs, trimmed = ZeroShotConversation(task, label, 0).next_messages()
        assert trimmed == 0
        assert [m.role for m in msgs] == ["system", "user"]
        assert msgs[0].content == task.context
        user = msgs[1].content
        assert f'"{label}"' in user
        assert task.label_descriptions[label] in user
        assert task.style in user
        assert f"{task.word_limit} words" in user
        assert user == generation_prompt(task, label)


def test_diversity_prompt_every_n_turns_in_the_same_conversation():
    task = get_task("sms_spam")
    conv = ZeroShotConversation(task, "spam", 0, diversity_every=3)
    asked = []
    for turn in range(8):
        msgs, _ = conv.next_messages()
        asked.append(msgs[-1].content)
        # the model sees everything it wrote before, in order
        assert [m.content for m in msgs if m.role == "assistant"] == [f"reply {i}" for i in range(turn)]
        conv.add_reply(f"reply {turn}")
    diversity_turns = [i for i, text in enumerate(asked) if text == DIVERSITY_PROMPT]
    assert diversity_turns == [3, 6]
    assert all(asked[i] == generation_prompt(task, "spam") for i in range(8) if i not in diversity_turns)


def test_diversity_prompt_off_with_zero():
    conv = ZeroShotConversation(get_task("imdb"), "pos", 0, diversity_every=0)
    for _ in range(6):
        msgs, _ = conv.next_messages()
        assert msgs[-1].content != DIVERSITY_PROMPT
        conv.add_reply("ok")


def _words(msgs):
    return sum(len(m.content.split()) for m in msgs)


def test_trimming_drops_oldest_exchanges_keeps_instruction_and_says_how_many():
    task = get_task("sms_spam")
    conv = ZeroShotConversation(task, "ham", 0, diversity_every=0)
    for turn in range(6):
        conv.add_reply(f"reply number {turn} " + "word " * 20)
    full, _ = conv.next_messages()
    budget = _words(full) - 80  # each exchange is about 50 words: two or more must go
    kept, dropped = conv.next_messages(_words, budget)
    assert dropped >= 2
    assert _words(kept) <= budget
    assert len(kept) == len(full) - 2 * dropped
    assert kept[0] == full[0] and kept[1] == full[1]  # context and the first instruction stay
    assert kept[-2:] == full[-2:]  # the latest reply and the current question stay
    survivors = [m.content for m in kept if m.role == "assistant"]
    assert survivors == [m.content for m in full if m.role == "assistant"][dropped:]


def test_trimming_fails_loudly_when_nothing_can_fit():
    msgs = [Message("system", "a " * 50), Message("user", "b " * 50)]
    with pytest.raises(ValueError, match="context window"):
        trim_to_fit(msgs, _words, 10)


def test_few_shot_sampling_is_seeded_and_label_balanced(task_data):
    task = get_task("reddit_emotion")
    pool = {lab: [] for lab in task.labels}
    for ex in load_split(task, "train", task_data, limit_per_label=30, seed=1):
        pool[ex.label].append(ex)
    for k in (1, 4, 6, 13):
        demos = sample_demonstrations(pool, task.labels, "fear", k, demonstration_rng(7, task.name, "fear", 3))
        counts = Counter(d.label for d in demos)
        assert len(demos) == k
        assert max(counts.values(), default=0) - min(counts.get(lab, 0) for lab in task.labels) <= 1
        assert counts["fear"] == max(counts.values())  # the extra slots go to the target label first
        assert len({d.id for d in demos}) == k
    again = sample_demonstrations(pool, task.labels, "fear", 4, demonstration_rng(7, task.name, "fear", 3))
    same = sample_demonstrations(pool, task.labels, "fear", 4, demonstration_rng(7, task.name, "fear", 3))
    other = sample_demonstrations(pool, task.labels, "fear", 4, demonstration_rng(7, task.name, "fear", 4))
    assert [d.id for d in again] == [d.id for d in same]
    assert [d.id for d in again] != [d.id for d in other]


def test_few_shot_sampling_fails_loudly_on_a_too_small_pool(task_data):
    task = get_task("sms_spam")
    pool = {"ham": load_split(task, "train", task_data, limit_per_label=1)[:1], "spam": []}
    with pytest.raises(ValueError, match="spam"):
        sample_demonstrations(pool, task.labels, "ham", 2, demonstration_rng(0, "sms_spam", "ham", 0))


def test_few_shot_messages_show_labeled_real_examples_and_the_imitation_instruction(task_data):
    task = get_task("sms_spam")
    demos = load_split(task, "train", task_data, limit_per_label=2, seed=3)
    msgs = few_shot_messages(task, "spam", demos)
    assert [m.role for m in msgs] == ["system", "user"]
    assert msgs[0].content == task.context
    user = msgs[1].content
    for i, ex in enumerate(demos, start=1):
        assert f"Example {i} (label: {ex.label}): {' '.join(ex.text.split())}" in user
    assert generation_prompt(task, "spam") in user
    assert user.rstrip().endswith(IMITATION_INSTRUCTION + ".")


def test_prompt_hash_is_stable_and_tracks_every_character():
    a = [Message("system", "ctx"), Message("user", "write one")]
    b = [Message("system", "ctx"), Message("user", "write one!")]
    assert prompt_hash(a) == prompt_hash(list(a))
    assert prompt_hash(a) != prompt_hash(b)
    assert len(prompt_hash(a)) == 16


def test_unknown_label_is_an_error():
    with pytest.raises(ValueError, match="no label"):
        generation_prompt(get_task("sms_spam"), "eggs")
