"""Sessions checked against the platform's own records (`annotation_server.mturk.identity`): MTurk through
botocore's Stubber (real request shapes), Prolific through a loopback stand-in of its API. Answers of
sessions the platform does not confirm are left out of exports, rankings and agreement by default, and
listed with the reason."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

from click.testing import CliRunner

from annotation_server.app import get_state
from annotation_server.db import session_scope
from annotation_server.mturk import review as rv
from subjlab.cli import cli

HIT = "3HIT00000000000000000000000000"
A_REAL, A_OTHER, A_FAKE = "3ASSIGNMENTREAL000000000000000", "3ASSIGNMENTOTHER00000000000000", "3ASSIGNMENTFAKE000000000000000"
W_REAL, W_OTHER = "AREALWORKER0001", "AOTHERWORKER002"
LIST_PARAMS = {"HITId": HIT, "MaxResults": 100, "AssignmentStatuses": ["Submitted", "Approved", "Rejected"]}


def _listed(aid: str, worker: str) -> dict:
    return {"AssignmentId": aid, "WorkerId": worker, "HITId": HIT, "AssignmentStatus": "Submitted",
            "AcceptTime": datetime(2026, 1, 5, 11, 50, tzinfo=timezone.utc),
            "SubmitTime": datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)}


def _answer(client, study, token: str, n: int | None = None) -> list[str]:
    """Answer up to `n` units (all when None) truly; return the handles answered."""
    headers = {"Authorization": f"Bearer {token}"}
    done = []
    while n is None or len(done) < n:
        r = client.get(f"/api/v1/studies/{study.name}/next", headers=headers)
        if r.status_code == 204:
            break
        label = study.answer_for(r.json["item"]["text"])
        assert client.post(f"/api/v1/assignments/{r.json['assignment']}", json={"label": label},
                           headers=headers).status_code == 201
        done.append(r.json["assignment"])
    return done


def test_review_confirms_the_sessions_mturk_knows_and_leaves_the_others_out_by_default(
        db_app, api_client, make_spam_study, stubbed_mturk, publish_one, mturk_entry):
    """On SQLite and PostgreSQL."""
    app = db_app
    study = make_spam_study(app, max_per_worker=None, gold_every=None)
    s = stubbed_mturk()
    publish_one(app, s)
    client = app.test_client()
    # an impostor borrows the real worker's id with an invented assignment; another claims a real
    # assignment of someone else; a third skips MTurk and uses the API; then the real worker works
    impostor = _answer(app.test_client(), study, mturk_entry(app.test_client(), "spam", HIT, A_FAKE, W_REAL), 2)
    thief = _answer(app.test_client(), study, mturk_entry(app.test_client(), "spam", HIT, A_OTHER, "AVICTIM00000003"), 1)
    api = api_client(app)
    outsider = _answer(app.test_client(), study, api.session("spam", "AOUTSIDER000004"), 1)
    real = _answer(client, study, mturk_entry(client, "spam", HIT, A_REAL, W_REAL))
    everything = [json.loads(x) for x in api.admin_get("/studies/spam/export?what=labels").text.splitlines()]
    assert len(everything) == len(impostor + thief + outsider + real) == 2 + 1 + 1 + 4

    s.stub.add_response("list_assignments_for_hit", {"Assignments": [_listed(A_REAL, W_REAL), _listed(A_OTHER, W_OTHER)],
                                                     "NumResults": 2}, LIST_PARAMS)
    with session_scope(get_state(app).engine) as db:
        result = rv.review(db, s.mturk, "spam", dry_run=True)
    verdicts = {c.entry_ref: (c.status, c.reason) for c in result.sessions}
    assert verdicts[f"{HIT}/{A_REAL}"][0] == "confirmed"
    assert verdicts[f"{HIT}/{A_FAKE}"] == ("unconfirmed", f"MTurk lists no submitted assignment {A_FAKE} on HIT {HIT} "
                                                          "(not submitted yet, returned, or never accepted)")
    assert verdicts[f"{HIT}/{A_OTHER}"] == ("unconfirmed", f"MTurk says assignment {A_OTHER} was taken by another "
                                                           "worker, not AVICTIM00000003")
    assert verdicts[None][0] == "unconfirmed" and "entered through api" in verdicts[None][1]

    kept = [json.loads(x) for x in api.admin_get("/studies/spam/export?what=labels").text.splitlines()]
    assert sorted(x["assignment"] for x in kept) == sorted(real)  # only what MTurk vouches for
    assert api.admin_get("/studies/spam/agreement").json["n_labels"] == len(real)
    all_again = api.admin_get("/studies/spam/export?what=labels&include_unconfirmed=1").text.splitlines()
    assert len(all_again) == len(everything)
    listed = api.admin_get("/studies/spam/sessions").json["unconfirmed"]
    assert sorted((x["entry_ref"] or "-", x["answers"]) for x in listed) == sorted(
        [(f"{HIT}/{A_FAKE}", 2), (f"{HIT}/{A_OTHER}", 1), ("-", 1)])
    from annotation_server.quality import load_study_data

    records, report = load_study_data(get_state(app).settings.database_url, "spam", exclude_flagged=False)
    assert len(records) == len(real) and (report.unconfirmed_records, report.unconfirmed_sessions) == (4, 3)
    assert report.lines()[0].startswith("left out 4 labels of 3 session(s) the crowd platform did not confirm")
    page = _admin_page(app, "spam")
    assert 'id="unconfirmed"' in page and A_FAKE in page and "was taken by another worker" in page


def _admin_page(app, study: str) -> str:
    import re

    client = app.test_client()
    login = client.get("/admin/").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
    client.post("/admin/login", data={"csrf_token": csrf, "token": "test-admin-token"})
    return client.get(f"/admin/studies/{study}").get_data(as_text=True)


def test_prolific_review_checks_each_session_against_its_submission(app, spam_study, tmp_path, monkeypatch):
    from annotation_server.mturk.prolific import configure

    with session_scope(get_state(app).engine, write=True) as db:
        configure(db, "spam", "https://app.prolific.com/submissions/complete?cc=C0DE")
    submissions = {"SUB1": {"id": "SUB1", "participant_id": "PID1", "study_id": "PSTUDY", "status": "AWAITING REVIEW"},
                   "SUB3": {"id": "SUB3", "participant_id": "PIDX", "study_id": "PSTUDY", "status": "ACTIVE"}}
    seen: list[tuple[str, str]] = []

    class Prolific(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            seen.append((self.path, self.headers.get("Authorization", "")))
            found = submissions.get(self.path.strip("/").split("/")[-1])
            body = json.dumps(found or {"error": {"title": "Not found"}}).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Prolific)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for pid, session in (("PID1", "SUB1"), ("PID2", "SUB2"), ("PID3", "SUB3")):
            query = urlencode({"PROLIFIC_PID": pid, "STUDY_ID": "PSTUDY", "SESSION_ID": session})
            assert app.test_client().get(f"/prolific/spam?{query}").status_code == 200
        monkeypatch.setenv("PROLIFIC_API_TOKEN", "prolific-test-token")
        db_url = get_state(app).settings.database_url
        res = CliRunner().invoke(cli, ["mturk", "prolific-review", "--study", "spam", "--db", db_url, "--format", "json",
                                       "--api-url", f"http://127.0.0.1:{server.server_address[1]}"])
    finally:
        server.shutdown()
        server.server_close()
    assert res.exit_code == 0, res.output
    verdicts = {s["entry_ref"]: (s["status"], s["reason"]) for s in json.loads(res.stdout)["sessions"]}
    assert verdicts == {
        "PSTUDY/SUB1": ("confirmed", "Prolific submission SUB1 (AWAITING REVIEW)"),
        "PSTUDY/SUB2": ("unconfirmed", "Prolific has no submission SUB2"),
        "PSTUDY/SUB3": ("unconfirmed", "Prolific says submission SUB3 belongs to another participant, not PID3")}
    assert sorted(seen) == [(f"/api/v1/submissions/{s}/", "Token prolific-test-token") for s in ("SUB1", "SUB2", "SUB3")]
    monkeypatch.delenv("PROLIFIC_API_TOKEN")
    missing = CliRunner().invoke(cli, ["mturk", "prolific-review", "--study", "spam", "--db", db_url])
    assert missing.exit_code != 0 and "PROLIFIC_API_TOKEN" in missing.output
