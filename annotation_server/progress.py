"""Progress: a worker's (answered, target, completion code) and a study's (slots, leases, workers, bias).

`worker_progress` is what the worker pages and `GET /studies/{name}/me` show; `study_progress` is what
the admin dashboard and `GET /studies/{name}/progress` show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from annotation_server import tallies
from annotation_server.cache import StudyMeta
from annotation_server.clock import utcnow
from annotation_server.errors import ApiError
from annotation_server.models import LABELING, OPEN, PAIRWISE, GoldItem, Study
from annotation_server.claims import Claimed, has_free_unit
from annotation_server.worker_state import WorkerCounts, WorkerState, open_units_estimate, worker_counts
from annotation_server.sessions import completion_code, resolve_token
from annotation_server.studies import get_study


@dataclass(frozen=True)
class Progress:
    """A worker's progress: units answered, units to expect in all, whether anything is left for them."""

    answered: int
    target: int
    holding: int
    nothing_left: bool

    def to_json(self) -> dict[str, int]:
        """Return `{"answered", "target"}` (what the pages show)."""
        return {"answered": self.answered, "target": self.target}


def compute_progress(counts: WorkerCounts, below: int, mine_below: int, n_gold: int, max_per_worker: int | None,
                     gold_every: int | None, is_open: bool, nothing_left: bool | None = None,
                     reserved_below: int = 0) -> Progress:
    """The progress arithmetic (attention checks count as units), from the worker's slot counts and the
    answer counters: `below` = units of the study below quota, `mine_below` = how many of them the worker
    has, `reserved_below` = how many are pairs kept back for the worker's attention checks (counted as
    checks, `pair_checks`). The target is an estimate (leases in flight are not subtracted). `nothing_left` (if
    given) overrides the estimate of whether a free unit remains for the worker.
    """
    taken = counts.regular_answered + counts.regular_leased
    available = below - mine_below - reserved_below
    capped = max_per_worker is not None and taken >= max_per_worker
    regular = taken + (0 if capped else available)
    if max_per_worker is not None:
        regular = min(regular, max_per_worker)
    if capped or not is_open:
        nothing_left = True
    elif nothing_left is None:
        nothing_left = below - mine_below <= 0
    gold = counts.gold_answered + counts.gold_leased
    if gold_every and not nothing_left:
        gold = max(gold, min(n_gold, regular // (gold_every - 1)))
    answered = counts.regular_answered + counts.gold_answered
    holding = counts.regular_leased + counts.gold_leased
    return Progress(answered=answered, target=max(regular + gold, answered), holding=holding, nothing_left=nothing_left)


def progress_after(state: WorkerState, meta: StudyMeta, claimed: Claimed) -> Progress:
    """The worker's progress once `claimed` is theirs (the hot path: from the state read before the claim)."""
    c = state.counts
    counts = WorkerCounts(c.regular_answered, c.regular_leased + int(claimed.new_regular), c.gold_answered,
                          c.gold_leased + int(claimed.new_gold))
    return compute_progress(counts, state.below, state.mine_below + int(claimed.new_regular), state.n_gold,
                            meta.max_per_worker, meta.gold_every, state.study_status == OPEN,
                            reserved_below=state.reserved_below)


def progress(db: Session, study: Study, worker_pk: int, now: datetime, exact: bool = False) -> Progress:
    """Compute a worker's Progress in a study (attention checks count as units; see `compute_progress`).

    With `exact=True`, whether anything is left is decided by looking for a free slot the worker could
    really take (as `next` would).
    """
    conn = db.connection()
    counts = worker_counts(conn, study.id, worker_pk)
    quota = (study.labels_per_item if study.kind == LABELING else study.judgments_per_pair) or 1
    available = open_units_estimate(conn, study, quota, worker_pk)
    nothing_left = None
    taken = counts.regular_answered + counts.regular_leased
    capped = study.max_per_worker is not None and taken >= study.max_per_worker
    if exact and study.status == OPEN and not capped:
        nothing_left = not has_free_unit(conn, study.kind, study.id, quota, worker_pk, now)
    n_gold = 0
    if study.gold_every:
        n_gold = db.scalar(select(func.count()).select_from(GoldItem.__table__).where(GoldItem.__table__.c.study_id == study.id)) or 0
    return compute_progress(counts, available, 0, int(n_gold), study.max_per_worker, study.gold_every,
                            study.status == OPEN, nothing_left)


def worker_status(db: Session, study_id: int, worker_pk: int, worker_external_id: str, now: datetime) -> dict[str, Any]:
    """Return the `/me` JSON: progress, whether the worker is finished, and the completion code once they are.

    Finished = answered at least one unit and nothing is left for them (no lease held, no free unit,
    or their cap reached), or the study is closed after they answered something.
    """
    study = db.scalars(select(Study).where(Study.id == study_id)).first()
    if study is None:
        raise ApiError(404, "unknown study", "study")
    prog = progress(db, study, worker_pk, now, exact=True)
    finished = prog.answered > 0 and prog.holding == 0 and prog.nothing_left
    return {
        "study": study.name,
        "worker_id": worker_external_id,
        "answered": prog.answered,
        "target": prog.answered if finished else prog.target,
        "finished": finished,
        "completion_code": completion_code(study, worker_external_id) if finished else None,
    }


def study_progress(db: Session, study_name: str, now: datetime) -> dict[str, Any]:
    """Return the Progress JSON: slots by state, complete units, workers, answers per worker, position bias.

    From the study's kept counters (`tallies.counted`: a few rows, the leases, one row per worker), never
    from every slot or answer."""
    study = get_study(db, study_name)
    t = tallies.counted(db.connection(), study.id, now)
    out: dict[str, Any] = {"study": study.name, "kind": study.kind, "status": study.status, **t.to_json(),
                           "position": None, "gold": gold_totals(t.gold_answered, t.gold_correct)}
    if study.kind == PAIRWISE:
        total = t.answered
        out["position"] = {"left_wins": t.left_wins, "right_wins": total - t.left_wins,
                           "left_rate": (t.left_wins / total) if total else None}
    return out


def gold_totals(answered: int, correct: int) -> dict[str, Any]:
    """The Progress JSON's `gold`: attention checks answered, answered right, and the share right."""
    return {"answered": answered, "correct": correct, "accuracy": (correct / answered) if answered else None}


def worker_progress(db: Session, study_name: str, token: str, now: datetime | None = None) -> dict[str, Any]:
    """Return the `/me` JSON for the worker behind `token` in study `study_name`.

    ApiError: 401 unknown token, 404 unknown study, 403 a token of another study.
    """
    who = resolve_token(db, token)
    study = get_study(db, study_name)
    if study.id != who.study_id:
        raise ApiError(403, f"this worker token belongs to study {who.study!r}, not {study_name!r}", "study")
    if now is None:
        now = _app_now()
    return worker_status(db, study.id, who.worker_pk, who.worker_id, now)


def _app_now() -> datetime:
    from flask import has_app_context

    if has_app_context():
        from annotation_server.state import get_state

        return get_state().clock()
    return utcnow()
