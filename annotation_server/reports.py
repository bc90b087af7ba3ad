"""Admin reports on a study: Bradley-Terry ranking, agreement, and the worker table.

The ranking is computed by the analysis package's public estimator (`analysis.ranking.BradleyTerryRanker`)
on the exported judgments, so the dashboard shows exactly what `subjlab rank` computes from an export.
Agreement gives the figures `analysis.agreement.AgreementAnalyzer` computes on the exported labels (`subjlab
agreement`), from label counts kept up to date between calls (`agreement_fold`); the worker table comes
from the per-worker counters (`tallies`). Neither reads every answer of a big study on each call.
"""

from __future__ import annotations

import statistics
import warnings
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    func,
    or_,
    select,
)
from sqlmodel import Session

from annotation_server import agreement_fold
from annotation_server.agreement_fold import AgreementFolds
from annotation_server.clock import iso, utcnow
from annotation_server.errors import ApiError
from annotation_server.export import export_records
from annotation_server.models import (
    LABELING,
    PAIRWISE,
    Assignment,
    Worker,
    WorkerStats,
)
from annotation_server.sqlparts import SQL_ANSWERED
from annotation_server.studies import get_study

#: Bootstrap resamples for the dashboard's ranking intervals (fast enough to refresh live).
RANKING_BOOTSTRAP = 200


def ranking(db: Session, study_name: str) -> dict[str, Any]:
    """Return the Bradley-Terry objectivity ranking (most objective first) with bootstrap 95% intervals,
    and how settled it is ("stopping": `analysis.stopping.StoppingRule` with its defaults; None below 2 tasks)."""
    from analysis.ranking import BradleyTerryRanker
    from analysis.stopping import StoppingRule

    study = get_study(db, study_name)
    if study.kind != PAIRWISE:
        raise ApiError(400, f"study {study.name!r} is a labeling study: rankings need pairwise judgments", "study")
    judgments = export_records(db, study.name, "judgments")
    out: dict[str, Any] = {"study": study.name, "n_judgments": len(judgments), "connected": None, "components": [],
                           "tasks": [], "stopping": None}
    if len({j.left for j in judgments} | {j.right for j in judgments}) < 2:
        return out
    wins: dict[str, int] = defaultdict(int)
    for j in judgments:
        wins[j.winner] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # disconnected graphs are reported in the JSON
        ranker = BradleyTerryRanker(n_bootstrap=RANKING_BOOTSTRAP, seed=0).fit(judgments)
    out["connected"] = ranker.connected_
    out["components"] = ranker.components_
    out["tasks"] = [dict(row.to_dict(), wins=wins.get(row.task, 0)) for row in ranker.ranking()]
    out["stopping"] = StoppingRule().fit(judgments, ranker=ranker).report().to_dict()
    return out


def agreement(db: Session, study_name: str, now: datetime | None = None, offset: int = 0,
              limit: int | None = None, folds: AgreementFolds | None = None) -> dict[str, Any]:
    """Return per-item agreement a_i, its distribution, Fleiss' kappa and Krippendorff's alpha (the same
    figures `analysis.agreement.AgreementAnalyzer` computes on the export), and the items from `offset`
    (at most `limit`) in the order they were first labeled.

    `folds`: the app's `AgreementFolds`, which keep each study's label counts between calls and read only
    the labels added since (`agreement_fold`); without it every label is read."""
    study = get_study(db, study_name)
    if study.kind != LABELING:
        raise ApiError(400, f"study {study.name!r} is a pairwise study: agreement needs instance labels", "study")
    fold = (folds or AgreementFolds()).get(study)
    return {"study": study.name, **agreement_fold.report(db.connection(), fold, now or utcnow(), offset, limit)}


