"""Prolific: entry with PROLIFIC_PID / STUDY_ID / SESSION_ID, and the redirect to the completion URL."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from annotation_server.app import get_state
from annotation_server.db import session_scope
from annotation_server.mturk.models import ProlificSession
from annotation_server.mturk.prolific import configure

COMPLETE = "https://app.prolific.com/submissions/complete?cc=C1A2B3C4"
PID = "5f1e2d3c4b5a69788796a5b4"


def entry(study: str = "spam", pid: str = PID, session: str = "60aa11bb22cc33dd44ee55ff") -> str:
    return f"/prolific/{study}?" + urlencode({"PROLIFIC_PID": pid, "STUDY_ID": "60ffeeddccbbaa0099887766", "SESSION_ID": session})


def token_and_done(page: str) -> tuple[str, str]:
    token = re.search(r'<meta name="subjlab-worker-token" content="([^"]+)">', page).group(1)
    return token, html.unescape(re.search(r'data-done-url="([^"]+)"', page).group(1))


@pytest.fixture
def configured(app, spam_study):
    with session_scope(get_state(app).engine) as db:
        configure(db, "spam", COMPLETE)
    return spam_study


def test_a_finished_participant_is_redirected_to_the_completion_url(app, client, configured, work_through):
    token, done = token_and_done(client.get(entry()).get_data(as_text=True))
    assert done.startswith("/prolific/spam/done?k=")
    r = client.get(done)
    assert r.status_code == 200 and "Not finished yet" in r.get_data(as_text=True)  # nothing answered yet
    answered = work_through(client, configured, PID, token=token)
    assert len(answered) == 3
    r = client.get(done)
    assert r.status_code == 303 and r.headers["Location"] == COMPLETE
    with session_scope(get_state(app).engine) as db:
        row = db.scalars(select(ProlificSession)).one()
    assert (row.prolific_pid, row.prolific_study_id, row.answered_before) == (PID, "60ffeeddccbbaa0099887766", 0)
    assert row.completed_at is not None
    export = client.get("/api/v1/studies/spam/export?what=labels", headers={"Authorization": "Bearer test-admin-token"})
    assert sum(1 for line in export.get_data(as_text=True).splitlines() if f'"worker": "{PID}"' in line) == 2


def test_a_returning_participant_resumes_and_a_session_cannot_change_hands(client, configured):
    token, _ = token_and_done(client.get(entry()).get_data(as_text=True))
    held = client.get("/api/v1/studies/spam/next", headers={"Authorization": f"Bearer {token}"}).json["assignment"]
    token2, _ = token_and_done(client.get(entry()).get_data(as_text=True))
    assert client.get("/api/v1/studies/spam/next", headers={"Authorization": f"Bearer {token2}"}).json["assignment"] == held
    r = client.get(entry(pid="5f0000000000000000000000"))
    assert r.status_code == 409 and "another participant" in r.get_data(as_text=True)


def test_entry_needs_the_prolific_parameters_and_a_configured_study(client, spam_study):
    r = client.get("/prolific/spam?PROLIFIC_PID=" + PID)
    assert r.status_code == 400 and "STUDY_ID" in r.get_data(as_text=True)
    r = client.get(entry())
    assert r.status_code == 409 and "not set up for Prolific" in r.get_data(as_text=True)
    assert client.get(entry(study="nope")).status_code == 404
    assert client.get(entry(pid="x' OR 1=1 --")).status_code == 400


def test_only_https_completion_urls_are_accepted(app, spam_study):
    with session_scope(get_state(app).engine) as db:
        for bad in ("http://app.prolific.com/submissions/complete?cc=X", "javascript:alert(1)", "/relative"):
            with pytest.raises(ValueError, match="https"):
                configure(db, "spam", bad)


def test_prolific_pages_carrying_a_worker_token_are_never_stored_by_caches(client, configured):
    page = client.get(entry())
    assert page.status_code == 200 and 'name="subjlab-worker-token"' in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    _, done = token_and_done(page.get_data(as_text=True))
    assert client.get(done).headers["Cache-Control"] == "no-store"
