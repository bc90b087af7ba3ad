"""Bad input gets a JSON 4xx with a message and changes nothing in the database; never a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from annotation_server.app import get_state
from annotation_server.db import session_scope
from annotation_server.models import TABLES

SQL = "x'; DROP TABLE study; --"


def row_counts(app) -> dict[str, int]:
    """Rows in every table of the core schema."""
    with session_scope(get_state(app).engine) as db:
        return {t.__tablename__: db.scalar(select(func.count()).select_from(t)) for t in TABLES}


@pytest.fixture
def ready(db_app, api_client):
    """A pairwise and a labeling study with one worker each holding an assignment."""
    api = api_client(db_app)
    api.create_study(name="pw", kind="pairwise", judgments_per_pair=2, examples_per_task=1)
    api.add_items("pw", tasks=["sms_spam", "humor"])
    api.create_study(name="lb", kind="labeling", task="sms_spam", labels_per_item=2)
    api.add_items("lb", examples=[{"id": "i1", "text": "hello"}])
    pw_token, lb_token = api.session("pw", "w1"), api.session("lb", "w1")
    pw_a, lb_a = api.next("pw", pw_token).json, api.next("lb", lb_token).json
    return api, {"pw": (pw_token, pw_a), "lb": (lb_token, lb_a)}


def _assert_error(reply, status: int, text: str | None = None):
    assert reply.status == status, reply.text
    err = reply.json["error"]
    assert err["status"] == status and err["message"] and "Traceback" not in reply.text
    if text:
        assert text in err["message"], err["message"]


def test_malformed_json_and_wrong_types_are_400_and_change_nothing(ready, db_app):
    api, units = ready
    token, a = units["lb"]
    before = row_counts(db_app)
    cases = [
        ("POST", "/studies", api.admin_token, None, "{not json", "malformed JSON"),
        ("POST", "/studies", api.admin_token, None, "", "empty body"),
        ("POST", "/studies", api.admin_token, None, b"\xff\xfe{}", "UTF-8"),
        ("POST", "/studies", api.admin_token, None, '{"name": NaN, "kind": "pairwise"}', "NaN"),
        ("POST", "/studies", api.admin_token, ["name", "kind"], None, "JSON object"),
        ("POST", "/studies", api.admin_token, {"name": 5, "kind": "pairwise"}, None, "must be a string"),
        ("POST", "/studies", api.admin_token, {"name": "ok", "kind": "pairwise", "judgments_per_pair": "4"}, None, "positive integer"),
        ("POST", "/studies", api.admin_token, {"name": "ok", "kind": "pairwise", "judgments_per_pair": True}, None, "positive integer"),
        ("POST", "/studies", api.admin_token, {"name": "ok", "kind": "survey"}, None, "kind"),
        ("POST", "/studies", api.admin_token, {"name": "ok", "kind": "pairwise", "colour": "red"}, None, "unknown field"),
        ("POST", "/studies/lb/items", api.admin_token, {"examples": "i1"}, None, "JSON array"),
        ("POST", "/studies/lb/items", api.admin_token, {"examples": [{"id": "i9", "text": 3}]}, None, "must be a string"),
        ("POST", "/studies/lb/items", api.admin_token, {"examples": [{"id": "i9"}]}, None, "must be a string"),
        ("POST", "/studies/pw/items", api.admin_token, {"tasks": [{"name": "half"}]}, None, "required"),
        ("POST", "/studies/lb/sessions", None, {"worker_id": ["w"]}, None, "must be a string"),
        ("POST", "/studies/lb/sessions", None, {}, None, "worker_id is required"),
        ("POST", f"/assignments/{a['assignment']}", token, {"label": 1}, None, "non-empty string"),
        ("POST", f"/assignments/{a['assignment']}", token, {"label": "ham", "winner": "x"}, None, "exactly one"),
        ("POST", f"/assignments/{a['assignment']}", token, {"winner": "sms_spam"}, None, "labeling assignment"),
        ("POST", f"/assignments/{a['assignment']}", token, "ham", None, "JSON object"),
    ]
    for method, path, tok, body, raw, text in cases:
        r = api.request(method, path, tok, json_body=body, data=raw)
        _assert_error(r, 400, text)
    assert row_counts(db_app) == before


def test_unknown_study_assignment_and_label_get_404_and_422(ready, db_app):
    api, units = ready
    token, a = units["lb"]
    pw_token, pa = units["pw"]
    before = row_counts(db_app)
    _assert_error(api.request("GET", "/studies/nope"), 404, "unknown study")
    _assert_error(api.request("POST", "/studies/nope/sessions", json_body={"worker_id": "w"}), 404)
    _assert_error(api.add_items("nope", examples=[{"id": "a", "text": "b"}]), 404)
    _assert_error(api.admin_get("/studies/nope/export?what=labels"), 404)
    _assert_error(api.request("GET", "/studies/nope/next", token), 404)
    _assert_error(api.answer(999999, token, label="ham"), 404, "unknown assignment")
    _assert_error(api.answer("abc", token, label="ham"), 404)
    _assert_error(api.answer(a["assignment"], token, label="maybe"), 422, "unknown label")
    _assert_error(api.answer(pa["assignment"], pw_token, winner="imdb"), 422, "winner must be")
    _assert_error(api.create_study(name="t", kind="labeling", task="no_such_task"), 422, "unknown task")
    _assert_error(api.create_study(name="t", kind="labeling", task="/etc/passwd.toml"), 422)  # no server file reads
    _assert_error(api.request("GET", "/no/such/route"), 404)
    _assert_error(api.request("DELETE", "/studies"), 405)
    assert row_counts(db_app) == before


def test_worker_token_checks(ready, db_app):
    api, units = ready
    token, a = units["lb"]
    before = row_counts(db_app)
    _assert_error(api.request("GET", "/studies/lb/next"), 401)
    _assert_error(api.request("GET", "/studies/lb/next", "forged-token"), 401)
    _assert_error(api.request("GET", "/studies/pw/next", token), 403, "belongs to study 'lb'")
    _assert_error(api.answer(a["assignment"], None, label="ham"), 401)
    assert row_counts(db_app) == before


def test_admin_endpoints_need_the_admin_token(ready, db_app):
    api, units = ready
    worker_token, _ = units["lb"]
    before = row_counts(db_app)
    for method, path in [("GET", "/studies"), ("POST", "/studies"), ("POST", "/studies/lb/items"),
                         ("POST", "/studies/lb/close"), ("GET", "/studies/lb/progress"), ("GET", "/studies/pw/ranking"),
                         ("GET", "/studies/lb/agreement"), ("GET", "/studies/lb/workers"),
                         ("GET", "/studies/lb/export?what=labels")]:
        body = {"name": "x", "kind": "pairwise"} if method == "POST" else None
        _assert_error(api.request(method, path, None, json_body=body), 401, "admin token required")
        _assert_error(api.request(method, path, "wrong-token", json_body=body), 403, "wrong admin token")
        _assert_error(api.request(method, path, worker_token, json_body=body), 403)
    assert row_counts(db_app) == before


def test_admin_is_disabled_when_no_admin_token_is_configured(make_app, api_client):
    api = api_client(make_app(ADMIN_TOKEN=None))
    r = api.create_study(name="x", kind="pairwise")
    _assert_error(r, 403, "not configured")


def test_oversized_bodies_are_413(make_app, api_client):
    app = make_app(MAX_CONTENT_LENGTH=10_000)
    api = api_client(app)
    before = row_counts(app)
    big = {"examples": [{"id": f"i{i}", "text": "x" * 100} for i in range(200)]}
    api.create_study(name="lb", kind="labeling", task="sms_spam")
    before = row_counts(app)
    _assert_error(api.add_items("lb", **big), 413, "too large")
    _assert_error(api.request("POST", "/studies/lb/sessions", json_body={"worker_id": "w" * 70_000}), 413)
    assert row_counts(app) == before


def test_sql_metacharacters_in_every_field_are_refused_or_stored_as_plain_data(ready, db_app):
    api, units = ready
    token, a = units["lb"]
    pw_token, pa = units["pw"]
    before = row_counts(db_app)
    _assert_error(api.create_study(name=SQL, kind="pairwise"), 400, "not a valid study name")
    _assert_error(api.create_study(name="ok", kind=SQL), 400)
    _assert_error(api.create_study(name="ok", kind="pairwise", scheduler=SQL), 400)
    _assert_error(api.create_study(name="ok", kind="labeling", task=SQL), 422)
    _assert_error(api.create_study(name="ok", kind="pairwise", title=5), 400)
    _assert_error(api.add_items("lb", examples=[{"id": SQL, "text": "t"}]), 400, "not a valid identifier")
    _assert_error(api.add_items("lb", gold=[{"id": "g", "text": "t", "answer": SQL}]), 422)
    _assert_error(api.add_items("pw", tasks=[SQL]), 422)
    _assert_error(api.add_items("pw", gold=[{"left": SQL, "right": "humor", "answer": "humor"}]), 422)
    _assert_error(api.request("POST", "/studies/lb/sessions", json_body={"worker_id": SQL}), 400)
    _assert_error(api.request("POST", f"/studies/{SQL}/sessions", json_body={"worker_id": "w"}), 404)
    _assert_error(api.request("GET", f"/studies/{SQL}/next", token), 404)
    _assert_error(api.answer(a["assignment"], token, label=SQL), 422)
    _assert_error(api.answer(pa["assignment"], pw_token, winner=SQL), 422)
    _assert_error(api.answer(f"{a['assignment']} OR 1=1", token, label="ham"), 404)
    _assert_error(api.request("GET", "/studies/lb/next", SQL), 401)
    _assert_error(api.request("GET", "/studies", SQL), 403)
    _assert_error(api.admin_get(f"/studies/lb/export?what={SQL}"), 400)
    assert row_counts(db_app) == before
    # In free text (where quotes are ordinary characters) the same string is stored and returned verbatim.
    api.create_study(name="txt", kind="labeling", task="sms_spam", labels_per_item=1)
    assert api.add_items("txt", examples=[{"id": "q1", "text": SQL}]).status == 201
    t = api.session("txt", "w9")
    assert api.next("txt", t).json["item"]["text"] == SQL
    assert row_counts(db_app)["study"] == before["study"] + 1


def test_html_and_script_in_texts_come_back_as_data(api):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    api.create_study(name="xss", kind="labeling", task="sms_spam", labels_per_item=1)
    api.add_items("xss", examples=[{"id": "e1", "text": evil}])
    token = api.session("xss", "w1")
    r = api.next("xss", token)
    assert r.headers["Content-Type"] == "application/json" and r.json["item"]["text"] == evil
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]


def test_no_input_in_this_module_produced_a_server_error(ready, caplog):
    api, _ = ready
    for path in ["/studies/%00", "/studies/" + "a" * 5000, "/assignments/-1", "/studies/lb/me"]:
        r = api.request("GET" if "assign" not in path else "POST", path, "x", json_body={"label": "ham"} if "assign" in path else None)
        assert 400 <= r.status < 500, (path, r.status, r.text)
    assert "unhandled error" not in caplog.text
