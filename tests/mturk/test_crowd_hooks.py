"""The core hooks the crowd pages rely on, and the crowd CLI's help and options:

- `security.apply_security_headers`: `/mturk/` and `/prolific/` pages may be framed like `/study/` ones;
  one extra form-action origin per response through `g.extra_form_action` (and nothing but an origin);
- `worker/unit.html` takes the platform's `done_url` / `start_url`;
- `subjlab mturk --help` explains Prolific; `subjlab mturk prolific --url`; `subjlab mturk review` with
  exclusion thresholds and the `flagged` rule name (against the loopback MTurk stand-in).
"""

from __future__ import annotations

import html
import json
import re
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner
from flask import Blueprint, g
from sqlalchemy import select

from annotation_server.app import get_state
from annotation_server.db import session_scope
from annotation_server.mturk.models import ProlificStudy
from subjlab.cli import cli

SUBMIT_HOST = "http://127.0.0.1:9"
MTURK_FRAME = "frame-ancestors 'self' https://*.mturk.com"


def _form_action(csp: str) -> str:
    return next(part.strip() for part in csp.split(";") if part.strip().startswith("form-action"))


@pytest.fixture
def hook_app(make_app):
    """An app with two extra routes that set `g.extra_form_action` (a valid origin, and an injection try)."""
    app = make_app(MTURK_SUBMIT_HOSTS=SUBMIT_HOST)
    probe = Blueprint("probe", __name__)

    @probe.get("/probe/origin")
    def origin():
        g.extra_form_action = "https://workersandbox.mturk.com"
        return "ok"

    @probe.get("/probe/injection")
    def injection():
        g.extra_form_action = "https://evil.example.org; script-src *"
        return "ok"

    app.register_blueprint(probe)
    return app


def test_one_extra_form_action_origin_per_response_and_only_an_origin(hook_app, caplog):
    client = hook_app.test_client()
    assert _form_action(client.get("/probe/origin").headers["Content-Security-Policy"]) == \
        "form-action 'self' https://workersandbox.mturk.com"
    assert _form_action(client.get("/api/v1/health").headers["Content-Security-Policy"]) == "form-action 'self'"
    csp = client.get("/probe/injection").headers["Content-Security-Policy"]
    assert _form_action(csp) == "form-action 'self'" and "evil" not in csp and "script-src *" not in csp
    assert "g.extra_form_action must be one origin" in caplog.text
    # a page that is not a worker page is never framed
    page = client.get("/probe/origin")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"] and page.headers["X-Frame-Options"] == "DENY"


def test_mturk_and_prolific_pages_are_frameable_worker_pages(hook_app, make_spam_study):
    make_spam_study(hook_app)
    client = hook_app.test_client()
    mturk = client.get("/mturk/spam?" + urlencode({"assignmentId": "3ASSIGNMENT000000000000000001", "hitId": "3HIT1",
                                                    "workerId": "AWORKER0000001", "turkSubmitTo": SUBMIT_HOST}))
    prolific_error = client.get("/prolific/spam")  # 400: the Prolific parameters are missing
    for r in (mturk, prolific_error):
        assert MTURK_FRAME in r.headers["Content-Security-Policy"] and "X-Frame-Options" not in r.headers
        assert _form_action(r.headers["Content-Security-Policy"]) == "form-action 'self'"
    assert prolific_error.status_code == 400
    page = mturk.get_data(as_text=True)
    done = html.unescape(re.search(r'data-done-url="([^"]+)"', page).group(1))
    start = html.unescape(re.search(r'data-start-url="([^"]+)"', page).group(1))
    assert done.startswith("/mturk/spam/submit?k=")
    assert start.startswith("/mturk/spam?") and "assignmentId=3ASSIGNMENT000000000000000001" in start


def test_mturk_help_explains_prolific_and_the_analysis_without_flagged_workers():
    text = " ".join(CliRunner().invoke(cli, ["mturk", "--help"]).output.split())
    assert "Prolific lives here too" in text and "subjlab mturk prolific --study S --url https://HOST" in text
    assert "https://HOST/prolific/S?PROLIFIC_PID=" in text
    assert "subjlab agreement --study S --exclude-flagged" in text
    review_help = " ".join(CliRunner().invoke(cli, ["mturk", "review", "--help"]).output.split())
    for option in ("--min-gold", "--min-seconds", "--max-failed-attention", "--min-agreement"):
        assert option in review_help
    assert "flagged (the number of exclusion rules the worker breaks" in review_help


def test_prolific_setup_prints_the_exact_study_url(app, spam_study):
    db_url = get_state(app).settings.database_url
    complete = "https://app.prolific.com/submissions/complete?cc=C1A2B3C4"
    res = CliRunner().invoke(cli, ["mturk", "prolific", "--study", "spam", "--db", db_url, "--url",
                                   "https://study.example.org/", "--completion-url", complete])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == [
        "Prolific study URL: https://study.example.org/prolific/spam"
        "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}",
        f"finished participants go to {complete}"]
    with session_scope(get_state(app).engine) as db:
        assert db.scalars(select(ProlificStudy.completion_url)).one() == complete
    bad = CliRunner().invoke(cli, ["mturk", "prolific", "--study", "spam", "--db", db_url, "--url", "http://plain.org",
                                   "--completion-url", complete])
    assert bad.exit_code == 2 and "must be the server's public https base URL" in bad.stderr


def test_review_thresholds_decide_the_flags_and_the_flagged_rule(app, client, spam_study, work_through, mturk_standin,
                                                                  aws_test_credentials, publish_one, stubbed_mturk,
                                                                  mturk_entry):
    db_url = get_state(app).settings.database_url
    hit_id = publish_one(app, stubbed_mturk())  # a sandbox HIT; the CLI then reviews it on the stand-in
    token = mturk_entry(client, "spam", hit_id, "3ASSIGNMENTQUICK00000000000000", "AQUICKWORKER001")
    work_through(client, spam_study, "AQUICKWORKER001", correct=True, token=token)  # answers in ms: too fast
    mturk_standin.replies["ListAssignmentsForHIT"] = lambda body: (200, {"NumResults": 1, "Assignments": [{
        "AssignmentId": "3ASSIGNMENTQUICK00000000000000", "WorkerId": "AQUICKWORKER001", "HITId": hit_id,
        "AssignmentStatus": "Submitted", "AcceptTime": 1893455100, "SubmitTime": 1893455400}]})
    common = ["mturk", "review", "--study", "spam", "--db", db_url, "--endpoint-url", mturk_standin.url, "--dry-run",
              "--format", "json", "--approve-if", "gold>=0.8", "--reject-if", "flagged>0", "--feedback", "Too fast."]
    strict = CliRunner().invoke(cli, common)
    assert strict.exit_code == 0, strict.output
    row = json.loads(strict.stdout)["assignments"][0]
    assert (row["flags"], row["decision"]) == (["too_fast"], "reject")
    assert [s["status"] for s in json.loads(strict.stdout)["sessions"]] == ["confirmed"]
    lenient = CliRunner().invoke(cli, common + ["--min-seconds", "0"])
    assert lenient.exit_code == 0, lenient.output
    row = json.loads(lenient.stdout)["assignments"][0]
    assert (row["flags"], row["decision"], row["gold_accuracy"]) == ([], "approve", 1.0)
    assert mturk_standin.calls("ApproveAssignment") == [] and mturk_standin.calls("RejectAssignment") == []  # dry run
