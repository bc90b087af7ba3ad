"""The MTurk entry page `/mturk/<study>`, shown by MTurk in its frame (the HIT's ExternalQuestion).

MTurk adds `assignmentId`, `hitId`, `workerId` and `turkSubmitTo` to the URL.

- Preview (`assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE`): the study's instructions (the core's consent
  page in preview mode) and a sample unit with disabled buttons; no session, no answers.
- Accepted: the assignment is bound to the worker (one `mturk_assignment` row; a different worker on the
  same assignment id gets 409), a core worker session is started for `workerId`
  (`sessions.start_session`), and the core's unit page runs as usual. Accepting the HIT after the
  preview is the worker's consent. A worker coming back with the same assignment resumes (their leases
  and answers belong to the worker, not to a browser).
- When the unit page has nothing left for the worker (the study's `max_per_worker` units per
  assignment), it opens `/mturk/<study>/submit?k=<signed>`, which posts a form to
  `<turkSubmitTo>/mturk/externalSubmit` with `assignmentId` and a completion summary (units answered in
  this assignment, completion code). A worker with no answers in this assignment (someone who already
  did the study under another HIT) is asked to return the HIT instead.

`turkSubmitTo` is accepted only for MTurk's own hosts, `https://www.mturk.com` and
`https://workersandbox.mturk.com`; the config key `MTURK_SUBMIT_HOSTS` (or `SUBJLAB_MTURK_SUBMIT_HOSTS`,
comma-separated origins) replaces that allowlist, e.g. for a local test endpoint.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, current_app, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from annotation_server import studies
from annotation_server import validation as v
from annotation_server.db import session_scope
from annotation_server.errors import ApiError
from annotation_server.security import no_store
from annotation_server.models import ENTRY_MTURK, LABELING, Item, StudyTask, Worker
from annotation_server.mturk import web
from annotation_server.mturk.models import MTurkAssignment

bp = Blueprint("mturk", __name__, template_folder="templates", static_folder="static", static_url_path="/_static")
bp.after_request(no_store)  # the unit page carries a worker token, the hand-in page a completion code

PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"
DEFAULT_SUBMIT_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")
SUBMIT_HOSTS_ENV = "SUBJLAB_MTURK_SUBMIT_HOSTS"
SUBMIT_PATH = "/mturk/externalSubmit"


def submit_hosts() -> tuple[str, ...]:
    """The allowed `turkSubmitTo` origins: config `MTURK_SUBMIT_HOSTS`, else $SUBJLAB_MTURK_SUBMIT_HOSTS, else MTurk's."""
    configured = current_app.config.get("MTURK_SUBMIT_HOSTS") or os.environ.get(SUBMIT_HOSTS_ENV)
    if not configured:
        return DEFAULT_SUBMIT_HOSTS
    items = configured.split(",") if isinstance(configured, str) else list(configured)
    return tuple(_origin(str(h)) or str(h) for h in items if str(h).strip())


def _origin(url: str) -> str | None:
    """Return "scheme://host[:port]" (lower case) of a URL with no path beyond "/", else None."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.path not in ("", "/") \
            or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def checked_submit_origin(turk_submit_to: str | None) -> str:
    """Return the origin of `turkSubmitTo` if it is an allowed MTurk host; ApiError 400 otherwise."""
    origin = _origin(turk_submit_to or "")
    if origin is None or origin not in submit_hosts():
        raise ApiError(400, "turkSubmitTo must be one of MTurk's hosts (" + ", ".join(submit_hosts()) + ")", "turkSubmitTo")
    return origin


def _sample_unit(db, study_name: str) -> dict[str, Any] | None:
    """A unit to show in the preview: the first item (labeling) or the first two tasks (pairwise)."""
    study = studies.get_study(db, study_name)
    if study.kind == LABELING:
        item = db.scalars(select(Item).where(Item.study_id == study.id).order_by(Item.id).limit(1)).first()
        if item is None:
            return None
        spec = study.task_spec or {}
        return {"kind": "labeling", "text": item.text, "labels": list(spec.get("labels", [])),
                "label_descriptions": dict(spec.get("label_descriptions", {}))}
    tasks = db.scalars(select(StudyTask).where(StudyTask.study_id == study.id).order_by(StudyTask.id).limit(2)).all()
    if len(tasks) < 2:
        return None
    cards = []
    for t in tasks:
        spec = t.spec or {}
        cards.append({"title": spec.get("title") or t.key, "description": spec.get("description", ""),
                      "labels": list(spec.get("labels", [])), "label_descriptions": dict(spec.get("label_descriptions", {})),
                      "examples": list(t.examples or [])})
    return {"kind": "pairwise", "left": cards[0], "right": cards[1]}


def _preview(study: str):
    with session_scope() as db:
        info = studies.public_info(db, study)
        sample = _sample_unit(db, study)
    return render_template("mturk/preview.html", study=info, sample=sample, preview=True, error=None,
                           worker_id="", resume=False)


@bp.get("/<study>")
def entry(study: str):
    """Preview, or start/resume the accepted assignment and show the core's unit page."""
    assignment_id = request.args.get("assignmentId", "")
    if not assignment_id or assignment_id == PREVIEW_ASSIGNMENT:
        return _preview(study)
    assignment_id = v.identifier(assignment_id, "assignmentId")
    hit_id = v.identifier(request.args.get("hitId"), "hitId")
    worker_id = v.identifier(request.args.get("workerId"), "workerId")
    origin = checked_submit_origin(request.args.get("turkSubmitTo"))
    key = f"mturk:{study}:{assignment_id}"
    with session_scope(write=True) as db:
        info = studies.public_info(db, study)
        row = _bind(db, info, assignment_id, hit_id, worker_id, origin)
        try:
            token = web.worker_token(db, key, study, worker_id, ENTRY_MTURK, f"{hit_id}/{assignment_id}")
        except ApiError as exc:
            if exc.status != 409:
                raise
            token = None
        if token is not None and row.answered_before < 0:
            status = web.worker_status(db, row.study_id, web.worker_pk(db, token), worker_id)
            row.answered_before = status["answered"]
            db.add(row)
    submit = url_for("mturk.submit", study=study, k=web.sign({"s": study, "a": assignment_id}))
    if token is None:  # the study closed: hand in what was done (or say so)
        return _submit_page(study, assignment_id)
    web.remember_token(key, token)
    start = url_for("mturk.entry", study=study) + "?" + urlencode(
        {"assignmentId": assignment_id, "hitId": hit_id, "workerId": worker_id, "turkSubmitTo": origin})
    return web.render_unit_page(info, worker_id, token, done_url=submit, start_url=start)


