"""Classification metrics over a fixed label order (scikit-learn underneath)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall and F1 of one class, and its support (gold count)."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationMetrics:
    """Accuracy, Macro-F1, per-class scores and the confusion matrix (rows gold, columns predicted,
    both in `labels` order)."""

    labels: tuple[str, ...]
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]
    size: int


def classification_metrics(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> ClassificationMetrics:
    """Score `predicted` against `gold` over `labels` (every label counts in Macro-F1, even if absent).

    Raises ValueError on empty input, unequal lengths or a value outside `labels`.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = tuple(labels)
    if len(gold) != len(predicted):
        raise ValueError(f"gold and predicted differ in length ({len(gold)} vs {len(predicted)})")
    if not gold:
        raise ValueError("no examples to score")
    known = set(labels)
    for name, values in (("gold", gold), ("predicted", predicted)):
        bad = sorted({v for v in values if v not in known})
        if bad:
            raise ValueError(f"{name} labels {bad} are not in the label set {list(labels)}")
    p, r, f, s = precision_recall_fscore_support(gold, predicted, labels=list(labels), zero_division=0)
    per_class = {
        lab: ClassScores(float(p[i]), float(r[i]), float(f[i]), int(s[i])) for i, lab in enumerate(labels)
    }
    return ClassificationMetrics(
        labels=labels,
        accuracy=float(accuracy_score(gold, predicted)),
        macro_f1=float(f1_score(gold, predicted, labels=list(labels), average="macro", zero_division=0)),
        per_class=per_class,
        confusion=confusion_matrix(gold, predicted, labels=list(labels)).tolist(),
        size=len(gold),
    )
