"""Worker quality and trustworthy crowd data, for labeling and pairwise studies alike.

Per worker (`worker_quality`): accuracy on gold items (attention checks with known answers, mixed in by
the study's `gold_every`; never exported as data), failed attention checks (gold items whose key starts
with "attention"), agreement with the majority of the OTHER workers on the same units, and the median
time per unit (lease to answer).

Exclusion (`ExclusionRules`, `flag_workers`): failed attention checks, low gold accuracy, answering too
fast, optionally low agreement; each flagged worker comes with the reasons. `load_study_data` reads a
study straight from the database and drops the flagged workers' records, reporting how many records were
excluded and why; this is what `subjlab rank/agreement --exclude-flagged` call.

Worker models (crowd-kit's Dawid-Skene, MACE, noisy Bradley-Terry) are in `crowd_models`; `quality_report`
puts them beside the figures above.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import (
    Any,
    Iterable,
    Mapping,
    Sequence,
    Union,
)

from sqlalchemy import select
from sqlmodel import Session

from subjlab.records import Judgment, Label
from annotation_server.crowd_models import compare_label_models, compare_pair_models

Record = Union[Judgment, Label]

#: Gold items whose key starts with this are attention checks (an obvious answer; any miss counts).
ATTENTION_PREFIX = "attention"


# ------------------------------------------------------------------------------------ agreement
def _unit_and_answer(record: Record) -> tuple[Any, str]:
    if isinstance(record, Label):
        return record.item, record.label
    if isinstance(record, Judgment):
        return frozenset((record.left, record.right)), record.winner
    raise TypeError(f"expected Label or Judgment records, got {type(record).__name__}")


def majority_agreement(records: Iterable[Record]) -> dict[str, tuple[int, int]]:
    """Return {worker: (agreements, comparable answers)}: how often each worker's answer equals the
    plurality answer of the OTHER workers on the same unit (item, or unordered task pair).

    Units where the others are tied at the top, or where nobody else answered, are not comparable.
    """
    by_unit: dict[Any, list[tuple[str, str]]] = defaultdict(list)
    for r in records:
        unit, answer = _unit_and_answer(r)
        by_unit[unit].append((r.worker, answer))
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for answers in by_unit.values():
        counts = Counter(a for _, a in answers)
        for worker, answer in answers:
            others = counts.copy()
            others[answer] -= 1
            ranked = [c for c in others.most_common() if c[1] > 0]
            out.setdefault(worker, [0, 0])
            if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
                continue
            out[worker][1] += 1
            out[worker][0] += int(ranked[0][0] == answer)
    return {w: (a, n) for w, (a, n) in out.items()}


# ------------------------------------------------------------------------------------ per worker
@dataclass(frozen=True)
class WorkerQuality:
    """One worker's quality figures in a study (None where there is nothing to measure)."""

    worker: str
    units: int
    gold_answered: int = 0
    gold_correct: int = 0
    attention_answered: int = 0
    attention_failed: int = 0
    agreement: float | None = None
    agreement_units: int = 0
    median_seconds: float | None = None

    @property
    def gold_accuracy(self) -> float | None:
        """Share of gold items answered correctly (attention checks included), None without gold answers."""
        return self.gold_correct / self.gold_answered if self.gold_answered else None

    def metrics(self) -> dict[str, float | None]:
        """The figures review rules can use: gold, agreement, seconds, units, gold_answered, attention_failed."""
        return {"gold": self.gold_accuracy, "agreement": self.agreement, "seconds": self.median_seconds,
                "units": float(self.units), "gold_answered": float(self.gold_answered),
                "attention_failed": float(self.attention_failed)}

    def to_json(self) -> dict[str, Any]:
        """Return the figures as a JSON object."""
        return {"worker": self.worker, "units": self.units, "gold_answered": self.gold_answered,
                "gold_correct": self.gold_correct, "gold_accuracy": self.gold_accuracy,
                "attention_answered": self.attention_answered, "attention_failed": self.attention_failed,
                "agreement": self.agreement, "agreement_units": self.agreement_units,
                "median_seconds": self.median_seconds}


