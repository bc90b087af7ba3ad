"""The JSON API (`/api/v1`): thin views that parse, authenticate and call the domain modules.

Routes and shapes are listed in CONTRACT.md and served as OpenAPI at `/api/v1/openapi.json`.
Admin routes need the admin token (`security.require_admin`); worker routes need a worker token from
`POST /studies/{name}/sessions`. Worker requests may carry at most MAX_WORKER_BODY bytes.

The worker hot path (`next`, answers) uses one pooled connection per request in autocommit mode (each
statement its own transaction, see `db.autocommit`) and the app's cache of immutable study metadata.
On PostgreSQL `next` is usually one statement (the worker's state and the claim of a slot,
`scheduling.serve_statement`) and so is an answer. An answer may ask for the next assignment in the same
reply (`POST /assignments/{id}?next=1`): one HTTP round trip per unit instead of two, and on PostgreSQL
one statement (`one_trip`); SQLite runs the same steps as separate statements.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from annotation_server import answers, export, one_trip, progress, reports, scheduling, sessions, studies, views
from annotation_server import validation as v
from annotation_server.cache import SessionRef, StudyMeta
from annotation_server.db import autocommit, session_scope
from annotation_server.errors import ApiError
from annotation_server.openapi import openapi_document
from annotation_server.schema import current_revision
from annotation_server.security import bearer_token, bound_chunked_body, hash_token, require_admin

bp = Blueprint("api", __name__)

#: Worker-facing endpoints (small bodies only).
_WORKER_ENDPOINTS = {"api.start_session", "api.next_assignment", "api.answer", "api.me"}


def _state():
    from annotation_server.app import get_state

    return get_state()


@bp.before_request
def _limit_worker_bodies() -> None:
    if request.endpoint in _WORKER_ENDPOINTS:
        request.max_content_length = current_app.config["MAX_WORKER_BODY"]
    bound_chunked_body()


def json_body() -> Any:
    """Return the parsed JSON body; ApiError 400 when it is missing, not UTF-8 or not valid JSON."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "request body must be JSON (got an empty body)", "body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "request body must be UTF-8 encoded JSON", "body") from None

    def _no_constants(name: str):
        raise ValueError(f"{name} is not valid JSON")

    try:
        body = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", "body") from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"malformed JSON: {str(exc)[:100]}", "body") from None
    v.storable_strings(body)
    return body


def _worker(db):
    return sessions.resolve_token(db, bearer_token())


def _created(payload: Any) -> tuple[Response, int]:
    return jsonify(payload), 201


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi_document())


@bp.get("/health")
def health() -> Response:
    """Liveness and schema revision."""
    state = _state()
    return jsonify({"status": "ok", "database": state.engine.url.get_backend_name(), "revision": current_revision(state.engine)})


@bp.get("/studies")
def list_studies() -> Response:
    require_admin()
    with session_scope() as db:
        return jsonify({"studies": studies.list_studies(db)})


@bp.post("/studies")
def create_study():
    require_admin()
    body = json_body()
    with session_scope(write=True) as db:
        study = studies.create_study_from_json(db, body, now=_state().clock())
        return _created(studies.summary(db, study))


@bp.get("/studies/<name>")
def study_info(name: str) -> Response:
    with session_scope() as db:
        return jsonify(studies.public_info(db, name))


@bp.post("/studies/<name>/items")
def add_items(name: str):
    require_admin()
    body = json_body()
    state = _state()
    with session_scope(write=True) as db:
        return _created(studies.add_units_from_json(db, name, body, data_dir=current_app.config.get("DATA_DIR"), now=state.clock()))


@bp.post("/studies/<name>/close")
def close_study(name: str) -> Response:
    require_admin()
    with session_scope(write=True) as db:
        return jsonify(studies.summary(db, studies.close_study(db, name, now=_state().clock())))


