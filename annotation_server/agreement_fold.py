"""A labeling study's agreement, kept up to date by folding in only the labels added since the last look.

`reports.agreement` needs every item's label counts. Recomputing them from every label on each view
costs seconds at a million slots; this module keeps them per server process instead (`LabelFold`, one
per study, in the app's `AgreementFolds`) together with sums from which the whole report follows in
time independent of the study's size: the number of items per (labels, most frequent label's count),
the sum of squared counts per number of labels, and the labels per category (all, and on items with a
single label). Each view reads the label rows it has not folded in yet and moves those sums on.

The rule that keeps the fold right (its "invalidation rule"): label rows are only ever inserted, never
updated or deleted, so a fold of rows by id is exact as long as no row is missed. On SQLite ids are
handed out and committed in order. On PostgreSQL an id is taken when a row is inserted and becomes
visible only at commit, so a row may appear behind a higher id already folded; the fold therefore
re-reads every row of the last `SETTLE_SECONDS` (by the answer's time) on each view, skipping those it
holds, and moves its mark past a row only once the row is older than that: a request's single statement
commits within seconds of its start. A fold is dropped when its study's row is not the one it was built
for (`created_at`: a database rebuilt under a running server). Answers of sessions a crowd platform did
not confirm are taken out at each view (a few rows: those sessions' answers), as the export leaves them out.

Krippendorff's alpha and Fleiss' kappa come from the sums in closed form: the `krippendorff` package
takes ~0.2 s on 200,000 items; `tests/server/test_agreement_fold.py` checks both against
`analysis.agreement` on the same labels. Their "undefined" cases give `analysis.agreement`'s own notes.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import islice
from typing import Any, Iterable

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection

from annotation_server.models import (
    UNCONFIRMED,
    Assignment,
    Item,
    LabelRecord,
    Study,
    WorkerSession,
)

#: Rows younger than this (by their `created_at`) are re-read on every view (module doc).
SETTLE_SECONDS = 60.0

LABELS, SLOTS, SESSIONS, ITEMS = LabelRecord.__table__.c, Assignment.__table__.c, WorkerSession.__table__.c, Item.__table__.c


@dataclass
class Sums:
    """Sums over a study's labeled items from which the agreement report follows (module doc)."""

    n_categories: int
    by_shape: Counter = field(default_factory=Counter)  # (labels m, top count t) -> items
    sumsq_by_m: Counter = field(default_factory=Counter)  # m -> sum over items with m labels of sum_c n_c^2
    per_category: list[int] = field(default_factory=list)  # c -> labels
    single: list[int] = field(default_factory=list)  # c -> items whose single label is c

    def __post_init__(self) -> None:
        self.per_category = self.per_category or [0] * self.n_categories
        self.single = self.single or [0] * self.n_categories

    def copy(self) -> "Sums":
        return Sums(self.n_categories, Counter(self.by_shape), Counter(self.sumsq_by_m), list(self.per_category),
                    list(self.single))

    def move(self, counts: list[int], category: int, step: int) -> None:
        """Add (`step` 1) or take away (-1) one label of `category` on an item whose counts are `counts`
        (updated in place)."""
        self._item(counts, -1)
        counts[category] += step
        self.per_category[category] += step
        self._item(counts, 1)

    def _item(self, counts: list[int], sign: int) -> None:
        m = sum(counts)
        if m == 0:
            return
        self.by_shape[(m, max(counts))] += sign
        self.sumsq_by_m[m] += sign * sum(c * c for c in counts)
        if m == 1:
            self.single[counts.index(1)] += sign

    @property
    def n_items(self) -> int:
        return sum(self.by_shape.values())

    @property
    def n_labels(self) -> int:
        return sum(self.per_category)