@dataclass(frozen=True)
class GoldResult:
    """One worker's answer to one gold item."""

    worker: str
    key: str
    correct: bool


def gold_results(db: Session, study_name: str) -> list[GoldResult]:
    """Return every answer to the study's gold items (attention checks), oldest first (not those of sessions
    a crowd platform did not confirm)."""
    from annotation_server.export import confirmed_only
    from annotation_server.models import GoldAnswer, GoldItem, Worker
    from annotation_server.studies import get_study

    study = get_study(db, study_name)
    rows = db.execute(confirmed_only(
        select(Worker.external_id, GoldItem.key, GoldAnswer.correct)
        .join(GoldItem, GoldItem.id == GoldAnswer.gold_id)
        .join(Worker, Worker.id == GoldAnswer.worker_id)
        .where(GoldAnswer.study_id == study.id)
        .order_by(GoldAnswer.id), GoldAnswer)).all()
    return [GoldResult(w, k, bool(c)) for w, k, c in rows]


def summarize_workers(records: Sequence[Record], gold: Sequence[GoldResult],
                      seconds: Mapping[str, float | None] | None = None,
                      attention_prefix: str = ATTENTION_PREFIX) -> list[WorkerQuality]:
    """Combine answers, gold results and median seconds per unit into one WorkerQuality per worker
    (sorted by worker id)."""
    units = Counter(r.worker for r in records)
    agree = majority_agreement(records)
    gold_by: dict[str, list[GoldResult]] = defaultdict(list)
    for g in gold:
        gold_by[g.worker].append(g)
    seconds = seconds or {}
    out = []
    for worker in sorted(set(units) | set(gold_by)):
        g = gold_by.get(worker, [])
        attention = [x for x in g if x.key.startswith(attention_prefix)]
        a, n = agree.get(worker, (0, 0))
        out.append(WorkerQuality(
            worker=worker, units=units.get(worker, 0), gold_answered=len(g), gold_correct=sum(x.correct for x in g),
            attention_answered=len(attention), attention_failed=sum(not x.correct for x in attention),
            agreement=(a / n) if n else None, agreement_units=n, median_seconds=seconds.get(worker)))
    return out


def worker_quality(db: Session, study_name: str, attention_prefix: str = ATTENTION_PREFIX) -> list[WorkerQuality]:
    """Return the WorkerQuality of every worker of a study (answers, gold, agreement, time per unit)."""
    from annotation_server.export import export_records
    from annotation_server.reports import workers as worker_table
    from annotation_server.studies import get_study

    study = get_study(db, study_name)
    records = export_records(db, study.name, "labels" if study.kind == "labeling" else "judgments")
    seconds = {row["worker_id"]: row.get("median_seconds") for row in worker_table(db, study.name)["workers"]}
    return summarize_workers(records, gold_results(db, study.name), seconds, attention_prefix)


# ------------------------------------------------------------------------------------ exclusion
@dataclass(frozen=True)
class Reason:
    """Why a worker is flagged: a short code (attention, gold, too_fast, agreement) and a sentence."""

    code: str
    message: str


