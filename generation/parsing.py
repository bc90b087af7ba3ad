"""Parse an LLM response into candidate texts: one or several per response, cleaned.

Handles what chat models wrap their texts in: numbered lists ("1. ...", "2) ..."), bullets ("- ",
"* ", "• "), a lead-in line ending in a colon ("Here are three messages:"), wrapping quotes,
"Text:"/"Message:"/"Tweet:"-style prefixes, copied demonstration heads ("Example 2 (label: spam):"), leading tags ("<<message>>", "[SMS]"; SmolLM2 likes
these), markdown bold and code fences, trailing "Label: spam" lines and broken characters. Lead-ins and sign-offs around a list are returned as candidates of their own,
so the meta-talk filter sees (and counts) them instead of them being silently glued to a text.

Parsing never judges quality; `generation.filters` does.
"""

from __future__ import annotations

import re

_ITEM = re.compile(r"^\s*(?:\d{1,3}\s*[.):]|[-*•–]|\(\d{1,3}\))\s+(?=\S)")
_FENCE = re.compile(r"^\s*```[\w-]*\s*$")
_LABEL_LINE = re.compile(r"^\s*\**\s*(?:label|category|class)\s*\**\s*[:=]", re.IGNORECASE)
_LABEL_SUFFIX = re.compile(r"\s*[\(\[]\s*(?:label|category|class)\s*[:=][^\)\]]*[\)\]]\s*$", re.IGNORECASE)
_PREFIX = re.compile(
    r"^\s*\**\s*(?:text|sms|sms message|message|text message|tweet|headline|news headline|review|"
    r"movie review|sentence|comment|reddit comment|article|news article|example|output|answer|response|"
    r"generated text|synthetic text)(?:\s*#?\d{1,3})?\s*\**\s*[:：]\s*\**\s*",
    re.IGNORECASE,
)
#: The demonstrations' own format copied by the model: "Example 4 (label: positive): ...", "Negative
#: Example: ...": the head goes, else the label word would leak into the training text.
_EXAMPLE_HEAD = re.compile(
    r"^\s*\**\s*(?:\w+\s+)?example(?:\s*#?\d{1,3})?\s*(?:\((?:label\s*[:=]\s*)?[^()]{1,30}\))?\s*\**\s*[:：]\s*\**\s*",
    re.IGNORECASE,
)
#: A lead-in and a quoted text on one line: 'Here's a possible sentence: "Shares fell 8% ..."'.
_INLINE_LEAD = re.compile(r'^(?P<lead>[^"“:]{8,160}?):\s+(?P<text>["“].{8,})$')
_QUOTES = [('"', '"'), ("“", "”"), ("'", "'"), ("‘", "’"), ("«", "»"), ("„", "“"), ("`", "`")]


_TAG = re.compile(r"^\s*(?:<<[^<>]{0,60}>>|<[a-z_]{1,20}>|\[[^\[\]]{0,40}\])\s*", re.IGNORECASE)


def clean_text(text: str) -> str:
    """Return one candidate text cleaned: prefixes, leading tags ("<<message>>", "[SMS]"), wrapping
    quotes, bold markers, label suffixes, broken characters (U+FFFD, from a reply cut mid-character)
    and extra whitespace removed. May return "" (the empty filter counts that)."""
    s = " ".join(text.replace("\ufffd", " ").split())
    for _ in range(3):  # prefixes and quotes can nest: **Text:** "..."
        before = s
        s = _TAG.sub("", s, count=1)
        s = _PREFIX.sub("", s, count=1)
        s = _EXAMPLE_HEAD.sub("", s, count=1)
        s = _LABEL_SUFFIX.sub("", s)
        if s.startswith("**") and s.endswith("**") and len(s) > 4:
            s = s[2:-2].strip()
        s = s.replace("**", "")
        s = _strip_quotes(s)
        s = s.strip()
        if s == before:
            break
    return s


def _quote_count(text: str, char: str) -> int:
    """Count `char` in text, not counting apostrophes between two letters (don't, it's)."""
    return sum(
        1
        for i, c in enumerate(text)
        if c == char and not (0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum())
    )


def _strip_quotes(s: str) -> str:
    """Remove quotes wrapping the whole text, or a lone unmatched quote at either end."""
    for left, right in _QUOTES:
        if len(s) >= 2 and s.startswith(left) and s.endswith(right):
            inner = s[1:-1]
            if _quote_count(inner, right) == 0 and _quote_count(inner, left) == 0:
                return inner.strip()
    for left, right in _QUOTES[:2] + [("«", "»")]:  # not single quotes: dogs' is a word
        if s.startswith(left) and _quote_count(s[1:], right) == 0 and _quote_count(s[1:], left) == 0:
            return s[1:].strip()
        if s.endswith(right) and _quote_count(s[:-1], left) == 0 and _quote_count(s[:-1], right) == 0:
            return s[:-1].strip()
    return s


def _is_item(line: str) -> bool:
    return bool(_ITEM.match(line))


def split_response(response: str) -> list[str]:
    """Split a raw response into raw candidate texts (not yet cleaned).

    - A list (numbered or bulleted lines, continuation lines joined) gives one candidate per item,
      plus the text before the list and the text after it as candidates of their own.
    - Otherwise a first line ending in ":" followed by more lines is a lead-in: it and the rest are
      two candidates; so is a one-line reply of a lead-in, a colon and a quoted text.
    - Otherwise the whole response is one candidate (line breaks become spaces).
    Code fences and "Label: ..." lines are dropped.
    """
    lines = [ln.rstrip() for ln in response.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [ln for ln in lines if not _FENCE.match(ln) and not _LABEL_LINE.match(ln)]
    item_idx = [i for i, ln in enumerate(lines) if _is_item(ln)]
    if item_idx:
        first, last = item_idx[0], item_idx[-1]
        out: list[str] = []
        before = " ".join(ln.strip() for ln in lines[:first] if ln.strip())
        if before:
            out.append(before)
        items: list[list[str]] = []
        after: list[str] = []
        for i, ln in enumerate(lines[first:], start=first):
            if _is_item(ln):
                items.append([_ITEM.sub("", ln, count=1)])
            elif not ln.strip():
                continue
            elif i > last and not ln.startswith((" ", "\t")) and items and _ends_sentence(items[-1][-1]):
                after.append(ln.strip())  # a sign-off after the list
            else:
                (after if after else items[-1]).append(ln.strip())
        out.extend(" ".join(parts) for parts in items)
        if after:
            out.append(" ".join(after))
        return out
    nonblank = [ln.strip() for ln in lines if ln.strip()]
    if not nonblank:
        return [""]  # an empty response is one empty candidate, so the empty filter counts it
    if len(nonblank) > 1 and nonblank[0].endswith(":") and not _PREFIX.fullmatch(nonblank[0] + " "):
        return [nonblank[0], " ".join(nonblank[1:])]
    inline = _INLINE_LEAD.match(nonblank[0])
    if len(nonblank) == 1 and inline:
        return [inline["lead"] + ":", inline["text"]]
    return [" ".join(nonblank)]


def _ends_sentence(text: str) -> bool:
    return text.rstrip().endswith((".", "!", "?", '"', "”", ")"))


def parse_response(response: str) -> list[str]:
    """Return the cleaned candidate texts of one response, in order (empty strings kept, so the
    empty filter can count them)."""
    return [clean_text(part) for part in split_response(response)]
