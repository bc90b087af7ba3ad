"""Filters for generated texts, each rejection counted by reason.

Checks, in this order (the first that fails names the reason):

- `empty`: nothing left after parsing and cleaning.
- `word_limit`: fewer than `min_words` words, or more than word_limit * (1 + word_margin) words.
- `meta`: refusals and meta-talk instead of a text ("As an AI ...", "I'm sorry, but I can't ...",
  "Here is a tweet:", "Sure! Here ...", "I hope this helps", a lead-in ending in a colon), the
  assistant's voice ("How can I help you today?", "I'd be happy to provide ..."), talk about the
  request ("your example", "previously generated data", "no more than 30 words"), a description of
  a text instead of the text ("A positive financial news article about ..."), templates to fill in
  ("[Your Name]"), and texts that repeat a phrase of the prompt (`prompt_echoes`, e.g. the label's
  description).
- `label_leak`: a text that states its own label ("it's spam", "Negative news: ...", "#sarcasm",
  "a sarcastic tweet", "(label: positive)"), so a classifier could learn the label's name instead of
  its meaning. Label names that are ordinary words of a domain's texts (`COMMON_LABEL_WORDS`:
  positive, negative, neutral, ...) count only where they label ("Positive:", "a negative story").
- `duplicate`: the same text (case, punctuation and spacing ignored) was already accepted.
- `demo_copy` (few-shot only): the text equals one of its demonstrations, shares a run of
  `COPY_RUN` consecutive words with one, or its MiniLM cosine similarity to one is >=
  `demo_copy_threshold`.
- `near_duplicate`: MiniLM cosine similarity >= `near_duplicate_threshold` to an accepted text.

Duplicates are checked across all labels of a run (one text cannot be kept under two labels).
Embeddings come from `analysis.embeddings.embed_texts` (all-MiniLM-L6-v2, cached on disk); set a
threshold to None to switch that check off (no model is loaded when both are off).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

#: Rejection reasons, in the order they are checked.
REASONS = ("empty", "word_limit", "meta", "label_leak", "duplicate", "demo_copy", "near_duplicate")

Embed = Callable[[Sequence[str]], np.ndarray]

_META_START = re.compile(
    r"^(?:"
    r"(?:sure|certainly|of course|absolutely|okay|ok)\s*[!,.]*\s*(?:here|i\s*(?:'m|am|can|will|'ll|would|'d))\b"
    r"|here(?:\s+is|'s|\s+are)\s+(?:a|an|the|some|my|your|one|two|three|four|five|\d+)?\s*(?:\w+\s+){0,5}?"
    r"(?:texts?|messages?|sms|tweets?|reviews?|headlines?|sentences?|comments?|articles?|examples?|versions?|posts?|jokes?|options?)\b"
    r"|(?:i'?m|i am)\s+sorry,?\s+(?:but\s+)?i\s+(?:can(?:no|')t|am unable|won't)"
    r"|i\s+(?:apologi[sz]e|cannot|can't|am unable to|am not able to)\s+(?:but\s+)?(?:fulfil|help|assist|comply|generate|create|provide|write)"
    r"|(?:note|disclaimer)\s*:"
    r"|(?:i'?m|i am)\s+(?:sorry|happy|glad|ready|here)\b.*\b(?:help|assist)"
    r")",
    re.IGNORECASE,
)
_META_ANYWHERE = re.compile(
    r"\bas an ai\b|\bas a(?:n)? (?:ai|language model|assistant)\b|\bi am an ai\b|\b(?:large )?language model\b"
    r"|\bword (?:limit|count)\b|\bi hope (?:this|these|that|it) (?:helps|meets|fits|works)\b|\blet me know if\b"
    r"|\bi hope (?:this|the) (?:message|text|tweet|sentence) (?:is|was) helpful\b"
    r"|\bfeel free to (?:ask|let)\b|\bthe example (?:i|you) (?:have )?(?:provided|given)\b"
    r"|\bhow can i (?:help|assist) you\b|\bwhat'?s your (?:response|question)\b"
    r"|\b(?:the|this) (?:sentence|example|text|message|tweet) i (?:have )?(?:provided|given|wrote|written)\b"
    # the assistant's voice: offers of help, what it will create for the requester
    r"|\b(?:i|we)(?:'m| am|'d| would| will|'ll| can| could)?(?: be)?(?: just| really| always)? (?:happy|glad|delighted|ready|here|able|going|trying)"
    r" to (?:help|assist|provide|create|generate|write|copy|collaborate|imitate)\b"
    r"|\b(?:can|could|may|shall) (?:i|we) (?:help|assist)\b|\bwhat can i (?:do|help)\b|\banything else i can\b"
    r"|\bi can help\b|\bhelp (?:you )?with (?:that|whatever|anything|any text|your (?:problem|issue|task))\b"
    r"|\b(?:i|we) (?:can|will|'ll|could|would) (?:create|generate|provide|rewrite|imitate|emulate|give you)\b"
    r"|\bshare (?:a|an|this|the) (?:joke|text|message|tweet|sentence|example) with you\b|\bi'?d like to make\b"
    r"|\bai (?:assistant|model)\b|\bi'?m (?:not )?an? (?:[\w-]+ )?ai\b"
    # talk about the request
    r"|\byour (?:request|requirement|example|prompt|instructions?)\b|\bthe example (?:you|i)\b"
    r"|\b(?:previously )?generated (?:data|texts?|examples?|content)\b|\b(?:content|data|text) generated\b|\bmore diverse\b|\byour answer (?:must|should)\b"
    r"|\b(?:more|less|fewer|longer) than \d+ words\b|\brequested (?:message|text|sentence|tweet|data)\b"
    # a description of a text instead of the text
    r"|\b(?:a|an|the|this|that)\s+(?:[\w-]+\s+){0,3}?(?:sentence|news article|news piece|news item|one-liner|sample)"
    r"(?: (?:from|in|of|about|with|that|is|was|has|might|could|would|can))\b"
    r"|\b(?:a|an|one|another|the) (?:great |good |classic |possible |new |more \w+ )?(?:example|sample) of\b"
    r"|\bnews headlines?\b|\bthe (?:article|text|sentence|tweet|headline) (?:mentions|says|describes|is about|highlights)\b"
    r"|\bhere(?:'s| is| are)\s+(?:a|an|the|some|my|one|another)\s+(?:[\w-]+\s+){0,3}?(?:sample|solution|response|"
    r"continuation|sentence|example|version|text|message|tweet|joke|headline)s?\b"
    # a template to fill in
    r"|\[[^\[\]]{0,40}\b(?:your|insert|name|user\d*|recipient|company|product|topic|sender|location|time)\b[^\[\]]{0,40}\]",
    re.IGNORECASE,
)

#: Label names that are ordinary words of some domain's texts ("positive cash flow", "World Cup"):
#: they count as a label leak only where they label the text, not wherever they occur.
COMMON_LABEL_WORDS = frozenset({
    "positive", "negative", "neutral", "world", "business", "sports", "sci/tech", "joy", "fear", "anger",
    "sadness", "surprise", "disgust", "love", "optimism", "country", "league", "screenwriter", "tributary",
})
#: Nouns after which a label name labels the text: "a spam message", "a sarcastic tweet", "positive story".
_GENRE = r"(?:news|story|stories|text|message|tweet|sentence|headline|note|tone|style|spin|connotation|comment|label|example|claim)"


def _label_forms(label: str) -> str:
    words = re.split(r"[_\s-]+", label.strip())
    return r"[\s_-]*".join(re.escape(w) for w in words if w)


def label_leak_pattern(labels: Iterable[str]) -> re.Pattern[str] | None:
    """The pattern of texts that state one of `labels` (None without labels)."""
    forms = [(_label_forms(lab), lab.casefold()) for lab in labels if lab.strip()]
    if not forms:
        return None
    any_label = "|".join(f for f, _ in forms)
    # bare names (and their word family: sarcastic -> sarcasm, humor -> humorous) of distinctive labels
    bare = "|".join(_label_forms(name if len(name) <= 6 else name[:-3]) for _, name in forms
                    if name not in COMMON_LABEL_WORDS and len(name) > 3)
    parts = [
        r"\blabel(?:s|ed|led)?\b",
        rf"(?:^|[\s(\[])(?:{any_label})\s*[:!]",
        rf"['\"‘“](?:{any_label})['\"’”]",
        rf"#(?:{any_label})\b",
        rf"\b(?:{any_label})\s+{_GENRE}\b",
        r"\b(?:good|bad) news\s*:",
    ]
    if bare:
        parts.append(rf"\b(?:{bare})\w*")
    return re.compile("|".join(parts), re.IGNORECASE)


def is_meta(text: str) -> bool:
    """True when `text` is a refusal or talk about the task rather than a text of the task."""
    stripped = text.strip()
    return bool(_META_START.search(stripped) or _META_ANYWHERE.search(stripped) or stripped.endswith(":"))


#: A text repeating this many consecutive words of a prompt phrase (a label description, the
#: persona, the style) is talking about the task ("I am a mobile phone user ..."); a phrase shorter
#: than this counts only when repeated whole.
ECHO_RUN = 4
#: A few-shot text sharing this many consecutive words with one of its demonstrations copies it,
#: however it goes on ("Exports grew 16.5% to 19.1 million liters, indicating ...").
COPY_RUN = 5


def shares_run(words: Sequence[str], phrase: Sequence[str], run: int) -> bool:
    """True when `words` contains `run` consecutive words of `phrase` (the whole phrase if shorter)."""
    if not phrase:
        return False
    n = min(run, len(phrase))
    grams = {tuple(phrase[i : i + n]) for i in range(len(phrase) - n + 1)}
    return any(tuple(words[i : i + n]) in grams for i in range(len(words) - n + 1))


def normalize_for_dedup(text: str) -> str:
    """Return the key under which two texts count as exact duplicates (casefolded, words only)."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def word_count(text: str) -> int:
    """Return the number of whitespace-separated words."""
    return len(text.split())