@bp.post("/studies/<name>/sessions")
def start_session(name: str):
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object like {\"worker_id\": \"...\"}", "body")
    unknown = sorted(set(body) - {"worker_id", "signature"})
    if unknown:
        raise ApiError(400, f"unknown field(s): {unknown[:5]}; allowed: ['signature', 'worker_id']", str(unknown[0])[:100])
    if "worker_id" not in body:
        raise ApiError(400, "worker_id is required", "worker_id")
    signature = body.get("signature")
    if signature is not None and not isinstance(signature, str):
        raise ApiError(400, "signature must be a string (the sig of a signed entry link)", "signature")
    state = _state()
    now = state.clock()
    token = None
    if signature is None and state.hot_engine.url.get_backend_name() == "postgresql":  # one statement, usually
        with autocommit(state.hot_engine) as conn:
            token = sessions.start_session_fast(conn, name, body["worker_id"], now)
    if token is None:
        with session_scope(write=True) as db:
            token = sessions.start_session(db, name, body["worker_id"], now=now, signature=signature)
    return _created({"token": token, "worker_id": body["worker_id"], "study": name})


def _token_hash() -> str:
    token = bearer_token()
    if not token:
        raise ApiError(401, sessions.MISSING_TOKEN)
    return hash_token(token)


def _study_meta(conn, name: str, token_hash: str) -> StudyMeta:
    """The cached metadata of study `name`; 401 for an unknown token, then 404 for an unknown study."""
    meta = _state().cache.study_by_name(conn, name) if isinstance(name, str) and v.is_study_name(name) else None
    if meta is None:
        if sessions.identity(conn, token_hash) is None:
            raise ApiError(401, sessions.UNKNOWN_TOKEN)
        raise ApiError(404, f"unknown study {name[:80]!r}", "study")
    return meta


def _serve_next(conn, meta: StudyMeta, token_hash: str) -> dict[str, Any] | None:
    """Lease the worker's next assignment in study `meta` on `conn` (autocommit); return the Assignment
    JSON, or None when nothing is left for them. 401/403 ApiError for a bad token (see `serve_next`)."""
    state = _state()
    now = state.clock()
    result = scheduling.serve_next(conn, meta, token_hash, now, state.settings.lease_seconds)
    if result.stale:  # the database was rebuilt under this server: forget what we knew, ask again
        state.cache.check_version(meta, result.state.study_created_at)
        meta = _study_meta(conn, meta.name, token_hash)
        result = scheduling.serve_next(conn, meta, token_hash, now, state.settings.lease_seconds)
        if result.stale:
            raise ApiError(503, "study metadata changed while it was read; retry")
    return _next_json(conn, meta, token_hash, result)


def _next_json(conn, meta: StudyMeta, token_hash: str, result: scheduling.NextResult) -> dict[str, Any] | None:
    """The Assignment JSON of what `serve_next` (or `one_trip`) leased, None if nothing; remembers the session."""
    state = _state()
    st = result.state
    state.cache.remember_session(token_hash, SessionRef(st.session_id, st.worker_pk, st.worker_id, st.study_id))
    if result.claimed is None:
        return None
    return views.assignment_json(conn, state.cache, meta, result.claimed,
                                 progress.progress_after(st, meta, result.claimed))


@bp.get("/studies/<name>/next")
def next_assignment(name: str):
    state = _state()
    token_hash = _token_hash()
    with autocommit(state.hot_engine) as conn:
        payload = _serve_next(conn, _study_meta(conn, name, token_hash), token_hash)
    if payload is None:
        return Response(status=204)
    return jsonify(payload)


