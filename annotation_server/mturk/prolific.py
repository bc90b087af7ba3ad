"""Prolific: the entry page `/prolific/<study>` and the redirect to the study's completion URL.

Set the study URL on Prolific to
`https://PUBLIC-HOST/prolific/<study>?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}`
and tell subjlab where finished participants go (`configure`, or
`subjlab mturk prolific --study NAME --completion-url https://app.prolific.com/submissions/complete?cc=CODE`).

- Entry: the three parameters are required; the session (SESSION_ID) is bound to the participant
  (PROLIFIC_PID; another participant on the same session id gets 409), a core worker session is started
  for PROLIFIC_PID and the core's unit page runs. Opening the study URL again resumes.
- Done: once the core has nothing left for the participant, `/prolific/<study>/done?k=<signed>` redirects
  (303) to the completion URL; before that it shows how far they are and a link back.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from annotation_server import studies
from annotation_server import validation as v
from annotation_server.clock import utcnow
from annotation_server.db import session_scope
from annotation_server.errors import ApiError
from annotation_server.security import no_store
from annotation_server.models import ENTRY_PROLIFIC, Worker
from annotation_server.mturk import web
from annotation_server.mturk.models import ProlificSession, ProlificStudy

bp = Blueprint("prolific", __name__, template_folder="templates")
bp.after_request(no_store)  # the unit page carries a worker token


def configure(db: Session, study_name: str, completion_url: str, now: datetime | None = None) -> ProlificStudy:
    """Set (or change) where a study's finished Prolific participants are sent; https URLs only."""
    study = studies.get_study(db, study_name)
    parts = urlsplit(completion_url.strip())
    if parts.scheme != "https" or not parts.netloc or len(completion_url) > 500:
        raise ValueError(f"completion URL {completion_url[:80]!r} must be an https URL "
                         "(e.g. https://app.prolific.com/submissions/complete?cc=CODE)")
    row = db.scalars(select(ProlificStudy).where(ProlificStudy.study_id == study.id)).first()
    if row is None:
        row = ProlificStudy(study_id=study.id, completion_url=completion_url.strip(), updated_at=now or utcnow())
    row.completion_url = completion_url.strip()
    row.updated_at = now or utcnow()
    db.add(row)
    db.flush()
    return row


#: The query Prolific fills in for each participant (its {{%...%}} placeholders).
PROLIFIC_QUERY = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


def study_url(public_url: str, study_name: str) -> str:
    """Return the URL to paste into Prolific: `<public_url>/prolific/<study>?PROLIFIC_PID={{%PROLIFIC_PID%}}&...`.

    `public_url` is the server's public https base URL; ValueError otherwise.
    """
    from urllib.parse import quote

    parts = urlsplit(public_url.strip())
    if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"--url {public_url[:80]!r} must be the server's public https base URL, like https://study.example.org")
    return f"https://{parts.netloc}{parts.path.rstrip('/')}/prolific/{quote(study_name, safe='')}?{PROLIFIC_QUERY}"


def completion_url(db: Session, study_name: str) -> str | None:
    """Return the study's configured completion URL, or None."""
    study = studies.get_study(db, study_name)
    return db.scalars(select(ProlificStudy.completion_url).where(ProlificStudy.study_id == study.id)).first()


def _bind(db: Session, study_id: int, session_id: str, pid: str, prolific_study: str) -> ProlificSession:
    row = db.scalars(select(ProlificSession).where(ProlificSession.session_id == session_id)).first()
    if row is None:
        row = ProlificSession(study_id=study_id, session_id=session_id, prolific_pid=pid,
                              prolific_study_id=prolific_study, answered_before=-1, started_at=web.now())
        try:
            with db.begin_nested():
                db.add(row)
        except IntegrityError:
            row = db.scalars(select(ProlificSession).where(ProlificSession.session_id == session_id)).one()
    if row.prolific_pid != pid or row.study_id != study_id:
        raise ApiError(409, "this Prolific session belongs to another participant or study", "SESSION_ID")
    return row


@bp.get("/<study>")
def entry(study: str):
    """Start or resume a Prolific participant's session and show the core's unit page."""
    missing = [k for k in ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID") if not request.args.get(k)]
    if missing:
        raise ApiError(400, "open this study from Prolific: the link lacks " + ", ".join(missing), missing[0])
    pid = v.identifier(request.args["PROLIFIC_PID"], "PROLIFIC_PID")
    prolific_study = v.identifier(request.args["STUDY_ID"], "STUDY_ID")
    session_id = v.identifier(request.args["SESSION_ID"], "SESSION_ID")
    key = f"prolific:{study}:{session_id}"
    with session_scope(write=True) as db:
        info = studies.public_info(db, study)
        if completion_url(db, study) is None:
            raise ApiError(409, "this study is not set up for Prolific yet (no completion URL); "
                                "please contact the researchers", "study")
        row = _bind(db, studies.get_study(db, study).id, session_id, pid, prolific_study)
        token = web.worker_token(db, key, study, pid, ENTRY_PROLIFIC, f"{prolific_study}/{session_id}")
        if row.answered_before < 0:
            row.answered_before = web.worker_status(db, row.study_id, web.worker_pk(db, token), pid)["answered"]
            db.add(row)
    web.remember_token(key, token)
    done = url_for("prolific.done", study=study, k=web.sign({"s": study, "session": session_id}))
    start = url_for("prolific.entry", study=study) + "?" + urlencode(
        {"PROLIFIC_PID": pid, "STUDY_ID": prolific_study, "SESSION_ID": session_id})
    return web.render_unit_page(info, pid, token, done_url=done, start_url=start)


@bp.get("/<study>/done")
def done(study: str):
    """Redirect a finished participant to the completion URL; otherwise show their progress."""
    data = web.unsign(request.args.get("k"))
    if data.get("s") != study or not isinstance(data.get("session"), str):
        raise ApiError(400, "this link belongs to another study", "k")
    with session_scope(write=True) as db:
        info = studies.public_info(db, study)
        s = studies.get_study(db, study)
        row = db.scalars(select(ProlificSession).where(ProlificSession.session_id == data["session"],
                                                       ProlificSession.study_id == s.id)).first()
        if row is None:
            raise ApiError(404, "unknown Prolific session for this study", "SESSION_ID")
        pk = db.scalars(select(Worker.id).where(Worker.external_id == row.prolific_pid)).first()
        status = web.worker_status(db, s.id, pk, row.prolific_pid) if pk is not None else {"answered": 0, "finished": False}
        target = completion_url(db, study)
        if status["finished"] and target:
            row.completed_at = row.completed_at or web.now()
            db.add(row)
    if status["finished"] and target:
        return redirect(target, code=303)
    back = url_for("prolific.entry", study=study) + "?" + urlencode(
        {"PROLIFIC_PID": row.prolific_pid, "STUDY_ID": row.prolific_study_id, "SESSION_ID": row.session_id})
    return render_template("mturk/not_finished.html", study=info, me=status, back=back)
