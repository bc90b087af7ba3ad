"""The whole MTurk worker path in headless Chromium, framed like MTurk frames it:
publish (Stubber) -> preview -> accept -> answer -> auto-submit to turkSubmitTo -> review approves (Stubber)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, urlencode

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from annotation_server.state import get_state
from annotation_server.db import session_scope
from annotation_server.mturk import review as rv
from annotation_server.mturk.models import MTurkAssignment

pytestmark = pytest.mark.browser

WORKER, ASSIGNMENT = "ABROWSERWORKER1", "3BROWSERASSIGNMENT000000000001"


class Recorder:
    """A loopback stand-in for MTurk's worker site: serves the HIT frame page and records externalSubmit posts."""

    def __init__(self) -> None:
        self.posts: list[dict[str, list[str]]] = []
        self.entry_url = ""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                page = (f'<!doctype html><title>HIT</title><iframe id="hit" name="hit" src="{recorder.entry_url}" '
                        'width="1000" height="800"></iframe>')
                self._reply(200, page)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if self.path == "/mturk/externalSubmit":
                    recorder.posts.append(parse_qs(body))
                    self._reply(200, '<!doctype html><p id="received">HIT submitted</p>')
                else:
                    self._reply(404, "not found")

            def _reply(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()


@pytest.fixture
def served(make_app, recorder):
    """The app (turkSubmitTo and framing allowed for the recorder) served over loopback by a threaded server."""
    app = make_app(MTURK_SUBMIT_HOSTS=recorder.url, FRAME_ANCESTORS=f"'self' {recorder.url}")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def test_worker_previews_accepts_answers_and_submits_then_review_approves(served, recorder, browser, make_spam_study,
                                                                        stubbed_mturk, publish_one):
    app, base = served
    study = make_spam_study(app)  # 2 labels + 1 attention check per worker
    stubbed = stubbed_mturk()
    hit = publish_one(app, stubbed)
    params = {"hitId": hit, "turkSubmitTo": recorder.url}
    page = browser.new_page()
    try:
        # preview: instructions, a sample unit, nothing to answer
        recorder.entry_url = f"{base}/mturk/spam?" + urlencode({"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", **params})
        page.goto(recorder.url + "/hit")
        frame = page.frame(name="hit")
        frame.wait_for_selector("#sample-unit")
        assert "This is a preview" in frame.inner_text("#consent")
        assert frame.locator("#sample-unit button").count() == 2
        assert all(b.is_disabled() for b in frame.locator("#sample-unit button").all())
        assert frame.locator("#unit-app").count() == 0

        # accepted: MTurk reloads the frame with the assignment and the worker
        recorder.entry_url = f"{base}/mturk/spam?" + urlencode({"assignmentId": ASSIGNMENT, "workerId": WORKER, **params})
        page.goto(recorder.url + "/hit")
        frame = page.frame(name="hit")
        shown = []
        for _ in range(3):
            frame.wait_for_function(
                """prev => { const t = document.getElementById('item-text');
                             const b = document.querySelector('#label-buttons button');
                             return t && b && !b.disabled && t.textContent && t.textContent !== prev; }""",
                arg=shown[-1] if shown else "", timeout=20_000)
            text = frame.inner_text("#item-text")
            shown.append(text)
            frame.click(f'#label-buttons button[data-label="{study.answer_for(text)}"]')
        frame.wait_for_url(recorder.url + "/mturk/externalSubmit", timeout=20_000)
        assert frame.inner_text("#received") == "HIT submitted"
    finally:
        page.close()
    assert len(recorder.posts) == 1
    post = {k: v[0] for k, v in recorder.posts[0].items()}
    assert (post["assignmentId"], post["study"], post["units"], post["finished"]) == (ASSIGNMENT, "spam", "3", "yes")
    assert len(post["completion_code"]) == 12

    # review: MTurk lists the submitted assignment; the rule approves it and keeps the worker out from now on
    stubbed.stub.add_response("list_assignments_for_hit", {"Assignments": [{
        "AssignmentId": ASSIGNMENT, "WorkerId": WORKER, "HITId": hit, "AssignmentStatus": "Submitted",
        "SubmitTime": datetime.now(timezone.utc)}]},
        {"HITId": hit, "MaxResults": 100, "AssignmentStatuses": ["Submitted", "Approved", "Rejected"]})
    stubbed.stub.add_response("approve_assignment", {}, {"AssignmentId": ASSIGNMENT})
    stubbed.stub.add_response("associate_qualification_with_worker", {}, {
        "QualificationTypeId": "3QUALIFICATION0000000000000001", "WorkerId": WORKER, "IntegerValue": 1,
        "SendNotification": False})
    with session_scope(get_state(app).engine) as db:
        result = rv.review(db, stubbed.mturk, "spam", approve_if=rv.parse_rule("gold>=0.8 and units>=2"))
        row = db.scalars(select(MTurkAssignment)).one()
    assert (result.approved, result.qualified) == (1, 1)
    assert result.rows[0].quality.gold_accuracy == 1.0 and result.rows[0].units == 3
    assert (row.worker_id, row.submitted_units, row.mturk_status) == (WORKER, 3, "Approved")
