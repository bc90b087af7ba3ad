"""Worker pages: instructions and consent, the worker-id form, the unit page and the completion page.

The blueprint `bp` (no URL prefix) serves, for a study NAME:

- `GET  /study/NAME`        instructions, the objectivity definition (pairwise), consent + worker-id form;
  `?worker=ID&sig=SIG` (a signed entry link, `annotation_server.entry`) fixes the worker id and carries
  the signature into the session start (required by studies with `require_signed_entry`);
- `POST /study/NAME/start`  checks the CSRF token and the consent box, starts a worker session through
  `sessions.start_session` and keeps the worker token in the Flask session cookie
  (`session["subjlab_workers"][NAME]`);
- `GET  /study/NAME/work`   the unit page: a shell whose script (`static/worker.js`) asks the JSON API
  for the next assignment and posts the answers itself, sending the worker token as a Bearer token;
- `GET  /study/NAME/done`   the completion page with the completion code from `progress.worker_progress`.

Every text shown to workers goes through Jinja autoescape here and through `textContent` in the script.
MTurk's query parameters (`workerId`, `assignmentId`, `hitId`) prefill the worker-id form.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, make_response, redirect, render_template, request, session, url_for

from annotation_server import progress, security, sessions, studies
from annotation_server.app import get_state
from annotation_server.db import session_scope
from annotation_server.errors import ApiError
from annotation_server.models import ENTRY_WEB

bp = Blueprint("worker", __name__, template_folder="templates")
bp.after_request(security.no_store)  # pages carry worker tokens, signed entry links, completion codes

#: Flask-session key holding {study name: worker token} for this browser.
TOKENS_KEY = "subjlab_workers"

#: Where the core mounts the JSON API (CONTRACT.md); the unit page's script calls it.
API_PREFIX = "/api/v1"

#: Most studies a browser session keeps tokens for (the cookie must stay under ~4 KB).
MAX_STUDIES_PER_BROWSER = 20


def worker_token(study_name: str) -> str | None:
    """Return the worker token this browser holds for `study_name`, or None."""
    tokens = session.get(TOKENS_KEY) or {}
    token = tokens.get(study_name)
    return token if isinstance(token, str) and token else None


def _remember_token(study_name: str, token: str) -> None:
    tokens = dict(session.get(TOKENS_KEY) or {})
    tokens.pop(study_name, None)
    while len(tokens) >= MAX_STUDIES_PER_BROWSER:
        tokens.pop(next(iter(tokens)))
    tokens[study_name] = token
    session[TOKENS_KEY] = tokens


def _forget_token(study_name: str) -> None:
    tokens = dict(session.get(TOKENS_KEY) or {})
    if tokens.pop(study_name, None) is not None:
        session[TOKENS_KEY] = tokens


def _study_info(name: str) -> dict[str, Any]:
    with session_scope() as db:
        return studies.public_info(db, name)


def _identity(token: str) -> Any | None:
    """Return the core's WorkerIdentity for a token, or None when the token is no longer known."""
    try:
        with session_scope() as db:
            return sessions.resolve_token(db, token)
    except ApiError as exc:
        if exc.status == 401:
            return None
        raise


def _render_consent(info: dict[str, Any], *, error: str | None = None, worker_id: str = "",
                    status: int = 200):
    mturk = {k: request.values.get(k, "") for k in ("assignmentId", "hitId", "workerId")}
    signature = request.values.get("sig") or request.values.get("signature") or ""
    signed_worker = request.values.get("worker") or (request.form.get("worker_id") if signature else "") or ""
    preview = mturk["assignmentId"] == "ASSIGNMENT_ID_NOT_AVAILABLE"
    token = worker_token(info["name"])
    body = render_template(
        "worker/consent.html",
        study=info,
        error=error,
        worker_id=signed_worker or worker_id or mturk["workerId"],
        signature=signature if signed_worker else "",
        preview=preview,
        resume=token is not None and _identity(token) is not None,
    )
    return body, status


@bp.get("/study/<name>")
def consent(name: str):
    """Instructions and consent page with the worker-id form."""
    return _render_consent(_study_info(name))


@bp.post("/study/<name>/start")
def start(name: str):
    """Check CSRF and consent, start a worker session, keep its token in the cookie, go to the units."""
    security.validate_csrf()
    info = _study_info(name)
    worker_id = (request.form.get("worker_id") or "").strip()
    if request.form.get("consent") != "yes":
        return _render_consent(info, error="Please tick the consent box to take part.",
                               worker_id=worker_id, status=400)
    if not worker_id:
        return _render_consent(info, error="Please enter your worker ID.", status=400)
    signature = request.form.get("signature") or None
    try:
        with session_scope(write=True) as db:
            token = sessions.start_session(db, name, worker_id, now=get_state().clock(), entry=ENTRY_WEB,
                                           signature=signature)
    except ApiError as exc:
        if exc.status >= 500:
            raise
        return _render_consent(info, error=exc.message, worker_id=worker_id, status=exc.status)
    _remember_token(name, token)
    return redirect(url_for("worker.work", name=name), code=303)


@bp.get("/study/<name>/work")
def work(name: str):
    """The unit page shell; its script fetches assignments from the JSON API with the worker token."""
    info = _study_info(name)
    token = worker_token(name)
    identity = _identity(token) if token else None
    if identity is None or identity.study != name:
        _forget_token(name)
        return redirect(url_for("worker.consent", name=name), code=303)
    page = render_template(
        "worker/unit.html",
        study=info,
        worker_id=identity.worker_id,
        token=token,
        api_base=request.script_root + API_PREFIX,
    )
    return _private(page)


@bp.get("/study/<name>/done")
def done(name: str):
    """The completion page: the completion code once the API has nothing left for this worker."""
    info = _study_info(name)
    token = worker_token(name)
    if token is None or _identity(token) is None:
        return redirect(url_for("worker.consent", name=name), code=303)
    with session_scope() as db:
        me = progress.worker_progress(db, name, token)
    return _private(render_template("worker/done.html", study=info, me=me))


def _private(page: str) -> Response:
    """A page with the worker's token or completion code: never stored by browsers or proxies."""
    resp = make_response(page)
    resp.headers["Cache-Control"] = "no-store"
    return resp
