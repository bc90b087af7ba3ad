"""Worker sessions: a worker id in, a bearer token out; tokens back to (worker, study) identities.

Only the SHA-256 of a token is stored, so a leaked database does not leak working tokens.
The completion code a worker pastes back into the crowd platform is an HMAC of the worker id under the
study's secret: stable for the worker, unguessable for anyone else, and nothing to store.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from functools import lru_cache

from sqlalchemy import bindparam, insert, literal, select, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from annotation_server import validation as v
from annotation_server.clock import utcnow
from annotation_server.db import FastStatement
from annotation_server.errors import ApiError
from annotation_server.models import CONFIRMED, ENTRY_API, ENTRY_SIGNED, OPEN, Study, Worker, WorkerSession
from annotation_server.security import hash_token, new_token

MISSING_TOKEN = "worker token required: send 'Authorization: Bearer <token>' from POST /studies/{name}/sessions"
UNKNOWN_TOKEN = "unknown or revoked worker token"


@dataclass(frozen=True)
class WorkerIdentity:
    """Who a worker token belongs to: the session, the worker (row id and external id) and the study."""

    session_id: int
    worker_pk: int
    worker_id: str
    study_id: int
    study: str


def _insert_worker_if_new(conn: Connection, worker_id: str, now: datetime) -> int | None:
    """INSERT the worker unless one with this external id exists; return the new row id, or None."""
    W = Worker.__table__
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = (dialect_insert(W).values(external_id=worker_id, created_at=now)
            .on_conflict_do_nothing(index_elements=[W.c.external_id]).returning(W.c.id))
    return conn.execute(stmt).scalar()


def worker_pk(conn: Connection, worker_id: str, now: datetime | None = None) -> int:
    """Return the row id of the worker with this external id, creating the worker if needed (one INSERT ...
    ON CONFLICT DO NOTHING, then a SELECT only if the worker existed; safe against concurrent creates)."""
    new = _insert_worker_if_new(conn, worker_id, now or utcnow())
    if new is not None:
        return int(new)
    found = conn.execute(select(Worker.__table__.c.id).where(Worker.__table__.c.external_id == worker_id)).scalar()
    if found is None:  # pragma: no cover - ON CONFLICT means the row exists
        raise RuntimeError(f"worker {worker_id!r} neither inserted nor found")
    return int(found)


def get_or_create_worker(db: Session, worker_id: str, now: datetime | None = None) -> Worker:
    """Return the Worker with this external id, creating it (safe against a concurrent create)."""
    pk = worker_pk(db.connection(), worker_id, now)
    return db.get(Worker, pk)


SIGNATURE_REQUIRED = ("this study is open only through the personal link the researchers sent you "
                      "(a signed link); open that link to take part")


def start_session(db: Session, study_name: str, worker_id: str, now: datetime | None = None, *,
                  entry: str = ENTRY_API, entry_ref: str | None = None, signature: str | None = None) -> str:
    """Open a session for `worker_id` in an open study and return its NEW bearer token (plain text).

    `entry`: how the session came in (`models.ENTRY_*`), `entry_ref`: what the platform gave (MTurk
    "HIT/ASSIGNMENT"). `signature`: the signature of a signed entry link (`entry.sign_worker`); a valid one
    makes the session "signed" and confirmed. A study with `require_signed_entry` refuses (403) sessions
    without a valid signature.

    ApiError: 400 bad worker id, 404 unknown study, 409 closed study, 403 signature missing or wrong (and
    nothing is written then). Two statements: the worker's INSERT ... ON CONFLICT DO NOTHING, and the
    session's INSERT ... SELECT from the study row, which inserts nothing when the study is closed (or unknown).
    """
    from annotation_server.entry import signature_ok

    worker_id = v.identifier(worker_id, "worker_id", max_len=128)
    if not isinstance(study_name, str) or not v.is_study_name(study_name):
        raise ApiError(404, f"unknown study {str(study_name)[:80]!r}", "study")
    now = now or utcnow()
    conn = db.connection()
    S, WS = Study.__table__, WorkerSession.__table__
    row = conn.execute(select(S.c.require_signed_entry, S.c.signing_secret).where(S.c.name == study_name)).first()
    if row is None:
        raise ApiError(404, f"unknown study {study_name[:80]!r}", "study")
    signed = signature is not None and signature_ok(row.signing_secret, worker_id, signature)
    if row.require_signed_entry and not signed:
        raise ApiError(403, SIGNATURE_REQUIRED, "signature")
    values = {"entry": entry, "entry_ref": entry_ref}
    if signed:
        values = {"entry": ENTRY_SIGNED, "entry_ref": entry_ref, "check_status": CONFIRMED,
                  "check_reason": "signed entry link", "checked_at": now}
    token = new_token()
    token_hash = hash_token(token)
    pk = worker_pk(conn, worker_id, now)
    source = select(S.c.id, literal(pk), literal(token_hash), literal(now, WS.c.created_at.type),
                    *[literal(value, WS.c[key].type) for key, value in values.items()]).where(
        S.c.name == study_name, S.c.status == OPEN)
    created = conn.execute(insert(WS).from_select(["study_id", "worker_id", "token_hash", "created_at", *values], source)
                           .returning(WS.c.id)).first()
    if created is None:
        raise ApiError(409, f"study {study_name!r} is closed", "study")
    return token


@lru_cache(maxsize=None)
def _fast_start_statement() -> FastStatement:
    """PostgreSQL: a session as ONE statement: upsert the worker (only if the study is open), then INSERT the
    session from the open study's row; returns the session id, or no row (unknown or closed study: then
    nothing was written), or a study that requires signed entry. Parameters :name, :x (worker id), :h (token
    hash), :now, :entry."""
    S, W, WS = Study.__table__, Worker.__table__, WorkerSession.__table__
    now = bindparam("now", type_=WS.c.created_at.type)
    worker_id = bindparam("x", type_=W.c.external_id.type)
    study = select(S.c.id).where(S.c.name == bindparam("name", type_=S.c.name.type), S.c.status == OPEN,
                                 S.c.require_signed_entry.is_(False)).cte("s")
    new = (pg_insert(W).from_select(["external_id", "created_at"], select(worker_id, now).where(select(study.c.id).exists()))
           .on_conflict_do_nothing(index_elements=[W.c.external_id]).returning(W.c.id).cte("nw"))
    # the statement's snapshot cannot see the row `nw` inserts: take it from RETURNING, else the existing one
    found = union_all(select(new.c.id), select(W.c.id).where(W.c.external_id == worker_id)).cte("w")
    pk = select(found.c.id).limit(1).scalar_subquery()
    source = select(study.c.id, pk, bindparam("h", type_=WS.c.token_hash.type), now,
                    bindparam("entry", type_=WS.c.entry.type))
    return FastStatement(insert(WS).from_select(["study_id", "worker_id", "token_hash", "created_at", "entry"], source)
                         .returning(WS.c.id))


def start_session_fast(conn: Connection, study_name: str, worker_id: str, now: datetime) -> str | None:
    """`start_session` in ONE statement on PostgreSQL, on a connection in autocommit mode (`db.autocommit`).

    Returns the new token, or None when the common case does not apply (another database, an unknown or
    closed study, two first sessions of one new worker racing): nothing was written, call
    `start_session`, which tells the errors apart. ApiError 400/404 for a bad worker id or study name."""
    worker_id = v.identifier(worker_id, "worker_id", max_len=128)
    if not isinstance(study_name, str) or not v.is_study_name(study_name):
        raise ApiError(404, f"unknown study {str(study_name)[:80]!r}", "study")
    if conn.dialect.name != "postgresql":
        return None
    token = new_token()
    try:
        created = _fast_start_statement().first(conn, {"name": study_name, "x": worker_id, "h": hash_token(token),
                                                       "now": now, "entry": ENTRY_API})
    except IntegrityError:  # the worker was being created by a concurrent request (its row not yet visible)
        return None
    return token if created is not None else None


def identity(conn: Connection, token_hash: str) -> WorkerIdentity | None:
    """Return the identity behind a token hash (one statement), or None if no session has it."""
    WS, W, S = WorkerSession.__table__, Worker.__table__, Study.__table__
    row = conn.execute(
        select(WS.c.id, W.c.id, W.c.external_id, S.c.id, S.c.name)
        .select_from(WS.join(W, W.c.id == WS.c.worker_id).join(S, S.c.id == WS.c.study_id))
        .where(WS.c.token_hash == token_hash)
    ).first()
    if row is None:
        return None
    return WorkerIdentity(session_id=row[0], worker_pk=row[1], worker_id=row[2], study_id=row[3], study=row[4])


def resolve_token(db: Session, token: str | None) -> WorkerIdentity:
    """Return the identity behind a worker token; ApiError 401 if it is missing or unknown."""
    if not token:
        raise ApiError(401, MISSING_TOKEN)
    found = identity(db.connection(), hash_token(token))
    if found is None:
        raise ApiError(401, UNKNOWN_TOKEN)
    return found


def completion_code(study: Study, worker_external_id: str) -> str:
    """Return the worker's completion code for a study (12 hex characters, upper case)."""
    mac = hmac.new(study.completion_secret.encode(), worker_external_id.encode(), hashlib.sha256)
    return mac.hexdigest()[:12].upper()
