"""The MTurk entry page: preview, binding an assignment to a worker, resuming, submitting back to MTurk."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

import pytest
from markupsafe import escape
from sqlalchemy import select

from annotation_server.app import get_state
from annotation_server.db import session_scope
from annotation_server.mturk.models import MTurkAssignment

SUBMIT_HOST = "http://127.0.0.1:9"  # allowed in this test's config (nothing needs to listen there)
HIT = "3HIT00000000000000000000000000"


@pytest.fixture
def mturk_app(make_app):
    return make_app(MTURK_SUBMIT_HOSTS=SUBMIT_HOST)


@pytest.fixture
def study(mturk_app, make_spam_study):
    return make_spam_study(mturk_app)


def entry_url(study: str, assignment: str, worker: str = "AWORKER0000001", submit_to: str = SUBMIT_HOST + "/") -> str:
    return f"/mturk/{study}?" + urlencode({"assignmentId": assignment, "hitId": HIT, "workerId": worker,
                                          "turkSubmitTo": submit_to})


def page_token(page: str) -> str:
    return re.search(r'<meta name="subjlab-worker-token" content="([^"]+)">', page).group(1)


def done_link(page: str) -> str:
    return html.unescape(re.search(r'data-done-url="([^"]+)"', page).group(1))


def test_preview_shows_instructions_and_a_sample_unit_but_takes_no_answers(mturk_app, study):
    client = mturk_app.test_client()
    r = client.get(entry_url("spam", "ASSIGNMENT_ID_NOT_AVAILABLE", worker=""))
    page = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "This is a preview" in page and "Instructions" in page
    first_item = next(iter(study.texts))  # the first item added is the sample
    assert str(escape(study.texts[first_item])) in page  # the sample unit, escaped
    assert 'id="sample-unit"' in page
    assert re.findall(r'<button type="button" disabled>(\w+)</button>', page) == ["ham", "spam"]
    assert "subjlab-worker-token" not in page and "<form" not in page  # no session, nothing to post
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://*.mturk.com" in csp and "X-Frame-Options" not in r.headers
    with session_scope(get_state(mturk_app).engine) as db:
        assert db.scalars(select(MTurkAssignment)).all() == []


def test_an_accepted_assignment_binds_the_worker_and_shows_the_core_unit_page(mturk_app, study):
    client = mturk_app.test_client()
    r = client.get(entry_url("spam", "3ASSIGNMENT000000000000000001"))
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and 'id="unit-app"' in page and "worker.js" in page
    assert 'id="worker-id">AWORKER0000001<' in page
    assert done_link(page).startswith("/mturk/spam/submit?k=")
    assert "frame-ancestors 'self' https://*.mturk.com" in r.headers["Content-Security-Policy"]
    token = page_token(page)
    me = client.get("/api/v1/studies/spam/me", headers={"Authorization": f"Bearer {token}"}).json
    assert me["worker_id"] == "AWORKER0000001" and me["answered"] == 0
    with session_scope(get_state(mturk_app).engine) as db:
        row = db.scalars(select(MTurkAssignment)).one()
    assert (row.assignment_id, row.hit_id, row.worker_id, row.turk_submit_to, row.answered_before) == (
        "3ASSIGNMENT000000000000000001", HIT, "AWORKER0000001", SUBMIT_HOST, 0)
    other = client.get(entry_url("spam", "3ASSIGNMENT000000000000000001", worker="AINTRUDER00001"))
    assert other.status_code == 409 and "another worker" in other.get_data(as_text=True)


def test_a_returning_worker_in_a_fresh_browser_gets_new_work_and_the_same_browser_resumes(mturk_app, study):
    first = mturk_app.test_client()
    token = page_token(first.get(entry_url("spam", "3ASSIGNMENT000000000000000002")).get_data(as_text=True))
    held = first.get("/api/v1/studies/spam/next", headers={"Authorization": f"Bearer {token}"}).json["assignment"]
    again = mturk_app.test_client()  # new browser: no cookie
    page = again.get(entry_url("spam", "3ASSIGNMENT000000000000000002")).get_data(as_text=True)
    token2 = page_token(page)
    assert token2 != token
    # a lease belongs to the session that received it: the new session gets another unit
    assert again.get("/api/v1/studies/spam/next", headers={"Authorization": f"Bearer {token2}"}).json["assignment"] != held
    same_browser = first.get(entry_url("spam", "3ASSIGNMENT000000000000000002")).get_data(as_text=True)
    assert page_token(same_browser) == token  # the cookie's token is reused


def test_only_mturk_hosts_may_receive_the_submission(make_app, make_spam_study):
    app = make_app()  # default allowlist
    make_spam_study(app)
    client = app.test_client()
    for bad in ("https://evil.example.org/", "http://www.mturk.com/", "https://www.mturk.com.evil.org/",
                "https://www.mturk.com/mturk/elsewhere", "javascript:alert(1)", ""):
        r = client.get(entry_url("spam", "3ASSIGNMENT000000000000000003", submit_to=bad))
        assert r.status_code == 400 and "turkSubmitTo" in r.get_data(as_text=True), bad
    for good in ("https://www.mturk.com", "https://workersandbox.mturk.com/"):
        assert client.get(entry_url("spam", "3ASSIGNMENT000000000000000003", submit_to=good)).status_code == 200
    assert client.get(entry_url("spam", "3ASSIGNMENT00000000000000000'4")).status_code == 400  # bad id


def test_the_last_page_posts_the_assignment_to_turk_submit_to(mturk_app, study, work_through):
    client = mturk_app.test_client()
    page = client.get(entry_url("spam", "3ASSIGNMENT000000000000000005")).get_data(as_text=True)
    answered = work_through(client, study, "AWORKER0000001", token=page_token(page))
    r = client.get(done_link(page))
    body = r.get_data(as_text=True)
    assert r.status_code == 200
    assert f'action="{SUBMIT_HOST}/mturk/externalSubmit"' in body and 'method="post"' in body
    assert 'name="assignmentId" value="3ASSIGNMENT000000000000000005"' in body
    assert f'name="units" value="{len(answered)}"' in body and len(answered) == 3  # 2 items + 1 attention check
    assert re.search(r'name="completion_code" value="[0-9A-F]{12}"', body)
    assert "submit.js" in body
    assert f"form-action 'self' {SUBMIT_HOST}" in r.headers["Content-Security-Policy"]
    with session_scope(get_state(mturk_app).engine) as db:
        assert db.scalars(select(MTurkAssignment)).one().submitted_units == 3
    tampered = done_link(page).replace("submit?k=", "submit?k=x")
    assert client.get(tampered).status_code == 400


def test_a_worker_with_nothing_done_in_this_assignment_is_asked_to_return_it(mturk_app, study, work_through):
    client = mturk_app.test_client()
    first = client.get(entry_url("spam", "3ASSIGNMENT000000000000000006")).get_data(as_text=True)
    work_through(client, study, "AWORKER0000001", token=page_token(first))
    second = client.get(entry_url("spam", "3ASSIGNMENT000000000000000007")).get_data(as_text=True)  # another HIT
    r = client.get(done_link(second))
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "Please return this HIT" in body and "<form" not in body


def test_the_preview_of_a_pairwise_study_shows_two_task_cards(make_app):
    from annotation_server import studies
    from subjlab.tasks import REGISTRY

    app = make_app()
    with session_scope(get_state(app).engine) as db:
        study = studies.create_study(db, "objectivity", "pairwise", judgments_per_pair=2, examples_per_task=2)
        studies.add_tasks(db, study, [REGISTRY["sms_spam"], REGISTRY["humor"]], data_dir=app.config["DATA_DIR"])
    page = app.test_client().get("/mturk/objectivity?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE").get_data(as_text=True)
    titles = re.findall(r'<h3 class="task-title">([^<]+)</h3>', page)
    assert titles == [str(escape(REGISTRY["sms_spam"].title)), str(escape(REGISTRY["humor"].title))]
    assert page.count('class="choose" disabled') == 2 and "subjlab-worker-token" not in page
    assert page.split('id="sample-unit"')[1].count("<li>") == 4  # example texts from the real data, 2 per task


def test_mturk_pages_with_a_worker_token_or_completion_code_are_never_stored_by_caches(mturk_app, study, work_through):
    client = mturk_app.test_client()
    preview = client.get(f"/mturk/spam?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId={HIT}")
    page = client.get(entry_url("spam", "3ASSIGNMENT000000000000000009"))
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert preview.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    work_through(client, study, "AWORKER0000001", token=page_token(text))
    submit = client.get(done_link(text))
    assert "completion" in submit.get_data(as_text=True).lower() and submit.headers["Cache-Control"] == "no-store"