@dataclass(frozen=True)
class ExclusionRules:
    """When a worker's data is excluded.

    - more than `max_failed_attention` failed attention checks;
    - gold accuracy below `min_gold_accuracy`, judged once `min_gold_answered` gold items were answered;
    - median seconds per unit below `min_median_seconds` (None: no speed rule);
    - agreement with the majority of others below `min_agreement` over at least `min_agreement_units`
      comparable units (None, the default: no agreement rule; disagreement is the signal on subjective tasks).
    """

    max_failed_attention: int = 0
    min_gold_accuracy: float | None = 0.6
    min_gold_answered: int = 3
    min_median_seconds: float | None = 2.0
    min_agreement: float | None = None
    min_agreement_units: int = 5

    def reasons(self, q: WorkerQuality) -> tuple[Reason, ...]:
        """Return the reasons to exclude a worker (empty when none applies)."""
        out: list[Reason] = []
        if q.attention_failed > self.max_failed_attention:
            out.append(Reason("attention", f"failed {q.attention_failed} of {q.attention_answered} attention checks"))
        acc = q.gold_accuracy
        if self.min_gold_accuracy is not None and acc is not None and q.gold_answered >= self.min_gold_answered \
                and acc < self.min_gold_accuracy:
            out.append(Reason("gold", f"gold accuracy {acc:.2f} < {self.min_gold_accuracy:.2f} "
                                      f"({q.gold_correct}/{q.gold_answered})"))
        if self.min_median_seconds is not None and q.median_seconds is not None and q.units > 0 \
                and q.median_seconds < self.min_median_seconds:
            out.append(Reason("too_fast", f"median {q.median_seconds:.1f} s per unit < {self.min_median_seconds:.1f} s"))
        if self.min_agreement is not None and q.agreement is not None and q.agreement_units >= self.min_agreement_units \
                and q.agreement < self.min_agreement:
            out.append(Reason("agreement", f"agreement with the majority {q.agreement:.2f} < {self.min_agreement:.2f} "
                                           f"over {q.agreement_units} units"))
        return tuple(out)


@dataclass(frozen=True)
class FlaggedWorker:
    """A worker whose data is excluded, and why."""

    worker: str
    reasons: tuple[Reason, ...]

    def to_json(self) -> dict[str, Any]:
        """Return `{"worker", "reasons": [{"code", "message"}]}`."""
        return {"worker": self.worker, "reasons": [{"code": r.code, "message": r.message} for r in self.reasons]}


def flag_workers(qualities: Iterable[WorkerQuality], rules: ExclusionRules | None = None) -> list[FlaggedWorker]:
    """Return the workers the rules exclude, each with its reasons (sorted by worker id)."""
    rules = rules or ExclusionRules()
    out = []
    for q in sorted(qualities, key=lambda q: q.worker):
        reasons = rules.reasons(q)
        if reasons:
            out.append(FlaggedWorker(q.worker, reasons))
    return out


@dataclass(frozen=True)
class ExclusionReport:
    """What exclusion did to a study's records: counts, the flagged workers, records excluded per reason
    (a record of a worker with two reasons counts under both)."""

    study: str
    kind: str
    n_records: int
    n_excluded: int
    flagged: tuple[FlaggedWorker, ...]
    excluded_by_reason: dict[str, int] = field(default_factory=dict)
    applied: bool = True
    #: answers of sessions a crowd platform did not confirm, left out before any rule (`export.export_records`)
    unconfirmed_records: int = 0
    unconfirmed_sessions: int = 0

    @property
    def n_kept(self) -> int:
        """Records kept."""
        return self.n_records - self.n_excluded

    def to_json(self) -> dict[str, Any]:
        """Return the report as a JSON object."""
        return {"study": self.study, "kind": self.kind, "applied": self.applied, "n_records": self.n_records,
                "n_excluded": self.n_excluded, "n_kept": self.n_kept, "excluded_by_reason": dict(self.excluded_by_reason),
                "flagged": [f.to_json() for f in self.flagged], "unconfirmed_records": self.unconfirmed_records,
                "unconfirmed_sessions": self.unconfirmed_sessions}

    def lines(self) -> list[str]:
        """A short human-readable summary."""
        what = "labels" if self.kind == "labeling" else "judgments"
        out = []
        if self.unconfirmed_records:
            out.append(f"left out {self.unconfirmed_records} {what} of {self.unconfirmed_sessions} session(s) the crowd "
                       "platform did not confirm (the admin page and `subjlab mturk review` list them with the reason)")
        return out + self._rule_lines(what)

    def _rule_lines(self, what: str) -> list[str]:
        if not self.applied:
            return [f"{len(self.flagged)} flagged worker(s); exclusion not applied ({self.n_records} {what} kept)"]
        head = f"excluded {self.n_excluded} of {self.n_records} {what} from {len(self.flagged)} flagged worker(s)"
        reasons = ", ".join(f"{code}: {n}" for code, n in sorted(self.excluded_by_reason.items()))
        return [head + (f" ({reasons})" if reasons else "")]


