"""Per-instance agreement from a dataset's own human annotations, through the crowd-label path.

Two kinds of datasets carry real instance-level human disagreement:

- per-item ratings: a `ratings` field with several human labels per example (iSarcasmEval's test
  tweets carry five). They become `Label` records (worker = the rating's position, "rating1" ...,
  since the datasets do not identify annotators) and go through `AgreementAnalyzer`, the same code as
  crowd labels: a_i = share of the majority rating, Fleiss' κ, Krippendorff's α. Ratings are mapped
  with the task's `label_map` like gold labels. The gold label may come from elsewhere (tweet_sarcasm:
  the author's own label; the ratings are third-party readers'), so a_i measures how much readers
  agree, and `majority_matches_gold` says how often their majority is the gold label.
- a documented agreement level per item (`DOCUMENTED_LEVELS`, by data name): Financial PhraseBank's
  `agreement` field (the strictest agreement subset holding the sentence) maps to an a_i lower bound
  (`analysis.agreement.PHRASEBANK`). No per-rater labels exist, so κ and α are undefined.

`data_agreement(examples, task)` picks the kind from the examples (ratings first) and raises
ValueError when the split has neither, or has them on some rows only (naming the first other row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from analysis.agreement import PHRASEBANK, AgreementAnalyzer, AgreementLevels, AgreementReport, level_agreements
from subjlab.records import Agreement, Example, Label
from subjlab.tasks import TaskSpec

RATINGS_FIELD = "ratings"
Kind = Literal["ratings", "levels"]


#: Datasets (by data name) whose examples carry a documented agreement level instead of ratings.
DOCUMENTED_LEVELS: dict[str, AgreementLevels] = {
    "financial_phrasebank": PHRASEBANK,
}


@dataclass(frozen=True)
class DataAgreement:
    """Per-item agreement of a split from its own annotations (items = example ids, in split order)."""

    kind: Kind
    agreements: list[Agreement]
    description: str
    report: AgreementReport | None = None  #: ratings: the crowd-label report (κ, α, ties, ...)
    levels: AgreementLevels | None = None  #: levels: the documented levels used
    majority_matches_gold: float | None = None  #: ratings: share of items whose majority rating is the gold label


def data_agreement_kind(examples: Sequence[Example], task: TaskSpec) -> Kind | None:
    """Return "ratings" or "levels" when every example carries that annotation, None when none does.

    Raises ValueError when only some examples carry it (naming the first that does not).
    """
    for kind, field in (("ratings", RATINGS_FIELD), ("levels", _level_field(task))):
        if field is None:
            continue
        has = [field in ex.extra and ex.extra[field] is not None for ex in examples]
        if any(has):
            if not all(has):
                first = examples[has.index(False)].id
                raise ValueError(f"example {first!r} has no {field!r} field while other examples of the split do")
            return kind  # type: ignore[return-value]
    return None


def ratings_as_labels(examples: Sequence[Example], task: TaskSpec) -> list[Label]:
    """Turn each example's `ratings` into `Label` records (item = example id, worker = rating<k>),
    mapped with the task's label map; ValueError naming the example on an empty list or a foreign label."""
    labels = []
    for ex in examples:
        ratings = ex.extra.get(RATINGS_FIELD)
        if not isinstance(ratings, list) or not ratings:
            raise ValueError(f"example {ex.id!r}: {RATINGS_FIELD!r} must be a non-empty list of labels, got {ratings!r}")
        for k, raw in enumerate(ratings, start=1):
            mapped = task.map_label(str(raw))
            if mapped is None or mapped not in task.labels:
                raise ValueError(f"example {ex.id!r}: rating {raw!r} is not a label of task {task.name} "
                                 f"({', '.join(task.labels)})")
            labels.append(Label(item=ex.id, worker=f"rating{k}", label=mapped))
    return labels


def data_agreement(examples: Sequence[Example], task: TaskSpec) -> DataAgreement:
    """Return the per-item agreement of `examples` from their own ratings or documented levels.

    Raises ValueError when the examples carry neither (or carry them on some rows only).
    """
    if not examples:
        raise ValueError(f"task {task.name}: no examples to take agreement from")
    kind = data_agreement_kind(examples, task)
    if kind is None:
        levels = _level_field(task)
        raise ValueError(f"task {task.name}: the examples carry no per-item {RATINGS_FIELD!r}"
                         + (f" nor {levels!r} level" if levels else "")
                         + " (give crowd labels or an agreement file instead)")
    if kind == "levels":
        levels = DOCUMENTED_LEVELS[task.data_name]
        return DataAgreement(kind="levels", agreements=level_agreements(examples, levels),
                             description=levels.description, levels=levels)
    analyzer = AgreementAnalyzer(label_order=task.labels, duplicates="error").fit(ratings_as_labels(examples, task))
    report = analyzer.report_
    majority = {it.item: it.majority for it in analyzer.items_}
    matches = sum(majority[ex.id] == ex.label for ex in examples) / len(examples)
    return DataAgreement(kind="ratings", agreements=analyzer.agreements(), description=_ratings_description(report),
                         report=report, majority_matches_gold=matches)


def _level_field(task: TaskSpec) -> str | None:
    levels = DOCUMENTED_LEVELS.get(task.data_name)
    return levels.field if levels else None


def _ratings_description(report: AgreementReport) -> str:
    per_item = sorted({it.n_labels for it in report.items})
    count = str(per_item[0]) if len(per_item) == 1 else f"{per_item[0]}-{per_item[-1]}"
    stats = [f"Fleiss' κ = {report.fleiss_kappa:.3f}" if report.fleiss_kappa is not None else "Fleiss' κ undefined",
             f"Krippendorff's α = {report.krippendorff_alpha:.3f}" if report.krippendorff_alpha is not None
             else "Krippendorff's α undefined"]
    return (f"the dataset's own human ratings ({count} per item; a_i = share of the majority rating; "
            f"{', '.join(stats)})")
