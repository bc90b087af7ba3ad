"""Annotation agreement: per-instance agreement a_i, Fleiss' kappa and Krippendorff's alpha.

Per item i with K_i labels r_i^1..r_i^K:

    a_i = max_y (1/K_i) * sum_k 1(r_i^k = y)          (the share of the majority label)

Rules (all deterministic, all reported rather than hidden):

- Ties: when several labels share the top count the item is flagged `tie=True` and its majority is
  the tied label that comes first in `label_order` (e.g. the task's label order); labels not in
  `label_order` come after those that are, alphabetically. With no `label_order`: alphabetically.
- Single-label items: reported with a_i = 1.0, n_labels = 1 and `single=True`. They count in
  `mean_agreement` (a_i is defined for them) — `mean_agreement_multi` leaves them out — and they add
  no pairable values to Krippendorff's alpha. Their presence makes Fleiss' kappa undefined.
- A worker who labeled the same item more than once: with `duplicates="last"` (default) only the
  worker's LAST label in input order counts (label files are append logs, so that is the latest
  answer) and the number of replaced labels is reported; with `duplicates="error"` it is a ValueError.

Dataset-level statistics:

- Fleiss' kappa (Fleiss 1971), computed here from the item x category count matrix; defined only when
  every item has the same number n >= 2 of labels and the expected agreement P_e < 1, else None with
  the reason in `fleiss_kappa_note`.
- Krippendorff's alpha, nominal, from the `krippendorff` package (`value_counts` form); any number of
  labels per item. None (with the reason in `krippendorff_alpha_note`) when no item has two labels or
  when only one category occurs among pairable values (no expected disagreement).

Financial PhraseBank ships no per-rater labels, only the strictest agreement subset that contains each
sentence; `phrasebank_agreement` maps those levels to a_i lower bounds (see its docstring), and
`AgreementLevels` / `level_agreements` do the same for any dataset with documented levels
(`analysis.data_agreement` picks ratings or levels from a dataset's own fields).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from subjlab.records import Agreement, Example, Label

Duplicates = Literal["last", "error"]


@dataclass(frozen=True)
class ItemAgreement:
    """Agreement of one item: a_i, the majority label, the number of labels and the count per label."""

    item: str
    agreement: float
    majority: str
    n_labels: int
    tie: bool
    single: bool
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict with the stable keys item, agreement, majority, n_labels (+ flags)."""
        return asdict(self)


@dataclass(frozen=True)
class AgreementReport:
    """Dataset-level agreement: the items plus mean agreement, Fleiss' kappa and Krippendorff's alpha."""

    items: list[ItemAgreement]
    mean_agreement: float
    mean_agreement_multi: float | None
    fleiss_kappa: float | None
    fleiss_kappa_note: str | None
    krippendorff_alpha: float | None
    krippendorff_alpha_note: str | None
    categories: list[str]
    n_items: int
    n_labels: int
    n_workers: int
    n_single_label: int
    n_ties: int
    n_duplicates_replaced: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON interface of `subjlab agreement --format json` (items first, then summary)."""
        out = asdict(self)
        out["items"] = [it.to_dict() for it in self.items]
        return out

    def distribution(self, ndigits: int = 3) -> list[tuple[float, int]]:
        """Return (agreement value rounded to `ndigits`, item count), highest agreement first."""
        counts = Counter(round(it.agreement, ndigits) for it in self.items)
        return sorted(counts.items(), key=lambda kv: -kv[0])


def _order_key(label_order: Sequence[str] | None):
    rank = {lab: i for i, lab in enumerate(label_order or ())}
    return lambda lab: (rank.get(lab, len(rank)), lab)


def item_agreement(item: str, labels: Sequence[str], label_order: Sequence[str] | None = None) -> ItemAgreement:
    """Return the agreement record of one item from its labels (one per worker); ValueError when empty.

    a_i is the share of the most frequent label; ties are broken by `label_order`, then alphabetically.
    """
    if not labels:
        raise ValueError(f"item {item!r} has no labels")
    key = _order_key(label_order)
    counts = Counter(labels)
    top = max(counts.values())
    tied = sorted((lab for lab, c in counts.items() if c == top), key=key)
    return ItemAgreement(
        item=item,
        agreement=top / len(labels),
        majority=tied[0],
        n_labels=len(labels),
        tie=len(tied) > 1,
        single=len(labels) == 1,
        counts={lab: counts[lab] for lab in sorted(counts, key=key)},
    )


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an items x categories count matrix whose rows all sum to the same n >= 2.

    kappa = (P_bar - P_e) / (1 - P_e) with P_i = (sum_j n_ij^2 - n) / (n (n - 1)), P_bar their mean,
    p_j = sum_i n_ij / (N n) and P_e = sum_j p_j^2. Raises ValueError when undefined (unequal or < 2
    labels per item, or P_e = 1 because a single category was used).
    """
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or counts.shape[0] == 0:
        raise ValueError("Fleiss' kappa needs a non-empty items x categories count matrix")
    n_per_item = counts.sum(axis=1)
    n = n_per_item[0]
    if not np.all(n_per_item == n):
        raise ValueError(
            f"Fleiss' kappa needs the same number of labels on every item; got {int(n_per_item.min())}"
            f" to {int(n_per_item.max())}"
        )
    if n < 2:
        raise ValueError("Fleiss' kappa needs at least 2 labels per item")
    n_items = counts.shape[0]
    p_i = ((counts**2).sum(axis=1) - n) / (n * (n - 1))
    p_bar = p_i.mean()
    p_j = counts.sum(axis=0) / (n_items * n)
    p_e = float((p_j**2).sum())
    if np.isclose(p_e, 1.0):
        raise ValueError("Fleiss' kappa is undefined: every label is the same category (P_e = 1)")
    return float((p_bar - p_e) / (1.0 - p_e))


