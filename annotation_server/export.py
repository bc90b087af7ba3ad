"""Export a study's answers as records of `subjlab.records` (DESIGN.md shapes), and as JSON Lines.

Judgments: `{"left", "right", "winner", "study", "worker", "created_at", "assignment"}` with left/right
in the order the worker saw them (so position bias can be measured). Labels: `{"item", "worker",
"label", "created_at", "study", "assignment"}`. `assignment` is the opaque handle the worker saw
(`handles.py`). Attention-check answers are not exported here (see the
worker report). Records come in answer order (database id).

Answers from sessions a crowd platform did not confirm (`worker_session.check_status = "unconfirmed"`,
see `annotation_server/mturk/identity.py`) are left out unless `include_unconfirmed=True`; rankings and
agreement (`reports`, `quality.load_study_data`) read through here, so they leave them out too.
"""

from __future__ import annotations

import json
from typing import Iterator, Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from annotation_server.clock import iso
from annotation_server.errors import ApiError
from annotation_server.handles import HandleCodec
from annotation_server.models import (
    LABELING,
    UNCONFIRMED,
    Assignment,
    Item,
    Judgment,
    LabelRecord,
    StudyTask,
    Worker,
    WorkerSession,
)
from annotation_server.studies import get_study
from subjlab.records import Judgment as JudgmentRecord
from subjlab.records import Label

What = Literal["judgments", "labels"]


def export_records(db: Session, study_name: str, what: str,
                   include_unconfirmed: bool = False) -> list[JudgmentRecord] | list[Label]:
    """Return a study's judgments or labels as records (without those of unconfirmed sessions unless
    `include_unconfirmed`); ApiError 400 if `what` does not fit the study."""
    study = get_study(db, study_name)
    if what not in ("judgments", "labels"):
        raise ApiError(400, f"what must be 'judgments' or 'labels', got {str(what)[:40]!r}", "what")
    expected = "labels" if study.kind == LABELING else "judgments"
    if what != expected:
        raise ApiError(400, f"study {study.name!r} is a {study.kind} study: export what={expected}", "what")
    return list(_labels(db, study, include_unconfirmed) if what == "labels"
                else _judgments(db, study, include_unconfirmed))


def confirmed_only(query, answer_table, include_unconfirmed: bool = False):
    """`query` without the answers of sessions a platform did not confirm (unless they are wanted)."""
    if include_unconfirmed:
        return query
    return (query.join(Assignment, Assignment.id == answer_table.assignment_id)
            .outerjoin(WorkerSession, WorkerSession.id == Assignment.session_id)
            .where(or_(WorkerSession.check_status.is_(None), WorkerSession.check_status != UNCONFIRMED)))


def _judgments(db: Session, study, include_unconfirmed: bool = False) -> Iterator[JudgmentRecord]:
    left, right, winner = aliased(StudyTask), aliased(StudyTask), aliased(StudyTask)
    rows = db.execute(confirmed_only(
        select(Judgment.id, Judgment.assignment_id, Judgment.created_at, left.key, right.key, winner.key, Worker.external_id)
        .join(left, left.id == Judgment.left_task_id)
        .join(right, right.id == Judgment.right_task_id)
        .join(winner, winner.id == Judgment.winner_task_id)
        .join(Worker, Worker.id == Judgment.worker_id)
        .where(Judgment.study_id == study.id)
        .order_by(Judgment.id), Judgment, include_unconfirmed))
    handles = HandleCodec(study.signing_secret)
    for _, assignment, created, lkey, rkey, wkey, worker in rows:
        yield JudgmentRecord(left=lkey, right=rkey, winner=wkey, study=study.name, worker=worker,
                             created_at=iso(created), extra={"assignment": handles.encode(assignment)})


def _labels(db: Session, study, include_unconfirmed: bool = False) -> Iterator[Label]:
    rows = db.execute(confirmed_only(
        select(LabelRecord.assignment_id, LabelRecord.created_at, LabelRecord.label, Item.external_id, Worker.external_id)
        .join(Item, Item.id == LabelRecord.item_id)
        .join(Worker, Worker.id == LabelRecord.worker_id)
        .where(LabelRecord.study_id == study.id)
        .order_by(LabelRecord.id), LabelRecord, include_unconfirmed))
    handles = HandleCodec(study.signing_secret)
    for assignment, created, label, item, worker in rows:
        yield Label(item=item, worker=worker, label=label, created_at=iso(created),
                    extra={"study": study.name, "assignment": handles.encode(assignment)})


def export_jsonl(db: Session, study_name: str, what: str, include_unconfirmed: bool = False) -> str:
    """Return the export as JSON Lines text (one record a line, newline-terminated)."""
    return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n"
                   for r in export_records(db, study_name, what, include_unconfirmed))