def _bind(db, info: dict[str, Any], assignment_id: str, hit_id: str, worker_id: str, origin: str) -> MTurkAssignment:
    """Return the assignment's row, creating it (answered_before = -1 until measured); 409 for another worker."""
    study = studies.get_study(db, info["name"])
    row = db.scalars(select(MTurkAssignment).where(MTurkAssignment.assignment_id == assignment_id)).first()
    if row is None:
        row = MTurkAssignment(study_id=study.id, assignment_id=assignment_id, hit_id=hit_id, worker_id=worker_id,
                              turk_submit_to=origin, answered_before=-1, accepted_at=web.now(), updated_at=web.now())
        try:
            with db.begin_nested():
                db.add(row)
        except IntegrityError:
            row = db.scalars(select(MTurkAssignment).where(MTurkAssignment.assignment_id == assignment_id)).one()
    if row.worker_id != worker_id or row.study_id != study.id:
        raise ApiError(409, "this assignment belongs to another worker or study", "assignmentId")
    if row.turk_submit_to is None:  # recorded by `review` before the worker opened the page
        row.turk_submit_to = origin
        db.add(row)
    return row


@bp.get("/<study>/submit")
def submit(study: str):
    """The last page: post the assignment back to MTurk (or ask to return a HIT with no answers)."""
    data = web.unsign(request.args.get("k"))
    if data.get("s") != study or not isinstance(data.get("a"), str):
        raise ApiError(400, "this link belongs to another study", "k")
    return _submit_page(study, data["a"])


def _submit_page(study: str, assignment_id: str):
    with session_scope(write=True) as db:
        info = studies.public_info(db, study)
        row = db.scalars(select(MTurkAssignment).where(MTurkAssignment.assignment_id == assignment_id)).first()
        s = studies.get_study(db, study)
        if row is None or row.study_id != s.id:
            raise ApiError(404, "unknown assignment for this study", "assignmentId")
        pk = db.scalars(select(Worker.id).where(Worker.external_id == row.worker_id)).first()
        status = web.worker_status(db, s.id, pk, row.worker_id) if pk is not None else {}
        # answered_before < 0: the assignment was bound but never started (the study had closed)
        units = max(0, status.get("answered", 0) - row.answered_before) if row.answered_before >= 0 else 0
        if units:
            row.submitted_units = units
            row.submitted_at = row.submitted_at or web.now()
            row.updated_at = web.now()
            db.add(row)
        origin = row.turk_submit_to
    if not units:
        return web.message_page(
            "Nothing to submit",
            "You have no answers in this assignment: you may have taken part in this study before, or there is "
            "no work left for you. Please return this HIT; you will not be penalised for returning it.",
            info=info)
    web.allow_form_action(origin)
    return render_template("mturk/submit.html", study=info, action=origin + SUBMIT_PATH, assignment_id=assignment_id,
                           units=units, completion_code=status.get("completion_code") or "",
                           finished=bool(status.get("finished")))
