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
    assert counts == {"empty": 1, "word_limit": 2, "meta": 1, "label_leak": 0, "duplicate": 1, "demo_copy": 2,
                      "near_duplicate": 1, "accepted": 2}


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


@pytest.mark.parametrize(
    "text",
    [
        "Hey [user] How's it going? Is there anything else I can help with?",  # the assistant's voice
        "I'd be happy to provide more diverse data on financial news.",
        "We can create something even more unique and interesting, a world of possibilities.",
        "I'm not a Twitter AI, I'm here to help you communicate more effectively.",
        "Hello [Your Name], hope you're enjoying [insert location]!",  # a template to fill in
        "A positive financial news article about a growing company with promising growth stories.",  # a description
        "One great example of humor is the hilarious scene at the end of the latest episode.",
        "The news headline is a serious and urgent message that has nothing to do with comedy.",
        "Can you provide something more diverse compared to the previously generated data?",
        "I will make sure the text uses no more than 30 words.",
    ],
)
def test_the_small_models_meta_talk_is_recognised(text):
    assert is_meta(text)


@pytest.mark.parametrize(
    ("task", "text", "want"),
    [
        ("sms_spam", "GOD Bless The Internet For Free And That Don't Use Spam.", "label_leak"),
        ("sms_spam", "Hey, just wanted to say I'm a spammer, reply STOP to end.", "label_leak"),
        ("financial_phrasebank", 'Negative news: "Losing $1.2 billion to a solar panel maker."', "label_leak"),
        ("financial_phrasebank", "Good news: The company's new contracts yielded promising results.", "label_leak"),
        ("financial_phrasebank", "Sales rose 5 % (label: positive) in the third quarter of 2009 .", "label_leak"),
        ("financial_phrasebank", "The company reported positive cash flow and a negative one-off of EUR 2 mn .", None),
        ("humor", "Sarcasm aside, this is a humorous story about my cat and the mailman.", "label_leak"),
        ("humor", "Why did the scarecrow win an award? Because he was outstanding in his field.", None),
        ("sms_spam", "I am a mobile phone user, I am using the device to text you.", "meta"),  # echoes the persona
    ],
)
def test_texts_stating_their_own_label_are_label_leaks(task, text, want):
    from generation.config import GenerationConfig

    settings = GenerationConfig(task=task, near_duplicate_threshold=None).filter_settings()
    assert TextFilter(settings, embed=lambda texts: None).check(text) == want


def test_a_text_that_goes_on_from_a_demonstration_is_a_copy():
    f = TextFilter(FilterSettings(word_limit=40, near_duplicate_threshold=None, demo_copy_threshold=None),
                   embed=lambda texts: None)
    demos = ["Exports grew 16.5 percent to 19.1 million liters .", "The total number of voting rights is 74,612,523 ."]
    assert f.check("These savings to 19.1 million liters will help the exporter.", demos) == "demo_copy"
    assert f.check("Exports grew 16.5 percent to 19.1 million liters, indicating a positive outlook.", demos) == "demo_copy"
    assert f.check("Exports fell 3 percent as demand for paper weakened in Europe .", demos) is None
