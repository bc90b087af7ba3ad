"""Worker quality and trustworthy crowd data, for labeling and pairwise studies alike.

Per worker (`worker_quality`): accuracy on gold items (attention checks with known answers, mixed in by
the study's `gold_every`; never exported as data), failed attention checks (gold items whose key starts
with "attention"), agreement with the majority of the OTHER workers on the same units, and the median
time per unit (lease to answer).

Exclusion (`ExclusionRules`, `flag_workers`): failed attention checks, low gold accuracy, answering too
fast, optionally low agreement; each flagged worker comes with the reasons. `load_study_data` reads a
study straight from the database and drops the flagged workers' records, reporting how many records were
excluded and why; this is what `subjlab rank/agreement --exclude-flagged` call.

Worker models (`compare_label_models`, `compare_pair_models`): crowd-kit's Dawid-Skene and MACE for
labels and its noisy Bradley-Terry for pairs, next to majority vote (labels) and win rates / plain
Bradley-Terry (pairs). crowd-kit 1.4.2's `BradleyTerry` stops after two iterations under its default
tolerance, so it runs with `tol=0`.
"""

from __future__ import annotations

import statistics
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence, Union

from sqlalchemy import select
from sqlmodel import Session

from subjlab.records import Judgment, Label

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
    from annotation_server.db import make_engine, session_scope
    from annotation_server.export import export_records
    from annotation_server.schema import check_at_head
    from annotation_server.studies import get_study

    engine = make_engine(db_url, pool_size=1)
    try:
        try:
            check_at_head(engine)
        except RuntimeError as exc:
            raise ValueError(str(exc)) from None
        with session_scope(engine) as db:
            row = get_study(db, study)
            what = "labels" if row.kind == "labeling" else "judgments"
            records = export_records(db, row.name, what)
            qualities = worker_quality(db, row.name, attention_prefix)
            kind = row.kind
            unconfirmed = reports.unconfirmed_sessions(db, row.name)["unconfirmed"]
    finally:
        engine.dispose()
    flagged = flag_workers(qualities, rules)
    kept, report = exclude_records(records, flagged, study, kind, apply=exclude_flagged)
    return kept, replace(report, unconfirmed_records=sum(s["answers"] for s in unconfirmed),
                         unconfirmed_sessions=len(unconfirmed))