@dataclass(frozen=True)
class FilterSettings:
    """What the filters accept.

    word_limit: the task's word limit; texts up to word_limit * (1 + word_margin) words pass.
    min_words: shorter texts are rejected (word_limit reason).
    near_duplicate_threshold / demo_copy_threshold: cosine similarity (MiniLM) at or above which a
    text is rejected; None switches the check off.
    embedding_model: a sentence-transformers directory (default: the packaged all-MiniLM-L6-v2).
    prompt_echoes: phrases of the prompt (e.g. the label descriptions); a text that repeats one is
    talking about the task, not doing it (meta reason).
    label_names: the task's labels; a text that states one is a label leak (label_leak reason).
    """

    word_limit: int
    word_margin: float = 0.5
    min_words: int = 3
    near_duplicate_threshold: float | None = 0.95
    demo_copy_threshold: float | None = 0.90
    embedding_model: str | None = None
    prompt_echoes: tuple[str, ...] = ()
    label_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.word_limit < 1:
            raise ValueError(f"word_limit must be positive, got {self.word_limit}")
        if self.word_margin < 0:
            raise ValueError(f"word_margin must be >= 0, got {self.word_margin}")
        if self.min_words < 1:
            raise ValueError(f"min_words must be >= 1, got {self.min_words}")
        for name in ("near_duplicate_threshold", "demo_copy_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1] or None, got {value}")

    @property
    def max_words(self) -> int:
        """The most words a text may have."""
        return int(self.word_limit * (1.0 + self.word_margin))

    @property
    def uses_embeddings(self) -> bool:
        """True when a check needs the embedding model."""
        return self.near_duplicate_threshold is not None or self.demo_copy_threshold is not None