class LabelFold:
    """The label counts of one labeling study's items, folded in from its label rows (module doc)."""

    def __init__(self, study_id: int, created_at: datetime, labels: Iterable[str]):
        self.study_id, self.created_at = study_id, created_at
        self.labels = list(labels)
        self.category = {label: j for j, label in enumerate(self.labels)}
        self.counts: dict[int, list[int]] = {}  # item id -> counts per category, in first-label order
        self.sums = Sums(len(self.labels))
        self.mark = 0  # every label row with id <= mark is folded in and final
        self.recent: set[int] = set()  # ids > mark already folded in
        self.lock = threading.Lock()

    def refresh(self, conn: Connection, now: datetime) -> None:
        """Fold in the label rows not seen yet (and re-read those of the last `SETTLE_SECONDS`)."""
        settled = _naive(now) - timedelta(seconds=SETTLE_SECONDS)
        rows = conn.execute(select(LABELS.id, LABELS.item_id, LABELS.label, LABELS.created_at)
                            .where(LABELS.study_id == self.study_id, LABELS.id > self.mark).order_by(LABELS.id))
        advancing = True
        for row_id, item_id, label, created_at in rows:
            if row_id not in self.recent:
                self._add(item_id, label)
            if advancing and _naive(created_at) < settled:
                self.mark = row_id
                self.recent.discard(row_id)
            else:
                advancing = False
                self.recent.add(row_id)

    def _add(self, item_id: int, label: str) -> None:
        counts = self.counts.get(item_id)
        if counts is None:
            counts = self.counts[item_id] = [0] * len(self.labels)
        self.sums.move(counts, self.category[label], 1)

    def without(self, removed: list[tuple[int, str]]) -> tuple[Sums, dict[int, list[int]]]:
        """(sums, changed item counts) once the labels `removed` [(item id, label)] are taken out."""
        if not removed:
            return self.sums, {}
        sums, changed = self.sums.copy(), {}
        for item_id, label in removed:
            counts = changed.setdefault(item_id, list(self.counts[item_id]))
            sums.move(counts, self.category[label], -1)
        return sums, changed

    def items(self, changed: dict[int, list[int]], offset: int, limit: int | None) -> list[tuple[int, list[int]]]:
        """(item id, counts) of the labeled items in first-label order, from `offset`, at most `limit`."""
        labeled = ((item_id, changed.get(item_id, counts)) for item_id, counts in self.counts.items())
        labeled = ((item_id, counts) for item_id, counts in labeled if any(counts))
        return list(islice(labeled, offset, None if limit is None else offset + limit))


class AgreementFolds:
    """The LabelFolds of one app (per process), by study id."""

    def __init__(self) -> None:
        self._folds: dict[int, LabelFold] = {}
        self._lock = threading.Lock()

    def get(self, study: Study) -> LabelFold:
        """The fold of `study` (a new one when there is none, or when the study row is not the one it was for)."""
        with self._lock:
            fold = self._folds.get(study.id)
            if fold is None or fold.created_at != study.created_at:
                fold = self._folds[study.id] = LabelFold(study.id, study.created_at, study.task_spec["labels"])
            return fold


def unconfirmed_labels(conn: Connection, study_id: int) -> list[tuple[int, str]]:
    """(item id, label) of the answers of the study's sessions a platform did not confirm.

    The sessions first (`ix_worker_session_study_id_check_status`; usually none), then their slots by
    (study, worker): one join of the three tables led SQLite's planner to walk every slot of the study."""
    sessions = conn.execute(select(SESSIONS.id, SESSIONS.worker_id).where(SESSIONS.study_id == study_id,
                                                              SESSIONS.check_status == UNCONFIRMED)).all()
    if not sessions:
        return []
    return [tuple(r) for r in conn.execute(
        select(LABELS.item_id, LABELS.label).join(Assignment.__table__, LABELS.assignment_id == SLOTS.id)
        .where(SLOTS.study_id == study_id, SLOTS.worker_id.in_({w for _, w in sessions}),
               SLOTS.session_id.in_([s for s, _ in sessions])))]


