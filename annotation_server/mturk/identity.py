"""Whose answers are they? Checking each worker session against the crowd platform's own records.

MTurk does not sign the `workerId`, `assignmentId` and `hitId` it adds to an ExternalQuestion URL, so
anyone can open the entry page under any worker id. What can be checked is whether MTurk itself knows
the claim: `check_mturk_sessions` compares each session's (HIT, assignment, worker) with the
assignments `ListAssignmentsForHIT` returned for the study's HITs (run by `subjlab mturk review`).
Prolific: `check_prolific_sessions` looks each session's SESSION_ID up as a submission
(`GET /api/v1/submissions/{id}/`) and compares its participant and study.

A session MTurk (or Prolific) does not confirm is marked `unconfirmed` with the reason; its answers are
then left out of exports, rankings and agreement by default (`export.export_records`) and listed on the
admin page. Sessions that came in through a signed entry link are confirmed by their signature; in a
study published on a platform, a session that did not come through that platform's entry page is
unconfirmed. MTurk lists only submitted (and reviewed) assignments: a session whose assignment is still
being worked on, or was returned, is unconfirmed until a later review sees it submitted.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from sqlalchemy import func, select
from sqlmodel import Session

from annotation_server.models import (
    CONFIRMED,
    ENTRY_MTURK,
    ENTRY_PROLIFIC,
    ENTRY_SIGNED,
    UNCONFIRMED,
    Assignment,
    Study,
    Worker,
    WorkerSession,
)

#: Where Prolific's API lives (the CLI's --api-url replaces it, e.g. with a local stand-in).
PROLIFIC_API = "https://api.prolific.com"
PROLIFIC_TOKEN_ENV = "PROLIFIC_API_TOKEN"


@dataclass(frozen=True)
class MTurkRecord:
    """An assignment as MTurk reports it: its HIT, its worker, its status."""

    hit_id: str
    worker_id: str
    status: str | None


@dataclass(frozen=True)
class SessionCheck:
    """What the check said about one session: confirmed or unconfirmed, and why."""

    session_id: int
    worker_id: str
    entry: str
    entry_ref: str | None
    status: str
    reason: str
    answers: int

    def to_json(self) -> dict[str, Any]:
        """The check as JSON."""
        return {"session": self.session_id, "worker_id": self.worker_id, "entry": self.entry,
                "entry_ref": self.entry_ref, "status": self.status, "reason": self.reason, "answers": self.answers}


def _sessions(db: Session, study_id: int):
    WS, W, A = WorkerSession.__table__.c, Worker.__table__.c, Assignment.__table__.c
    answered = (select(func.count()).where(A.session_id == WS.id, A.status == "answered", A.gold_id.is_(None))
                .scalar_subquery())
    return db.execute(select(WS.id, W.external_id, WS.entry, WS.entry_ref, answered)
                      .join(Worker.__table__, W.id == WS.worker_id).where(WS.study_id == study_id)
                      .order_by(WS.id)).all()


def _record(db: Session, checks: list[SessionCheck], now: datetime) -> list[SessionCheck]:
    table = WorkerSession.__table__
    for c in checks:
        db.execute(table.update().where(table.c.id == c.session_id)
                   .values(check_status=c.status, check_reason=c.reason[:300], checked_at=now))
    db.flush()
    return checks


def _mturk_verdict(worker_id: str, entry: str, entry_ref: str | None, hits: set[str],
                   listed: Mapping[str, MTurkRecord]) -> tuple[str, str]:
    if entry != ENTRY_MTURK:
        return UNCONFIRMED, f"entered through {entry}, not through the MTurk entry page of this study's HITs"
    hit_id, _, assignment_id = (entry_ref or "").partition("/")
    if hit_id not in hits:
        return UNCONFIRMED, f"HIT {hit_id or '?'} is not one of this study's HITs"
    record = listed.get(assignment_id)
    if record is None:
        return UNCONFIRMED, (f"MTurk lists no submitted assignment {assignment_id} on HIT {hit_id} "
                             "(not submitted yet, returned, or never accepted)")
    if record.hit_id != hit_id:
        return UNCONFIRMED, f"MTurk says assignment {assignment_id} belongs to HIT {record.hit_id}, not {hit_id}"
    if record.worker_id != worker_id:
        return UNCONFIRMED, f"MTurk says assignment {assignment_id} was taken by another worker, not {worker_id}"
    return CONFIRMED, f"MTurk assignment {assignment_id} on HIT {hit_id} ({record.status or 'listed'})"


def check_mturk_sessions(db: Session, study: Study, hits: set[str], listed: Mapping[str, MTurkRecord],
                         now: datetime) -> list[SessionCheck]:
    """Check every session of `study` against MTurk's assignments `listed` (assignment id -> MTurkRecord) of
    its HITs `hits`; record and return the verdicts. Sessions from signed links keep their confirmation."""
    checks = []
    for session_id, worker_id, entry, entry_ref, answers in _sessions(db, study.id):
        if entry == ENTRY_SIGNED:
            continue
        status, reason = _mturk_verdict(worker_id, entry, entry_ref, hits, listed)
        checks.append(SessionCheck(session_id, worker_id, entry, entry_ref, status, reason, int(answers or 0)))
    return _record(db, checks, now)


def prolific_fetcher(api_url: str = PROLIFIC_API, token: str | None = None,
                     timeout: float = 30.0) -> Callable[[str], Mapping[str, Any] | None]:
    """A function submission id -> Prolific's submission JSON (None when Prolific has no such submission),
    calling `GET {api_url}/api/v1/submissions/{id}/` with `Authorization: Token <token>`.
    ValueError for a missing token or any other refusal (the message says which)."""
    if not token:
        raise ValueError(f"Prolific's API needs a token: set {PROLIFIC_TOKEN_ENV} (Prolific: Settings > API tokens)")
    base = api_url.rstrip("/")

    def fetch(submission_id: str) -> Mapping[str, Any] | None:
        request = urllib.request.Request(f"{base}/api/v1/submissions/{urllib.request.quote(submission_id, safe='')}/",
                                         headers={"Authorization": f"Token {token}", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - an https API URL
                return json.loads(reply.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise ValueError(f"Prolific refused GET /api/v1/submissions/{submission_id}/: HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise ValueError(f"cannot reach Prolific's API at {base}: {exc.reason}") from None

    return fetch


def _prolific_verdict(worker_id: str, entry: str, entry_ref: str | None,
                      fetch: Callable[[str], Mapping[str, Any] | None]) -> tuple[str, str]:
    if entry != ENTRY_PROLIFIC:
        return UNCONFIRMED, f"entered through {entry}, not through the Prolific entry page"
    prolific_study, _, submission_id = (entry_ref or "").partition("/")
    found = fetch(submission_id)
    if not found:
        return UNCONFIRMED, f"Prolific has no submission {submission_id}"
    participant = found.get("participant_id") or found.get("participant")
    if participant != worker_id:
        return UNCONFIRMED, f"Prolific says submission {submission_id} belongs to another participant, not {worker_id}"
    if (found.get("study_id") or found.get("study")) != prolific_study:
        return UNCONFIRMED, f"Prolific says submission {submission_id} is not in Prolific study {prolific_study}"
    return CONFIRMED, f"Prolific submission {submission_id} ({found.get('status') or 'found'})"


def check_prolific_sessions(db: Session, study: Study, fetch: Callable[[str], Mapping[str, Any] | None],
                            now: datetime) -> list[SessionCheck]:
    """Check every session of `study` against Prolific's submissions (`fetch`, see `prolific_fetcher`);
    record and return the verdicts. Sessions from signed links keep their confirmation."""
    checks = []
    for session_id, worker_id, entry, entry_ref, answers in _sessions(db, study.id):
        if entry == ENTRY_SIGNED:
            continue
        status, reason = _prolific_verdict(worker_id, entry, entry_ref, fetch)
        checks.append(SessionCheck(session_id, worker_id, entry, entry_ref, status, reason, int(answers or 0)))
    return _record(db, checks, now)

