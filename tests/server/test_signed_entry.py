"""Signed entry links (`annotation_server.entry`, `subjlab study link`): a study that requires them accepts
sessions only under the worker id its link names, through the API and the consent page alike."""

from __future__ import annotations

import csv
import re
from urllib.parse import parse_qs, urlsplit

from click.testing import CliRunner
from sqlalchemy import select

from annotation_server.app import get_state
from annotation_server.db import session_scope
from annotation_server.entry import entry_link, sign_worker
from annotation_server.models import Study, WorkerSession
from subjlab.cli import cli


def _cli(*args: str, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


def _secret(app, name: str) -> str:
    with session_scope(get_state(app).engine) as db:
        return db.scalar(select(Study.signing_secret).where(Study.name == name))


def _signed_study(api, name="signed"):
    assert api.create_study(name=name, kind="labeling", task="sms_spam", labels_per_item=2,
                            require_signed_entry=True).status == 201
    assert api.add_items(name, examples=[{"id": f"i{i}", "text": f"message {i}"} for i in range(3)]).status == 201


def test_study_link_prints_signed_urls_and_the_bulk_form_writes_a_csv(tmp_path):
    db = f"sqlite:///{tmp_path / 'links.db'}"
    _cli("db", "upgrade", "--db", db)
    _cli("study", "create", "s1", "--kind", "labeling", "--task", "sms_spam", "--require-signed-entry", "--db", db)
    url = _cli("study", "link", "s1", "--worker", "W17", "--url", "https://study.example.org/", "--db", db).output.strip()
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "study.example.org", "/study/s1")
    assert query["worker"] == ["W17"] and re.fullmatch(r"[0-9a-f]{32}", query["sig"][0])
    ids = tmp_path / "ids.txt"
    ids.write_text("# our panel\nA1\n\nB2\nC3\n")
    out = tmp_path / "links.csv"
    _cli("study", "link", "s1", "--workers-file", str(ids), "--url", "https://study.example.org", "-o", str(out), "--db", db)
    rows = list(csv.DictReader(out.open()))
    assert [r["worker_id"] for r in rows] == ["A1", "B2", "C3"]
    assert all(parse_qs(urlsplit(r["url"]).query)["worker"] == [r["worker_id"]] for r in rows)
    assert len({parse_qs(urlsplit(r["url"]).query)["sig"][0] for r in rows}) == 3  # one signature per worker
    ids.write_text("A1\nbad id!\n")
    failed = _cli("study", "link", "s1", "--workers-file", str(ids), "--url", "https://x.org", "--db", db, ok=False)
    assert f"{ids}, line 2" in failed.output and "bad id!" in failed.output


def test_a_study_requiring_signed_entry_refuses_sessions_without_a_valid_signature_and_writes_nothing(
        db_app, api_client, db_rows):
    api = api_client(db_app)
    _signed_study(api)
    _signed_study(api, "other")
    secret, other_secret = _secret(db_app, "signed"), _secret(db_app, "other")
    before = db_rows(db_app)
    for body in ({"worker_id": "w1"},
                 {"worker_id": "w1", "signature": "0" * 32},
                 {"worker_id": "w1", "signature": sign_worker(secret, "w2")},  # another worker's link
                 {"worker_id": "w1", "signature": sign_worker(other_secret, "w1")},  # another study's link
                 {"worker_id": "w1", "signature": sign_worker(secret, "w1")[:-1]}):
        r = api.request("POST", "/studies/signed/sessions", json_body=body)
        assert r.status == 403 and r.json["error"]["field"] == "signature", (body, r.text)
    assert db_rows(db_app) == before
    r = api.request("POST", "/studies/signed/sessions", json_body={"worker_id": "w1", "signature": sign_worker(secret, "w1")})
    assert r.status == 201 and api.next("signed", r.json["token"]).status == 200
    with session_scope(get_state(db_app).engine) as db:
        row = db.scalars(select(WorkerSession)).one()
    assert (row.entry, row.check_status) == ("signed", "confirmed")


def test_the_consent_page_of_a_signed_link_starts_the_session_of_that_worker_only(app, api_client):
    api = api_client(app)
    _signed_study(api)
    link = entry_link("http://localhost", "signed", _secret(app, "signed"), "W9")
    client = app.test_client()
    page = client.get(link.url.removeprefix("http://localhost")).get_data(as_text=True)
    assert 'name="signature"' in page and 'id="signed-worker">W9<' in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    sig = re.search(r'name="signature" value="([^"]+)"', page).group(1)
    # the same signature under another worker id, and no signature at all: refused
    for data in ({"worker_id": "W10", "signature": sig}, {"worker_id": "W9"}):
        r = client.post("/study/signed/start", data={"csrf_token": csrf, "consent": "yes", **data})
        assert r.status_code == 403 and "personal link" in r.get_data(as_text=True)
    r = client.post("/study/signed/start", data={"csrf_token": csrf, "consent": "yes", "worker_id": "W9", "signature": sig})
    assert r.status_code == 303 and r.headers["Location"].endswith("/study/signed/work")
    with session_scope(get_state(app).engine) as db:
        assert [(s.entry, s.check_status) for s in db.scalars(select(WorkerSession))] == [("signed", "confirmed")]


def test_an_open_study_takes_plain_sessions_and_records_how_each_came_in(app, api_client):
    api = api_client(app)
    assert api.create_study(name="open", kind="labeling", task="sms_spam").status == 201
    api.session("open", "api-worker")
    signed = sign_worker(_secret(app, "open"), "linked")
    assert api.request("POST", "/studies/open/sessions", json_body={"worker_id": "linked", "signature": signed}).status == 201
    with session_scope(get_state(app).engine) as db:
        entries = sorted((s.entry, s.check_status) for s in db.scalars(select(WorkerSession)))
    assert entries == [("api", None), ("signed", "confirmed")]