def _wants_next() -> bool:
    """Whether the answer's request asks for the worker's next assignment too (`?next=1`)."""
    raw = request.args.get("next")
    if raw is None or raw in ("0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise ApiError(400, "query parameter next must be 1 (reply with the next assignment too) or 0", "next")


@bp.post("/assignments/<path:handle>")
def answer(handle: str):
    """Record an answer to the assignment named by `handle` (the opaque string `next` gave); with `?next=1`
    the reply also carries the worker's next assignment (`"next"`: the same JSON as GET /studies/{name}/next,
    or null when nothing is left), leased on the same connection right after the answer is committed.

    Only the session that received the assignment may answer it; any other handle (another session's,
    unknown, malformed) gets one and the same 409 (`answers.NOT_YOURS`)."""
    state = _state()
    token_hash = _token_hash()
    with_next = _wants_next()
    ref = state.cache.session(token_hash)
    with autocommit(state.hot_engine) as conn:
        if ref is None:
            who = sessions.identity(conn, token_hash)
            if who is None:
                raise ApiError(401, sessions.UNKNOWN_TOKEN)
            ref = SessionRef(who.session_id, who.worker_pk, who.worker_id, who.study_id)
            state.cache.remember_session(token_hash, ref)
        body = json_body()
        parsed = answers.parse_answer(body)
        meta = state.cache.study_by_id(conn, ref.study_id)
        assignment_id = meta.handles.decode(handle) if meta is not None else None
        choice = answers.fast_choice(conn, state.cache, meta, parsed) if meta is not None else False
        now = state.clock()
        if assignment_id is not None and choice is not False and with_next and one_trip.applies(conn, meta):
            reply, leased = one_trip.answer_and_next(conn, meta, ref, token_hash, assignment_id, parsed, choice, now,
                                                     state.settings.lease_seconds)
            if reply is not None:
                reply["assignment"] = handle
                reply["next"] = (_next_json(conn, meta, token_hash, leased) if leased is not None
                                 else _serve_next(conn, meta, token_hash))
                return _created(reply)
        elif assignment_id is not None and choice is not False:
            reply = answers.record_answer(conn, meta, ref, token_hash, assignment_id, parsed, choice, now)
            if reply is not None:
                reply["assignment"] = handle
                if with_next:
                    reply["next"] = _serve_next(conn, meta, token_hash)
                return _created(reply)
    with session_scope() as db:  # the long way: a repeat, an expired lease, someone else's or unknown assignment
        who = _worker(db)
    reply = answers.submit_answer(state.engine, assignment_id, who.worker_pk, who.session_id, who.study_id, body, now)
    reply["assignment"] = handle
    if with_next:
        with autocommit(state.hot_engine) as conn:
            meta = state.cache.study_by_id(conn, who.study_id)
            reply["next"] = _serve_next(conn, meta, token_hash) if meta is not None else None
    return _created(reply)


@bp.get("/studies/<name>/me")
def me(name: str) -> Response:
    state = _state()
    with session_scope() as db:
        who = _worker(db)
        study = studies.get_study(db, name)
        if study.id != who.study_id:
            raise ApiError(403, f"this worker token belongs to study {who.study!r}, not {name!r}", "study")
        return jsonify(progress.worker_status(db, study.id, who.worker_pk, who.worker_id, state.clock()))


@bp.get("/studies/<name>/progress")
def study_progress(name: str) -> Response:
    require_admin()
    with session_scope() as db:
        return jsonify(progress.study_progress(db, name, _state().clock()))


@bp.get("/studies/<name>/ranking")
def ranking(name: str) -> Response:
    require_admin()
    with session_scope() as db:
        return jsonify(reports.ranking(db, name))


@bp.get("/studies/<name>/agreement")
def agreement(name: str) -> Response:
    require_admin()
    with session_scope() as db:
        return jsonify(reports.agreement(db, name))


@bp.get("/studies/<name>/workers")
def worker_table(name: str) -> Response:
    require_admin()
    with session_scope() as db:
        return jsonify(reports.workers(db, name))


@bp.get("/studies/<name>/sessions")
def unconfirmed_sessions(name: str) -> Response:
    require_admin()
    with session_scope() as db:
        return jsonify(reports.unconfirmed_sessions(db, name))


@bp.get("/studies/<name>/export")
def export_answers(name: str) -> Response:
    require_admin()
    what = request.args.get("what", "")
    include = request.args.get("include_unconfirmed", "0")
    if include not in ("0", "1", "false", "true"):
        raise ApiError(400, "include_unconfirmed must be 1 (also the answers of unconfirmed sessions) or 0", "include_unconfirmed")
    with session_scope() as db:
        body = export.export_jsonl(db, name, what, include_unconfirmed=include in ("1", "true"))
    resp = Response(body, mimetype="application/x-ndjson")
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}-{what}.jsonl"'
    return resp