def krippendorff_alpha_nominal(counts: np.ndarray) -> float:
    """Krippendorff's alpha (nominal) of an items x categories count matrix (any labels per item).

    Uses the `krippendorff` package. Items with fewer than 2 labels add no pairable values. Raises
    ValueError when undefined: no item with 2 labels, or a single category among pairable values.
    """
    import krippendorff

    counts = np.asarray(counts, dtype=float)
    pairable = counts[counts.sum(axis=1) >= 2] if counts.ndim == 2 else counts
    if counts.ndim != 2 or pairable.shape[0] == 0:
        raise ValueError("Krippendorff's alpha is undefined: no item has labels from at least 2 workers")
    if int((pairable.sum(axis=0) > 0).sum()) < 2:
        raise ValueError("Krippendorff's alpha is undefined: only one category occurs among pairable labels")
    value = float(krippendorff.alpha(value_counts=pairable, level_of_measurement="nominal"))
    if not np.isfinite(value):  # defensive: the checks above should make this unreachable
        raise ValueError("Krippendorff's alpha is undefined for these labels")
    return value


def _dedupe(labels: Iterable[Label], duplicates: Duplicates) -> tuple[dict[str, dict[str, str]], int, int]:
    """Group labels as item -> {worker: label} in first-seen item order; return it, replaced count, n_in."""
    if duplicates not in ("last", "error"):
        raise ValueError(f"duplicates must be 'last' or 'error', got {duplicates!r}")
    by_item: dict[str, dict[str, str]] = {}
    replaced = 0
    n_in = 0
    for lab in labels:
        n_in += 1
        workers = by_item.setdefault(lab.item, {})
        if lab.worker in workers:
            if duplicates == "error":
                raise ValueError(f"worker {lab.worker!r} labeled item {lab.item!r} more than once")
            replaced += 1
            del workers[lab.worker]  # re-insert so the kept label sits at its latest position
        workers[lab.worker] = lab.label
    return by_item, replaced, n_in


class AgreementAnalyzer:
    """Per-item and dataset agreement of crowd labels.

    `fit(labels)` groups `Label` records by item (see the module docstring for ties, single-label
    items and duplicate labels) and sets:

    - `items_`: list[ItemAgreement] in first-seen item order
    - `categories_`: the categories (label_order first, then the others alphabetically)
    - `counts_`: items x categories count matrix (numpy, rows in `items_` order)
    - `report_`: the AgreementReport (mean agreement, Fleiss' kappa, Krippendorff's alpha, counts)
    """

    def __init__(self, label_order: Sequence[str] | None = None, duplicates: Duplicates = "last"):
        self.label_order = list(label_order) if label_order else None
        self.duplicates = duplicates

    def fit(self, labels: Iterable[Label]) -> "AgreementAnalyzer":
        """Compute the agreement of `labels`; returns self. ValueError on no labels (or duplicates='error')."""
        by_item, replaced, n_in = _dedupe(labels, self.duplicates)
        if not by_item:
            raise ValueError("no labels to analyse")
        key = _order_key(self.label_order)
        items = [item_agreement(item, list(w.values()), self.label_order) for item, w in by_item.items()]
        categories = sorted({lab for w in by_item.values() for lab in w.values()}, key=key)
        col = {c: j for j, c in enumerate(categories)}
        counts = np.zeros((len(items), len(categories)), dtype=np.int64)
        for i, it in enumerate(items):
            for lab, c in it.counts.items():
                counts[i, col[lab]] = c

        kappa, kappa_note = _undefined_as_none(fleiss_kappa, counts)
        alpha, alpha_note = _undefined_as_none(krippendorff_alpha_nominal, counts)
        multi = [it.agreement for it in items if not it.single]
        self.items_ = items
        self.categories_ = categories
        self.counts_ = counts
        self.report_ = AgreementReport(
            items=items,
            mean_agreement=float(np.mean([it.agreement for it in items])),
            mean_agreement_multi=float(np.mean(multi)) if multi else None,
            fleiss_kappa=kappa,
            fleiss_kappa_note=kappa_note,
            krippendorff_alpha=alpha,
            krippendorff_alpha_note=alpha_note,
            categories=categories,
            n_items=len(items),
            n_labels=n_in - replaced,
            n_workers=len({w for ws in by_item.values() for w in ws}),
            n_single_label=sum(it.single for it in items),
            n_ties=sum(it.tie for it in items),
            n_duplicates_replaced=replaced,
        )
        return self

    def agreements(self) -> list[Agreement]:
        """Return the fitted per-item agreement as `Agreement` records (the input of stratified evaluation)."""
        if not hasattr(self, "items_"):
            raise ValueError("AgreementAnalyzer is not fitted: call fit(labels) first")
        return to_agreements(self.items_)