# ------------------------------------------------------------------------------------ worker models
@dataclass(frozen=True)
class LabelAggregation:
    """Consensus labels from majority vote, Dawid-Skene and MACE, with worker skills and comparisons.

    `labels[method][item]`; `skills[method][worker]` (MV: agreement with the majority; DS: prior-weighted
    probability of answering the true class; MACE: probability of not spamming); `accuracy[method]`
    against a truth when one is given; `agreement_with_mv[method]`: share of items where the method
    chose what majority vote chose.
    """

    labels: dict[str, dict[str, str]]
    skills: dict[str, dict[str, float]]
    agreement_with_mv: dict[str, float]
    accuracy: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the comparison as JSON (labels per method omitted; skills rounded)."""
        return {"methods": list(self.labels), "n_items": len(next(iter(self.labels.values()), {})),
                "agreement_with_mv": self.agreement_with_mv, "accuracy": self.accuracy,
                "skills": {m: {w: round(s, 4) for w, s in sk.items()} for m, sk in self.skills.items()}}


def _label_frame(labels: Sequence[Label]):
    import pandas as pd

    if not labels:
        raise ValueError("no labels to aggregate")
    return pd.DataFrame({"task": [l.item for l in labels], "worker": [l.worker for l in labels],
                         "label": [l.label for l in labels]})


def _first_seen_categories(df):
    """The frame with `worker` and `label` as categoricals in order of first appearance.

    crowd-kit 1.4.2's MACE indexes its parameters by first appearance (`pd.factorize`) but builds its
    per-(worker, label) count table with a sorted `groupby(...).unstack()` and reads it by position; when
    the two orders differ the counts land on the wrong workers/labels and the model can collapse to a
    single label. Categoricals whose categories are in first-appearance order make the two orders equal.
    """
    import pandas as pd

    out = df.copy()
    for col in ("worker", "label"):
        values = list(out[col])
        out[col] = pd.Categorical(values, categories=list(dict.fromkeys(values)))
    return out


def compare_label_models(labels: Sequence[Label], truth: Mapping[str, str] | None = None, seed: int = 0,
                         mace_restarts: int = 5, mace_iterations: int = 50) -> LabelAggregation:
    """Aggregate labels with majority vote, Dawid-Skene (EM, at most 100 iterations) and MACE (variational,
    `mace_restarts` x `mace_iterations`, seeded); compare them, and score them against `truth` if given."""
    from crowdkit.aggregation import MACE, DawidSkene, MajorityVote

    df = _label_frame(labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mv = MajorityVote().fit(df)
        ds = DawidSkene(n_iter=100).fit(df)
        mace = MACE(n_restarts=mace_restarts, n_iter=mace_iterations, random_state=seed).fit(_first_seen_categories(df))
    out_labels = {"majority_vote": _series(mv.labels_), "dawid_skene": _series(ds.labels_), "mace": _series(mace.labels_)}
    workers_in_order = list(dict.fromkeys(df["worker"]))
    skills = {
        "majority_vote": {str(w): float(s) for w, s in mv.skills_.items()},
        "dawid_skene": _ds_skills(ds),
        "mace": {str(w): float(mace.spamming_[i, 1]) for i, w in enumerate(workers_in_order)},
    }
    mv_labels = out_labels["majority_vote"]
    agreement = {m: sum(lab.get(i) == l for i, l in mv_labels.items()) / len(mv_labels) for m, lab in out_labels.items()}
    accuracy = None
    if truth is not None:
        items = [i for i in mv_labels if i in truth]
        if not items:
            raise ValueError("the truth mapping shares no item with the labels")
        accuracy = {m: sum(lab[i] == truth[i] for i in items) / len(items) for m, lab in out_labels.items()}
    return LabelAggregation(labels=out_labels, skills=skills, agreement_with_mv=agreement, accuracy=accuracy)


def _series(series) -> dict[str, str]:
    return {str(k): str(v) for k, v in series.items()}


def _ds_skills(ds) -> dict[str, float]:
    errors, priors = ds.errors_, ds.priors_
    out: dict[str, float] = {}
    for worker in errors.index.get_level_values(0).unique():
        m = errors.loc[worker]
        out[str(worker)] = float(sum(priors[k] * m.loc[k, k] for k in priors.index if k in m.index and k in m.columns))
    return out


@dataclass(frozen=True)
class PairAggregation:
    """Task scores from win rates (majority), plain Bradley-Terry and noisy Bradley-Terry (crowd-kit),
    the noisy model's worker skills, and Spearman correlations of each ranking with the win rates."""

    scores: dict[str, dict[str, float]]
    skills: dict[str, float]
    spearman_with_win_rate: dict[str, float | None]

    def ranking(self, method: str) -> list[str]:
        """Tasks from most to least objective under `method`."""
        return sorted(self.scores[method], key=lambda t: -self.scores[method][t])

    def to_json(self) -> dict[str, Any]:
        """Return the comparison as JSON."""
        return {"methods": list(self.scores), "scores": self.scores, "skills": self.skills,
                "spearman_with_win_rate": self.spearman_with_win_rate}


def compare_pair_models(judgments: Sequence[Judgment], seed: int = 0) -> PairAggregation:
    """Score tasks from judgments with win rates, Bradley-Terry (tol=0) and noisy Bradley-Terry."""
    import pandas as pd
    from crowdkit.aggregation import BradleyTerry, NoisyBradleyTerry
    from scipy.stats import spearmanr

    if not judgments:
        raise ValueError("no judgments to aggregate")
    df = pd.DataFrame({"worker": [j.worker for j in judgments], "left": [j.left for j in judgments],
                       "right": [j.right for j in judgments], "label": [j.winner for j in judgments]})
    wins: Counter[str] = Counter(j.winner for j in judgments)
    seen: Counter[str] = Counter()
    for j in judgments:
        seen.update((j.left, j.right))
    win_rate = {t: wins.get(t, 0) / n for t, n in seen.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = BradleyTerry(n_iter=200, tol=0).fit(df)
        noisy = NoisyBradleyTerry(n_iter=200, random_state=seed).fit(df)
    scores = {"win_rate": win_rate, "bradley_terry": {str(k): float(v) for k, v in bt.scores_.items()},
              "noisy_bradley_terry": {str(k): float(v) for k, v in noisy.scores_.items()}}
    tasks = sorted(win_rate)
    spearman: dict[str, float | None] = {}
    for method, sc in scores.items():
        a = [win_rate[t] for t in tasks]
        b = [sc.get(t, 0.0) for t in tasks]
        if len(tasks) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
            spearman[method] = None
        else:
            spearman[method] = float(spearmanr(a, b).statistic)
    return PairAggregation(scores=scores, skills={str(k): float(v) for k, v in noisy.skills_.items()},
                           spearman_with_win_rate=spearman)


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
