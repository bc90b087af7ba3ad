"""What the MTurk and Prolific entry pages share: the core's unit page with our own links, signed links,
worker sessions bound to a platform assignment, and the one header a hand-in page needs.

Reuse of the core's worker pages: `render_unit_page` renders `worker/unit.html` (and its `worker.js`)
unchanged, passing `done_url` and `start_url`: the template uses them instead of its own
`worker.done` / `worker.consent` links when they are given.

Headers: the core's `security.apply_security_headers` lets `/study/`, `/mturk/` and `/prolific/` pages be
framed by the configured frame ancestors (MTurk), so nothing is needed for framing. Forms may post only
to 'self', except to the one extra origin a response names in `g.extra_form_action`
(`allow_form_action`): the MTurk hand-in page posts to `<turkSubmitTo>/mturk/externalSubmit`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from flask import current_app, g, render_template, request, session
from itsdangerous import BadSignature, URLSafeSerializer
from sqlmodel import Session

from annotation_server import progress, sessions
from annotation_server.errors import ApiError
from annotation_server.security import EXTRA_FORM_ACTION

API_PREFIX = "/api/v1"
#: Flask-session key: {"key": "<platform>:<study>:<assignment or session id>", "token": worker token}.
CROWD_TOKEN_KEY = "subjlab_crowd"
_SALT = "subjlab-crowd-link"


# ------------------------------------------------------------------------------------ signed links
def sign(payload: Mapping[str, Any]) -> str:
    """Return `payload` signed with the app's secret key (URL-safe; not encrypted, so no secrets in it)."""
    return URLSafeSerializer(current_app.secret_key, salt=_SALT).dumps(dict(payload))


def unsign(value: str | None) -> dict[str, Any]:
    """Return the payload of a signed link; ApiError 400 when it is missing or tampered with."""
    if not value:
        raise ApiError(400, "this link is incomplete; go back to the study page", "k")
    try:
        data = URLSafeSerializer(current_app.secret_key, salt=_SALT).loads(value)
    except BadSignature:
        raise ApiError(400, "this link is not valid (it was changed, or the server's secret key changed)", "k") from None
    if not isinstance(data, dict):
        raise ApiError(400, "this link is not valid", "k")
    return data


# ------------------------------------------------------------------------------------ sessions
def now() -> datetime:
    """The app's clock."""
    from annotation_server.app import get_state

    return get_state().clock()


def remembered_token(db: Session, key: str, study: str, worker_id: str) -> str | None:
    """Return the worker token this browser keeps for `key` if it is still valid for this worker and study."""
    held = session.get(CROWD_TOKEN_KEY)
    if not isinstance(held, dict) or held.get("key") != key or not isinstance(held.get("token"), str):
        return None
    try:
        who = sessions.resolve_token(db, held["token"])
    except ApiError:
        return None
    return held["token"] if who.study == study and who.worker_id == worker_id else None


def remember_token(key: str, token: str) -> None:
    """Keep the worker token in the browser session (a convenience; the page itself carries it)."""
    session[CROWD_TOKEN_KEY] = {"key": key, "token": token}


def worker_token(db: Session, key: str, study: str, worker_id: str, entry: str, entry_ref: str) -> str:
    """Return a worker token for (study, worker): the remembered one, else a new core session that records
    how it came in (`entry`: "mturk" or "prolific"; `entry_ref`: "HIT/ASSIGNMENT" or "STUDY/SESSION")."""
    token = remembered_token(db, key, study, worker_id)
    if token is None:
        token = sessions.start_session(db, study, worker_id, now(), entry=entry, entry_ref=entry_ref)
    return token


def worker_pk(db: Session, token: str) -> int:
    """Return the worker's row id behind a token."""
    return sessions.resolve_token(db, token).worker_pk


def worker_status(db: Session, study_id: int, pk: int, worker_id: str) -> dict[str, Any]:
    """Return the core's `/me` figures for a worker: answered, target, finished, completion_code."""
    return progress.worker_status(db, study_id, pk, worker_id, now())


# ------------------------------------------------------------------------------------ pages
def render_unit_page(info: Mapping[str, Any], worker_id: str, token: str, done_url: str, start_url: str) -> str:
    """Render the core's unit page for a worker, with its "done" link going to `done_url` and its
    "start again" link to `start_url`."""
    return render_template("worker/unit.html", study=info, worker_id=worker_id, token=token,
                           api_base=request.script_root + API_PREFIX, done_url=done_url, start_url=start_url)


def message_page(title: str, message: str, status: int = 200, info: Mapping[str, Any] | None = None):
    """A small page with a title and a message (escaped), as a (body, status) reply."""
    return render_template("mturk/message.html", title=title, message=message, study=info), status


# ------------------------------------------------------------------------------------ headers
def allow_form_action(origin: str) -> None:
    """Let this response's forms post to `origin` ("https://host[:port]") too: the MTurk submit host."""
    setattr(g, EXTRA_FORM_ACTION, origin)