def report(conn: Connection, fold: LabelFold, now: datetime, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
    """The agreement JSON of `reports.agreement` from the fold (refreshed first): summary of every labeled
    item, and the items from `offset` (at most `limit`) in the order they were first labeled (by anyone:
    an item first labeled in a session left out keeps its place)."""
    with fold.lock:
        fold.refresh(conn, now)
        sums, changed = fold.without(unconfirmed_labels(conn, fold.study_id))
        page = fold.items(changed, offset, limit)
    out: dict[str, Any] = {"n_items": sums.n_items, "n_labels": sums.n_labels, "mean_agreement": None,
                           "fleiss_kappa": None, "krippendorff_alpha": None, "histogram": [], "items": []}
    if sums.n_items == 0:
        return out
    kappa, kappa_note = fleiss_kappa(sums)
    alpha, alpha_note = krippendorff_alpha(sums)
    histogram: Counter = Counter()
    for (m, top), n in sums.by_shape.items():
        if n:
            histogram[round(top / m, 3)] += n
    names = dict(conn.execute(select(ITEMS.id, ITEMS.external_id).where(ITEMS.id.in_([i for i, _ in page]))).all()) if page else {}
    out.update({
        "mean_agreement": sum(n * top / m for (m, top), n in sums.by_shape.items()) / sums.n_items,
        "fleiss_kappa": kappa, "fleiss_kappa_note": kappa_note,
        "krippendorff_alpha": alpha, "krippendorff_alpha_note": alpha_note,
        "histogram": [{"agreement": a, "count": c} for a, c in sorted(histogram.items(), key=lambda kv: -kv[0]) if c],
        "items": [_item_json(names[item_id], counts, fold.labels) for item_id, counts in page],
    })
    return out


def _item_json(name: str, counts: list[int], labels: list[str]) -> dict[str, Any]:
    """An item's agreement entry: a_i, the majority (ties to the first label in the task's order), labels."""
    top, n = max(counts), sum(counts)
    return {"item": name, "agreement": top / n, "majority": labels[counts.index(top)], "n_labels": n}


def _shapes(sums: Sums) -> list[int]:
    return sorted({m for (m, _), n in sums.by_shape.items() if n})


def fleiss_kappa(sums: Sums) -> tuple[float | None, str | None]:
    """(Fleiss' kappa, None), or (None, why it is undefined) as `analysis.agreement.fleiss_kappa` says it."""
    from analysis.agreement import fleiss_kappa as reference

    sizes = _shapes(sums)
    n, items = sizes[0], sums.n_items
    p_e = sum((c / (items * n)) ** 2 for c in sums.per_category)
    if len(sizes) != 1 or n < 2 or np.isclose(p_e, 1.0):
        # the same checks on a tiny matrix of the same kind give the reference's own message
        tiny = np.array([[sizes[0]], [sizes[-1]]]) if len(sizes) != 1 or n < 2 else np.array([[n]])
        return _undefined(reference, tiny)
    p_bar = (sums.sumsq_by_m[n] - items * n) / (items * n * (n - 1))
    return float((p_bar - p_e) / (1.0 - p_e)), None


def krippendorff_alpha(sums: Sums) -> tuple[float | None, str | None]:
    """(Krippendorff's alpha, nominal, None), or (None, why it is undefined) as
    `analysis.agreement.krippendorff_alpha_nominal` says it.

    alpha = 1 - (n - 1) (n - sum_c o_cc) / (n^2 - sum_c n_c^2) over the items with at least 2 labels, where
    o_cc = sum_u n_uc (n_uc - 1) / (m_u - 1) and n_c = sum_u n_uc (the coincidence matrix's diagonal and
    margins for nominal data)."""
    from analysis.agreement import krippendorff_alpha_nominal as reference

    pairable = [c - s for c, s in zip(sums.per_category, sums.single)]
    any_pairable = any(m >= 2 for m in _shapes(sums))
    if not any_pairable or sum(1 for c in pairable if c) < 2:
        return _undefined(reference, np.array([[2]] if any_pairable else [[1]]))
    items_by_m = Counter()
    for (m, _), k in sums.by_shape.items():
        items_by_m[m] += k
    n = sum(pairable)
    diagonal = sum((sums.sumsq_by_m[m] - m * k) / (m - 1) for m, k in items_by_m.items() if m >= 2)
    return float(1.0 - (n - 1) * (n - diagonal) / (n * n - sum(c * c for c in pairable))), None


def _undefined(reference, tiny: np.ndarray) -> tuple[None, str]:
    """(None, the message `reference` raises on `tiny`, a matrix with the same defect as the study's)."""
    try:
        reference(tiny)
    except ValueError as exc:
        return None, str(exc)
    raise AssertionError(f"{reference.__name__} accepted {tiny.tolist()}")  # the checks above chose a defect


def _naive(value: datetime) -> datetime:
    """`value` as a naive UTC time (SQLite hands back naive UTC times, PostgreSQL aware ones)."""
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo is not None else value
