"""Subjectivity-stratified evaluation: accuracy and Macro-F1 on instances with agreement a_i >= γ.

For each threshold γ the subset is {i : a_i >= γ - EPS} with EPS = 1e-6, so an agreement stored as
0.666667 or computed as 4/6 counts as reaching γ = 2/3, while a Financial PhraseBank '66' sentence
(a_i = 2/3) is dropped at γ = 0.7. Macro-F1 is scikit-learn's `f1_score(average="macro")` over the
labels present among the subset's GOLD labels (`labels=sorted(set(gold))`, `zero_division=0`): a
prediction of a class absent from the subset's gold labels still counts as an error (it lowers that
instance's true class recall) but the absent class does not enter the average. An empty subset gives
n = 0 and accuracy / macro_f1 None (never NaN).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

from subjlab.records import Agreement, Prediction

EPS = 1e-6
Missing = Literal["error", "drop"]


@dataclass(frozen=True)
class Score:
    """Accuracy and Macro-F1 over n instances."""

    n: int
    accuracy: float
    macro_f1: float

    def to_dict(self) -> dict[str, Any]:
        """Return {"n", "accuracy", "macro_f1"}."""
        return asdict(self)


@dataclass(frozen=True)
class GammaScore:
    """Scores on the instances with agreement >= gamma; accuracy/macro_f1 None when n == 0."""

    gamma: float
    n: int
    accuracy: float | None
    macro_f1: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON interface {"gamma", "n", "accuracy", "macro_f1"}."""
        return asdict(self)


def score(predictions: Sequence[Prediction]) -> Score:
    """Return accuracy and Macro-F1 (over the gold labels present) of `predictions`; ValueError if empty."""
    from sklearn.metrics import accuracy_score, f1_score

    if not predictions:
        raise ValueError("no predictions to score")
    gold = [p.label for p in predictions]
    pred = [p.prediction for p in predictions]
    acc = float(accuracy_score(gold, pred))
    f1 = float(f1_score(gold, pred, labels=sorted(set(gold)), average="macro", zero_division=0))
    return Score(n=len(predictions), accuracy=acc, macro_f1=f1)


def parse_gammas(text: str) -> list[float]:
    """Parse '0.5,0.6,...' into a list of thresholds in [0, 1]; ValueError naming the bad entry."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"--gammas: {part!r} is not a number") from None
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"--gammas: {part!r} is not in [0, 1]")
        out.append(value)
    if not out:
        raise ValueError("--gammas: no thresholds given")
    return out


def agreement_map(agreements: Iterable[Agreement] | Mapping[str, float]) -> dict[str, float]:
    """Return item -> agreement from Agreement records or a mapping; ValueError on conflicting duplicates."""
    if isinstance(agreements, Mapping):
        out = {str(k): float(v) for k, v in agreements.items()}
    else:
        out = {}
        for rec in agreements:
            if rec.item in out and not math.isclose(out[rec.item], rec.agreement):
                raise ValueError(f"item {rec.item!r} has two agreement values: {out[rec.item]} and {rec.agreement}")
            out[rec.item] = float(rec.agreement)
    for item, value in out.items():
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"item {item!r}: agreement must be in [0, 1], got {value}")
    return out


def stratified_scores(
    predictions: Sequence[Prediction],
    agreements: Iterable[Agreement] | Mapping[str, float],
    gammas: Sequence[float],
    missing: Missing = "error",
) -> list[GammaScore]:
    """Return one GammaScore per γ (in the given order): scores on predictions with agreement >= γ.

    Predictions are matched to agreements by `Prediction.id == Agreement.item`. A prediction with no
    agreement is a ValueError listing up to five such ids, unless `missing="drop"` leaves it out.
    Duplicate prediction ids are a ValueError (they would be counted twice).
    """
    if missing not in ("error", "drop"):
        raise ValueError(f"missing must be 'error' or 'drop', got {missing!r}")
    if not predictions:
        raise ValueError("no predictions to evaluate")
    amap = agreement_map(agreements)
    dupes = [pid for pid, c in Counter(p.id for p in predictions).items() if c > 1]
    if dupes:
        raise ValueError(f"{len(dupes)} duplicate prediction id(s), e.g. {', '.join(map(repr, dupes[:5]))}")
    absent = [p.id for p in predictions if p.id not in amap]
    if absent and missing == "error":
        raise ValueError(
            f"{len(absent)} of {len(predictions)} predictions have no agreement value, e.g. "
            f"{', '.join(map(repr, absent[:5]))} (ids must match the agreement file's 'item'; "
            "pass missing='drop' / --missing drop to leave them out)"
        )
    matched = [(p, amap[p.id]) for p in predictions if p.id in amap]
    out = []
    for gamma in gammas:
        if math.isnan(gamma) or not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        subset = [p for p, a in matched if a >= gamma - EPS]
        if subset:
            s = score(subset)
            out.append(GammaScore(gamma=float(gamma), n=s.n, accuracy=s.accuracy, macro_f1=s.macro_f1))
        else:
            out.append(GammaScore(gamma=float(gamma), n=0, accuracy=None, macro_f1=None))
    return out