def default_embedder(model_path: str | Path | None = None) -> Embed:
    """Return a function embedding texts with `analysis.embeddings.embed_texts` (normalised rows)."""

    def embed(texts: Sequence[str]) -> np.ndarray:
        from analysis.embeddings import embed_texts  # lazy: loads sentence-transformers

        return embed_texts(list(texts), model_path=model_path, cache=True)

    return embed


class TextFilter:
    """Decide, text by text, whether a generated text is kept; count every rejection by reason.

    Stateful: accepted texts (`add`) are remembered for the duplicate checks. Call `prepare(texts)`
    with a round's candidates first to embed them in one batch; `check` embeds on its own otherwise.
    `counts_` maps each reason in REASONS (and "accepted") to a count.
    """

    def __init__(self, settings: FilterSettings, embed: Embed | None = None):
        self.settings = settings
        self._embed = embed or default_embedder(settings.embedding_model)
        self.counts_: Counter[str] = Counter({r: 0 for r in REASONS} | {"accepted": 0})
        self._keys: set[str] = set()
        self._vectors: dict[str, np.ndarray] = {}
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._rows = 0
        self._label_leak = label_leak_pattern(settings.label_names)

    # -- embeddings -------------------------------------------------------------------------
    def prepare(self, texts: Iterable[str], demonstrations: Iterable[str] = ()) -> None:
        """Embed, in one batch, those of `texts` that the embedding checks may need (texts that fail
        a cheap check are skipped) and all `demonstrations`."""
        if not self.settings.uses_embeddings:
            return
        todo = [t for t in dict.fromkeys(texts) if t not in self._vectors and self._cheap_reason(t) is None]
        todo += [d for d in dict.fromkeys(demonstrations) if d not in self._vectors and d not in todo]
        if todo:
            vecs = np.asarray(self._embed(todo), dtype=np.float32)
            if vecs.shape[0] != len(todo):
                raise ValueError(f"the embedder returned {vecs.shape[0]} vectors for {len(todo)} texts")
            self._vectors.update(zip(todo, vecs))

    def _vector(self, text: str) -> np.ndarray:
        if text not in self._vectors:
            self.prepare((), [text])
        return self._vectors[text]

    def _append_row(self, vec: np.ndarray) -> None:
        if self._matrix.shape[0] == self._rows:
            grown = np.zeros((max(64, 2 * self._rows), vec.shape[0]), dtype=np.float32)
            if self._rows:
                grown[: self._rows] = self._matrix[: self._rows]
            self._matrix = grown
        self._matrix[self._rows] = vec
        self._rows += 1

    def max_similarity(self, text: str) -> float:
        """Return the highest cosine similarity of `text` to an accepted text (-1.0 when none)."""
        if self._rows == 0:
            return -1.0
        return float(np.max(self._matrix[: self._rows] @ self._vector(text)))

    # -- decisions --------------------------------------------------------------------------
    def _cheap_reason(self, text: str) -> str | None:
        if not text.strip():
            return "empty"
        n = word_count(text)
        if n < self.settings.min_words or n > self.settings.max_words:
            return "word_limit"
        if is_meta(text) or self._echoes(text):
            return "meta"
        if self._label_leak is not None and self._label_leak.search(text):
            return "label_leak"
        return None

    def _echoes(self, text: str) -> bool:
        words = normalize_for_dedup(text).split()
        return any(shares_run(words, normalize_for_dedup(p).split(), ECHO_RUN) for p in self.settings.prompt_echoes)

    def _copies(self, text: str, demonstrations: Sequence[str]) -> bool:
        words = normalize_for_dedup(text).split()
        return any(shares_run(words, normalize_for_dedup(d).split(), COPY_RUN) for d in demonstrations)

    def reason(self, text: str, demonstrations: Sequence[str] = ()) -> str | None:
        """Return why `text` is rejected (a REASONS entry), or None when it passes; counts nothing."""
        s = self.settings
        cheap = self._cheap_reason(text)
        if cheap is not None:
            return cheap
        key = normalize_for_dedup(text)
        if key in self._keys:
            return "duplicate"
        if demonstrations:
            if key in {normalize_for_dedup(d) for d in demonstrations} or self._copies(text, demonstrations):
                return "demo_copy"
            if s.demo_copy_threshold is not None:
                self.prepare([text], demonstrations)
                demo_vecs = np.stack([self._vectors[d] for d in demonstrations])
                if float(np.max(demo_vecs @ self._vectors[text])) >= s.demo_copy_threshold:
                    return "demo_copy"
        if s.near_duplicate_threshold is not None and self.max_similarity(text) >= s.near_duplicate_threshold:
            return "near_duplicate"
        return None

    def check(self, text: str, demonstrations: Sequence[str] = ()) -> str | None:
        """Return the rejection reason of `text` (counted) or None; an accepted text must then be
        passed to `add` (the caller may still drop it, e.g. when its label is already full)."""
        why = self.reason(text, demonstrations)
        if why is not None:
            self.counts_[why] += 1
        return why

    def add(self, text: str, count: bool = True) -> None:
        """Remember an accepted text for the duplicate checks (`count=False` for texts of a resumed
        run, which were counted when they were accepted)."""
        self._keys.add(normalize_for_dedup(text))
        if self.settings.near_duplicate_threshold is not None:
            self._append_row(self._vector(text))
        if count:
            self.counts_["accepted"] += 1

    def counts(self) -> dict[str, int]:
        """Return the counts as a plain dict: each reason, then "accepted"."""
        return {r: int(self.counts_[r]) for r in (*REASONS, "accepted")}
