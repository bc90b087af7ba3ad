"""Every filter rejects what it should, keeps what it should, and counts each rejection."""

from __future__ import annotations

import pytest

from generation.filters import REASONS, FilterSettings, TextFilter, is_meta, normalize_for_dedup


@pytest.mark.parametrize(
    "text",
    [
        "As an AI language model, I cannot write spam.",
        "I'm sorry, but I can't help with creating scam messages.",
        "Here is a spam message for you:",
        "Here's an SMS text message that is ham",
        "Sure! Here is one more example.",
        "Certainly, I can write that.",
        "I hope this helps with your dataset.",
        "Win now! Let me know if you need more examples.",
        "Note: this message is fictional.",
        "I'm ready to assist. What's your response?",  # SmolLM2 talking to the user, seen in the demo
        "I'm sorry for the confusion, but I can help with that.",
        "The sentence I provided is: profits rose 5%.",
        "Hello! How can I help you today?",
    ],
)
def test_meta_talk_and_refusals_are_recognised(text):
    assert is_meta(text)


@pytest.mark.parametrize(
    "text",
    [
        "Sure, see you at 5 by the station.",
        "I'm sorry I'm late, the bus broke down again.",
        "Here is the address you asked for: 12 Park Road.",
        "URGENT! You have won a 1 week FREE membership. Reply WIN to 80086.",
        "Here's to a great weekend with friends!",
    ],
)
def test_real_texts_are_not_mistaken_for_meta_talk(text):
    assert not is_meta(text)


def test_texts_repeating_the_prompt_count_as_meta():
    from generation.config import GenerationConfig

    f = TextFilter(GenerationConfig(task="sms_spam").filter_settings(), embed=lambda texts: None)
    assert f.check("Sending a message with an unsolicited commercial, prize or scam message.") == "meta"
    assert f.check("A normal message between people who know each other, see you!") == "meta"
    assert f.check("WINNER!! You have been selected for a cash prize, call 09061701461 now") is None
    assert f.counts()["meta"] == 2


def test_exact_duplicates_ignore_case_punctuation_and_spacing():
    assert normalize_for_dedup("Call me, NOW!") == normalize_for_dedup("call   me now")


def test_each_rejection_is_counted_by_reason_with_the_real_minilm():
    f = TextFilter(FilterSettings(word_limit=20, near_duplicate_threshold=0.9, demo_copy_threshold=0.9))
    demos = ["Free entry in 2 a wkly comp to win FA Cup final tkts. Text FA to 87121 to receive entry."]
    cases = [
        ("", "empty"),
        ("Hi there", "word_limit"),  # fewer than 3 words
        ("word " * 31, "word_limit"),  # more than 20 * 1.5 words
        ("As an AI, I will not write that message.", "meta"),
        ("Are we still meeting for lunch at noon tomorrow?", None),
        ("are we still meeting for lunch at noon tomorrow", "duplicate"),
        ("Are we still meeting for lunch tomorrow at noon?", "near_duplicate"),
        ("The council approved the new budget for road repairs this spring.", None),
    ]
    for text, want in cases:
        got = f.check(text)
        assert got == want, text
        if got is None:
            f.add(text)
    assert f.check(demos[0], demos) == "demo_copy"  # verbatim copy of its demonstration
    near_copy = "Free entry in 2 a weekly comp to win FA Cup final tkts. Text FA to 87121 to receive your entry."
    assert f.check(near_copy, demos) == "demo_copy"  # cosine 0.96 to its demonstration
    assert f.check("My cat knocked the plant off the windowsill again this morning.", demos) is None
    counts = f.counts()
    assert list(counts) == [*REASONS, "accepted"]
    assert counts == {"empty": 1, "word_limit": 2, "meta": 1, "duplicate": 1, "demo_copy": 2, "near_duplicate": 1, "accepted": 2}


def test_embedding_checks_can_be_switched_off_without_loading_a_model():
    def no_model(texts):
        raise AssertionError("the embedding model must not be used")

    f = TextFilter(FilterSettings(word_limit=20, near_duplicate_threshold=None, demo_copy_threshold=None), embed=no_model)
    f.prepare(["Are we still meeting for lunch at noon tomorrow?"])
    assert f.check("Are we still meeting for lunch at noon tomorrow?") is None
    f.add("Are we still meeting for lunch at noon tomorrow?")
    assert f.check("Are we still meeting for lunch tomorrow at noon?") is None  # near duplicates pass
    assert f.check("ARE we still meeting for lunch at noon tomorrow") == "duplicate"


def test_bad_settings_fail_loudly():
    with pytest.raises(ValueError, match="near_duplicate_threshold"):
        FilterSettings(word_limit=10, near_duplicate_threshold=1.5)
    with pytest.raises(ValueError, match="word_margin"):
        FilterSettings(word_limit=10, word_margin=-1)
