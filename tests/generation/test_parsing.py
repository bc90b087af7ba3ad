"""Responses become clean candidate texts: lists, bullets, quotes, prefixes, lead-ins."""

from __future__ import annotations

import pytest

from generation.parsing import clean_text, parse_response


@pytest.mark.parametrize(
    "response, expected",
    [
        ('"Win a free iPhone now!"', ["Win a free iPhone now!"]),
        ("“Meet you at the station at 6?”", ["Meet you at the station at 6?"]),
        ("Text: Are you coming to dinner tonight?", ["Are you coming to dinner tonight?"]),
        ('**SMS:** "Call me when you land"', ["Call me when you land"]),
        ("Tweet: what a day (label: joy)", ["what a day"]),
        ("Sure thing, see you at 5.\nLabel: ham", ["Sure thing, see you at 5."]),
        ("1. Hey, running late\n2. \"Got the tickets!\"\n3) Text: see you soon", ["Hey, running late", "Got the tickets!", "see you soon"]),
        ("- Buy cheap meds now\n* Claim your prize today\n• Free ringtones", ["Buy cheap meds now", "Claim your prize today", "Free ringtones"]),
        (
            "Here are two messages:\n\n1. Hello mum, home at 6.\n2. Win cash now!\n\nI hope this helps!",
            ["Here are two messages:", "Hello mum, home at 6.", "Win cash now!", "I hope this helps!"],
        ),
        ("1. A long item that\n   continues here\n2. Short", ["A long item that continues here", "Short"]),
        ("Sure! Here is a spam message:\nCONGRATS you won a cruise", ["Sure! Here is a spam message:", "CONGRATS you won a cruise"]),
        ("```\nPlain text in a fence\n```", ["Plain text in a fence"]),
        ("A review that spans\ntwo lines.", ["A review that spans two lines."]),
        ("Text:\nWin a prize", ["Win a prize"]),
        ('"I can\'t believe it', ["I can't believe it"]),
        ("<<message to end of life>> Hey Alex, see you at 8 \ufffd", ["Hey Alex, see you at 8"]),  # SmolLM2 quirks
        ("[SMS] Running late, sorry", ["Running late, sorry"]),
        # the demonstrations' format copied by SmolLM2 (few-shot): the label must not leak into the text
        ("Example 4 (label: positive): Profits rose 12% in the quarter.", ["Profits rose 12% in the quarter."]),
        ("Negative Example: Sales fell sharply.", ["Sales fell sharply."]),
        ("**Example 2 (spam):** Claim your prize now", ["Claim your prize now"]),
        # a lead-in and a quoted text on one line: two candidates, so the lead-in cannot ride into training
        ('Here\'s a possible sentence: "Shares fell 8% after the warning."',
         ["Here's a possible sentence:", "Shares fell 8% after the warning."]),
        ('Negative news: "Losing $1.2 billion hurt the solar maker."', ["Negative news:", "Losing $1.2 billion hurt the solar maker."]),
        ("Note to self: buy milk and call mum", ["Note to self: buy milk and call mum"]),  # no quote: one text
        ("", [""]),
        ("   \n  ", [""]),
    ],
)
def test_parse_response(response, expected):
    assert parse_response(response) == expected


def test_clean_text_keeps_inner_quotes_and_apostrophes():
    assert clean_text('He said "no" and left') == 'He said "no" and left'
    assert clean_text("'I don't know'") == "I don't know"
    assert clean_text('"a" and "b"') == '"a" and "b"'
    assert clean_text("  many   spaces\there ") == "many spaces here"