def exclude_records(records: Sequence[Record], flagged: Sequence[FlaggedWorker], study: str = "", kind: str = "",
                    apply: bool = True) -> tuple[list[Record], ExclusionReport]:
    """Return (records without the flagged workers' ones, the ExclusionReport); `apply=False` only reports."""
    reasons_of = {f.worker: {r.code for r in f.reasons} for f in flagged}
    kept: list[Record] = []
    by_reason: Counter[str] = Counter()
    excluded = 0
    for r in records:
        codes = reasons_of.get(r.worker)
        if codes and apply:
            excluded += 1
            by_reason.update(codes)
        else:
            kept.append(r)
    return kept, ExclusionReport(study=study, kind=kind, n_records=len(records), n_excluded=excluded,
                                 flagged=tuple(flagged), excluded_by_reason=dict(by_reason), applied=apply)


def load_study_data(db_url: str, study: str, exclude_flagged: bool = True, rules: ExclusionRules | None = None,
                    attention_prefix: str = ATTENTION_PREFIX) -> tuple[list[Record], ExclusionReport]:
    """Read a study's judgments (pairwise) or labels (labeling) straight from the database at `db_url`.

    Returns (records, report): with `exclude_flagged`, the records of workers flagged by `rules` are left
    out and the report says how many and why; without it, everything is returned and the report still
    lists the flagged workers. Raises ValueError for an unknown study or a database not at the schema head.
    """
    from annotation_server import reports
    from annotation_server.export import export_records
    from annotation_server.schema import migrated_session
    from annotation_server.studies import get_study

    with migrated_session(db_url) as db:
        row = get_study(db, study)
        what = "labels" if row.kind == "labeling" else "judgments"
        records = export_records(db, row.name, what)
        qualities = worker_quality(db, row.name, attention_prefix)
        kind = row.kind
        unconfirmed = reports.unconfirmed_sessions(db, row.name)["unconfirmed"]
    flagged = flag_workers(qualities, rules)
    kept, report = exclude_records(records, flagged, study, kind, apply=exclude_flagged)
    return kept, replace(report, unconfirmed_records=sum(s["answers"] for s in unconfirmed),
                         unconfirmed_sessions=len(unconfirmed))



def quality_report(db: Session, study_name: str, rules: ExclusionRules | None = None,
                   attention_prefix: str = ATTENTION_PREFIX, mace_restarts: int = 5,
                   mace_iterations: int = 50) -> dict[str, Any]:
    """Return the JSON an admin view shows: per-worker quality, flagged workers with reasons, the exclusion
    report, and the worker models compared with majority vote (`models` is None before any answer)."""
    from annotation_server.export import export_records
    from annotation_server.studies import get_study

    study = get_study(db, study_name)
    what = "labels" if study.kind == "labeling" else "judgments"
    records = export_records(db, study.name, what)
    qualities = worker_quality(db, study.name, attention_prefix)
    flagged = flag_workers(qualities, rules)
    _, report = exclude_records(records, flagged, study.name, study.kind)
    models: dict[str, Any] | None = None
    if records:
        models = (compare_label_models(records, mace_restarts=mace_restarts, mace_iterations=mace_iterations)
                  if study.kind == "labeling" else compare_pair_models(records)).to_json()
    return {"study": study.name, "kind": study.kind, "workers": [q.to_json() for q in qualities],
            "flagged": [f.to_json() for f in flagged], "exclusion": report.to_json(), "models": models,
            "median_seconds_overall": statistics.median([q.median_seconds for q in qualities if q.median_seconds is not None])
            if any(q.median_seconds is not None for q in qualities) else None}