def _undefined_as_none(fn, counts: np.ndarray) -> tuple[float | None, str | None]:
    try:
        return fn(counts), None
    except ValueError as exc:
        return None, str(exc)


def to_agreements(items: Iterable[ItemAgreement]) -> list[Agreement]:
    """Turn per-item agreement into `Agreement(item, agreement)` records (same order)."""
    return [Agreement(item=it.item, agreement=it.agreement) for it in items]


#: Financial PhraseBank agreement level -> a_i lower bound. The release's subsets are ">= 50 %",
#: ">= 66 %", ">= 75 %" and "all annotators agree", with 5-8 annotators per sentence. The value is the
#: smallest share k/n (n in 5..8) that places a sentence in the level: '66' -> 2/3 (4 of 6; 0.66 itself
#: is not reachable), '75' -> 0.75 (6 of 8), '50' -> 0.5 (3 of 6, 4 of 8), '100' -> 1.0.
PHRASEBANK_LEVELS: dict[str, float] = {"100": 1.0, "75": 0.75, "66": 2.0 / 3.0, "50": 0.5}


@dataclass(frozen=True)
class AgreementLevels:
    """A dataset's documented per-item agreement level: its field, level -> a_i, and how to say it."""

    field: str
    values: dict[str, float]
    title: str
    description: str

    def agreement(self, level: object) -> float:
        """Return the a_i of `level`; ValueError on an undocumented level."""
        key = str(level).strip()
        if key not in self.values:
            raise ValueError(f"unknown {self.title} agreement level {level!r}; expected one of {sorted(self.values)}")
        return self.values[key]


#: Financial PhraseBank's documented levels (the `agreement` field of its examples).
PHRASEBANK = AgreementLevels(
    field="agreement",
    values=PHRASEBANK_LEVELS,
    title="Financial PhraseBank",
    description="Financial PhraseBank's per-sentence agreement levels (50/66/75/100% of annotators)",
)


def phrasebank_agreement(level: str | int) -> float:
    """Map a Financial PhraseBank agreement level ('50', '66', '75', '100') to its a_i lower bound.

    '100' -> 1.0, '75' -> 0.75, '66' -> 2/3 (0.666...), '50' -> 0.5. A sentence of level '66' has
    between 2/3 and 3/4 agreement, so thresholds γ <= 2/3 keep it and γ > 2/3 (e.g. 0.7) drop it.
    Raises ValueError on any other value.
    """
    return PHRASEBANK.agreement(level)


def level_agreements(examples: Iterable[Example], levels: AgreementLevels) -> list[Agreement]:
    """Return one `Agreement` per example from its documented level (in `extra[levels.field]`).

    The item is the example's id, so the records match predictions on the same split. Raises
    ValueError naming the example when the field is missing or the level unknown.
    """
    out = []
    for ex in examples:
        level = ex.extra.get(levels.field)
        if level is None:
            raise ValueError(f"example {ex.id!r} has no {levels.field!r} field (is this {levels.title} data?)")
        try:
            out.append(Agreement(item=ex.id, agreement=levels.agreement(level)))
        except ValueError as exc:
            raise ValueError(f"example {ex.id!r}: {exc}") from None
    return out


def phrasebank_agreements(examples: Iterable[Example]) -> list[Agreement]:
    """Return one `Agreement` per Financial PhraseBank example from its `agreement` field (see
    `level_agreements`)."""
    return level_agreements(examples, PHRASEBANK)
