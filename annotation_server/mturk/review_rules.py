"""Review rules (`parse_rule`): a tiny expression language over a worker's quality figures, e.g.
`gold>=0.8 and agreement>=0.5` or `seconds<2 or attention_failed>0`. Names: gold, agreement, seconds,
units, gold_answered, attention_failed, flagged (how many exclusion rules of `quality.ExclusionRules` the
worker breaks: 0 for a clean worker); operators: < <= > >= == !=; `and` binds tighter than `or`.
A comparison on a figure the worker does not have (no gold answered, say) is false. No eval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping



RULE_NAMES = ("gold", "agreement", "seconds", "units", "gold_answered", "attention_failed", "flagged")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    "<": lambda a, b: a < b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}
_TOKEN_RE = re.compile(r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<op>>=|<=|==|!=|>|<)|(?P<word>[A-Za-z_]+))")


@dataclass(frozen=True)
class Comparison:
    """`name op value`, e.g. gold >= 0.8."""

    name: str
    op: str
    value: float

    def evaluate(self, metrics: Mapping[str, float | None]) -> bool:
        """True when the figure exists and the comparison holds."""
        got = metrics.get(self.name)
        return got is not None and _OPS[self.op](float(got), self.value)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


@dataclass(frozen=True)
class Rule:
    """A disjunction of conjunctions of comparisons (`or` of `and`s)."""

    clauses: tuple[tuple[Comparison, ...], ...]

    def evaluate(self, metrics: Mapping[str, float | None]) -> bool:
        """True when any clause has all its comparisons true."""
        return any(all(c.evaluate(metrics) for c in clause) for clause in self.clauses)

    def __str__(self) -> str:
        return " or ".join(" and ".join(str(c) for c in clause) for clause in self.clauses)


def parse_rule(text: str) -> Rule:
    """Parse a rule like "gold>=0.8 and agreement>=0.5"; ValueError pointing at the problem otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("rule is empty; example: gold>=0.8 and agreement>=0.5")
    if len(text) > 500:
        raise ValueError("rule is too long (500 characters at most)")
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        m = _TOKEN_RE.match(stripped, pos)
        if not m or m.end() == pos:
            raise ValueError(f"rule {text!r}: unexpected {stripped[pos:pos + 10]!r} at position {pos}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    clauses: list[tuple[Comparison, ...]] = []
    current: list[Comparison] = []
    i = 0

    def take(expected_kind: str, what: str) -> str:
        nonlocal i
        if i >= len(tokens):
            raise ValueError(f"rule {text!r}: expected {what} at the end")
        kind, value, p = tokens[i]
        if kind != expected_kind:
            raise ValueError(f"rule {text!r}: expected {what} at position {p}, got {value!r}")
        i += 1
        return value

    while True:
        if i < len(tokens) and tokens[i][0] == "word" and tokens[i][1].lower() not in RULE_NAMES:
            raise ValueError(f"rule {text!r}: {tokens[i][1]!r} at position {tokens[i][2]} is not one of "
                             f"{', '.join(RULE_NAMES)}")
        name = take("word", "a comparison like gold>=0.8").lower()
        op = take("op", "an operator (< <= > >= == !=)")
        num = take("num", "a number")
        current.append(Comparison(name, op, float(num)))
        if i == len(tokens):
            break
        word = take("word", "'and' or 'or'")
        if word.lower() not in ("and", "or"):
            raise ValueError(f"rule {text!r}: expected 'and' or 'or' at position {tokens[i - 1][2]}, got {word!r}")
        if word.lower() == "or":
            clauses.append(tuple(current))
            current = []
    clauses.append(tuple(current))
    return Rule(tuple(clauses))
