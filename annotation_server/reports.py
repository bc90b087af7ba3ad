"""Admin reports on a study: Bradley-Terry ranking, agreement, and the worker table.

Ranking and agreement are computed by the analysis package's public estimators
(`analysis.ranking.BradleyTerryRanker`, `analysis.agreement.AgreementAnalyzer`) on the exported records,
so the dashboard shows exactly what `subjlab rank` / `subjlab agreement` compute from an export.
"""

from __future__ import annotations

import statistics
import warnings
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from annotation_server.clock import iso
from annotation_server.errors import ApiError
from annotation_server.export import export_records
from annotation_server.models import (
    LABELING,
    PAIRWISE,
    GoldAnswer,
    Judgment,
    LabelRecord,
    Worker,
)
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


def agreement(db: Session, study_name: str) -> dict[str, Any]:
    """Return per-item agreement a_i, its distribution, Fleiss' kappa and Krippendorff's alpha."""
    from analysis.agreement import AgreementAnalyzer

    study = get_study(db, study_name)
    if study.kind != LABELING:
        raise ApiError(400, f"study {study.name!r} is a pairwise study: agreement needs instance labels", "study")
    labels = export_records(db, study.name, "labels")
    out: dict[str, Any] = {"study": study.name, "n_items": 0, "n_labels": len(labels), "mean_agreement": None,
                           "fleiss_kappa": None, "krippendorff_alpha": None, "histogram": [], "items": []}
    if not labels:
        return out
    report = AgreementAnalyzer(label_order=study.task_spec["labels"]).fit(labels).report_
    out.update({
        "n_items": report.n_items,
        "mean_agreement": report.mean_agreement,
        "fleiss_kappa": report.fleiss_kappa,
        "fleiss_kappa_note": report.fleiss_kappa_note,
        "krippendorff_alpha": report.krippendorff_alpha,
        "krippendorff_alpha_note": report.krippendorff_alpha_note,
        "histogram": [{"agreement": a, "count": c} for a, c in report.distribution()],
        "items": [{"item": it.item, "agreement": it.agreement, "majority": it.majority, "n_labels": it.n_labels}
                  for it in report.items],
    })
    return out


def unconfirmed_sessions(db: Session, study_name: str) -> dict[str, Any]:
    """The study's sessions a crowd platform did not confirm (`subjlab mturk review`), with the reason and
    their answers (left out of exports, rankings and agreement by default)."""
    from annotation_server.models import UNCONFIRMED, Assignment, WorkerSession

    study = get_study(db, study_name)
    WS, W, A = WorkerSession.__table__.c, Worker.__table__.c, Assignment.__table__.c
    answered = (select(func.count()).where(A.session_id == WS.id, A.status == "answered", A.gold_id.is_(None))
                .scalar_subquery())
    rows = db.execute(select(WS.id, W.external_id, WS.entry, WS.entry_ref, WS.check_reason, WS.checked_at, answered)
                      .join(Worker.__table__, W.id == WS.worker_id)
                      .where(WS.study_id == study.id, WS.check_status == UNCONFIRMED).order_by(WS.id)).all()
    return {"study": study.name, "unconfirmed": [
        {"session": sid, "worker_id": worker, "entry": entry, "entry_ref": ref, "reason": reason,
         "checked_at": iso(checked) if checked else None, "answers": int(n or 0)}
        for sid, worker, entry, ref, reason, checked, n in rows]}


def workers(db: Session, study_name: str) -> dict[str, Any]:
    """Return one row per worker: answers, attention checks (answered, correct, accuracy), median seconds
    per unit (lease to answer), first and last answer time."""
    study = get_study(db, study_name)
    table = LabelRecord if study.kind == LABELING else Judgment
    rows: dict[str, dict[str, Any]] = {}
    durations: dict[str, list[float]] = defaultdict(list)

    def row(worker: str) -> dict[str, Any]:
        return rows.setdefault(worker, {"worker_id": worker, "answered": 0, "gold_answered": 0, "gold_correct": 0,
                                        "gold_accuracy": None, "median_seconds": None, "first_at": None, "last_at": None})

    for worker, leased_at, created_at in db.execute(
        select(Worker.external_id, table.leased_at, table.created_at).join(Worker, Worker.id == table.worker_id)
        .where(table.study_id == study.id).order_by(table.id)
    ):
        r = row(worker)
        r["answered"] += 1
        r["first_at"] = r["first_at"] or iso(created_at)
        r["last_at"] = iso(created_at)
        if leased_at is not None:
            durations[worker].append((created_at - leased_at).total_seconds())
    for worker, correct in db.execute(
        select(Worker.external_id, GoldAnswer.correct).join(Worker, Worker.id == GoldAnswer.worker_id).where(GoldAnswer.study_id == study.id)
    ):
        r = row(worker)
        r["gold_answered"] += 1
        r["gold_correct"] += int(bool(correct))
    for worker, r in rows.items():
        if r["gold_answered"]:
            r["gold_accuracy"] = r["gold_correct"] / r["gold_answered"]
        if durations.get(worker):
            r["median_seconds"] = statistics.median(durations[worker])
    return {"study": study.name, "workers": sorted(rows.values(), key=lambda r: (-r["answered"], r["worker_id"]))}