def unconfirmed_sessions(db: Session, study_name: str) -> dict[str, Any]:
    """The study's sessions a crowd platform did not confirm (`subjlab mturk review`), with the reason and
    their answers (left out of exports, rankings and agreement by default)."""
    from annotation_server.models import UNCONFIRMED, Assignment, WorkerSession

    study = get_study(db, study_name)
    WS, W, SLOTS = WorkerSession.__table__.c, Worker.__table__.c, Assignment.__table__.c
    answered = (select(func.count()).where(SLOTS.session_id == WS.id, SLOTS.status == "answered", SLOTS.gold_id.is_(None))
                .scalar_subquery())
    rows = db.execute(select(WS.id, W.external_id, WS.entry, WS.entry_ref, WS.check_reason, WS.checked_at, answered)
                      .join(Worker.__table__, W.id == WS.worker_id)
                      .where(WS.study_id == study.id, WS.check_status == UNCONFIRMED).order_by(WS.id)).all()
    return {"study": study.name, "unconfirmed": [
        {"session": sid, "worker_id": worker, "entry": entry, "entry_ref": ref, "reason": reason,
         "checked_at": iso(checked) if checked else None, "answers": int(n or 0)}
        for sid, worker, entry, ref, reason, checked, n in rows]}


def workers(db: Session, study_name: str, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
    """Return one row per worker who answered anything, most answers first: answers, attention checks
    (answered, correct, accuracy), median seconds per unit (lease to answer), first and last answer time;
    the rows from `offset` (at most `limit`), and `total`, the number of such workers.

    From the per-worker counters (`tallies`); the median times of the rows returned from their slots."""
    study = get_study(db, study_name)
    WS, Wk = WorkerStats.__table__.c, Worker.__table__.c
    who = and_(WS.study_id == study.id, or_(WS.answered > 0, WS.gold_answered > 0))
    total = db.scalar(select(func.count()).where(who)) or 0
    rows = db.execute(select(WS.worker_id, Wk.external_id, WS.answered, WS.gold_answered, WS.gold_correct,
                             WS.first_at, WS.last_at)
                      .join(Worker.__table__, Wk.id == WS.worker_id).where(who)
                      .order_by(WS.answered.desc(), Wk.external_id).offset(offset).limit(limit)).all()
    seconds = _median_seconds(db, study.id, [r.worker_id for r in rows] if limit is not None else None)
    return {"study": study.name, "total": int(total), "workers": [{
        "worker_id": r.external_id, "answered": r.answered, "gold_answered": r.gold_answered,
        "gold_correct": r.gold_correct, "gold_accuracy": (r.gold_correct / r.gold_answered) if r.gold_answered else None,
        "median_seconds": seconds.get(r.worker_id), "first_at": iso(r.first_at) if r.first_at else None,
        "last_at": iso(r.last_at) if r.last_at else None} for r in rows]}


def _seconds_between(db: Session, start, end):
    """SQL: seconds from datetime column `start` to `end`, as a float computed by the database (a datetime
    pair per answer read into Python costs ~30 µs; a page of 1,000 workers is 25,000 answers)."""
    if db.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _median_seconds(db: Session, study_id: int, worker_pks: list[int] | None) -> dict[int, float]:
    """Median seconds from lease to answer of each worker's regular answers (of `worker_pks`, or of all).

    PostgreSQL computes the medians (`percentile_cont(0.5)`, what `statistics.median` gives): one row per
    worker comes back instead of one per answer (25,000 on a page of 1,000 workers: ~0.5 s of fetching rows
    through the driver). SQLite has no median: its rows (durations it computed) are cheap to fetch, and a
    window-function median measured slower there."""
    SLOTS = Assignment.__table__.c
    seconds = _seconds_between(db, SLOTS.leased_at, SLOTS.answered_at)
    # the status as a literal: SQLite uses the partial covering index `ix_assignment_answer_times`
    # (migration 0006) only when it sees 'answered' in the statement
    where = [SLOTS.study_id == study_id, SLOTS.status == SQL_ANSWERED, SLOTS.gold_id.is_(None),
             SLOTS.leased_at.is_not(None)]
    if worker_pks is not None:
        if not worker_pks:
            return {}
        where.append(SLOTS.worker_id.in_(worker_pks))
    # rounded to the millisecond: julianday's double carries about that much of a time of day
    if db.get_bind().dialect.name == "postgresql":
        query = select(SLOTS.worker_id, func.percentile_cont(0.5).within_group(seconds)).where(*where)
        return {w: round(float(m), 3) for w, m in db.execute(query.group_by(SLOTS.worker_id))}
    durations: dict[int, list[float]] = defaultdict(list)
    for worker_pk, value in db.execute(select(SLOTS.worker_id, seconds).where(*where)):
        durations[worker_pk].append(float(value))
    return {w: round(statistics.median(d), 3) for w, d in durations.items()}
