"""Bad input gets a JSON 4xx with a message and changes nothing in the database; never a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from annotation_server.state import get_state
from annotation_server.db import session_scope
from annotation_server.models import TABLES

SQL = "x'; DROP TABLE study; --"


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


def test_malformed_json_and_wrong_types_are_400_and_change_nothing(ready, db_app, db_rows):
    api, units = ready
    token, a = units["lb"]
    before = db_rows(db_app)
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
    assert db_rows(db_app) == before


def test_unknown_study_assignment_and_label_get_404_and_422(ready, db_app, db_rows):
    api, units = ready
    token, a = units["lb"]
    pw_token, pa = units["pw"]
    before = db_rows(db_app)
    _assert_error(api.request("GET", "/studies/nope"), 404, "unknown study")
    _assert_error(api.request("POST", "/studies/nope/sessions", json_body={"worker_id": "w"}), 404)
    _assert_error(api.add_items("nope", examples=[{"id": "a", "text": "b"}]), 404)
    _assert_error(api.admin_get("/studies/nope/export?what=labels"), 404)
    _assert_error(api.request("GET", "/studies/nope/next", token), 404)
    _assert_error(api.answer(999999, token, label="ham"), 409, "not leased to you")  # like any not the caller's
    _assert_error(api.answer("abc", token, label="ham"), 409, "not leased to you")
    _assert_error(api.answer(a["assignment"], token, label="maybe"), 422, "unknown label")
    _assert_error(api.answer(pa["assignment"], pw_token, winner="imdb"), 422, "winner must be")
    _assert_error(api.create_study(name="t", kind="labeling", task="no_such_task"), 422, "unknown task")
    _assert_error(api.create_study(name="t", kind="labeling", task="/etc/passwd.toml"), 422)  # no server file reads
    _assert_error(api.request("GET", "/no/such/route"), 404)
    _assert_error(api.request("DELETE", "/studies"), 405)
    assert db_rows(db_app) == before


def test_worker_token_checks(ready, db_app, db_rows):
    api, units = ready
    token, a = units["lb"]
    before = db_rows(db_app)
    _assert_error(api.request("GET", "/studies/lb/next"), 401)
    _assert_error(api.request("GET", "/studies/lb/next", "forged-token"), 401)
    _assert_error(api.request("GET", "/studies/pw/next", token), 403, "belongs to study 'lb'")
    _assert_error(api.answer(a["assignment"], None, label="ham"), 401)
    assert db_rows(db_app) == before


def test_admin_endpoints_need_the_admin_token(ready, db_app, db_rows):
    api, units = ready
    worker_token, _ = units["lb"]
    before = db_rows(db_app)
    for method, path in [("GET", "/studies"), ("POST", "/studies"), ("POST", "/studies/lb/items"),
                         ("POST", "/studies/lb/close"), ("GET", "/studies/lb/progress"), ("GET", "/studies/pw/ranking"),
                         ("GET", "/studies/lb/agreement"), ("GET", "/studies/lb/workers"),
                         ("GET", "/studies/lb/export?what=labels")]:
        body = {"name": "x", "kind": "pairwise"} if method == "POST" else None
        _assert_error(api.request(method, path, None, json_body=body), 401, "admin token required")
        _assert_error(api.request(method, path, "wrong-token", json_body=body), 403, "wrong admin token")
        _assert_error(api.request(method, path, worker_token, json_body=body), 403)
    assert db_rows(db_app) == before


def test_admin_is_disabled_when_no_admin_token_is_configured(make_app, api_client):
    api = api_client(make_app(ADMIN_TOKEN=None))
    r = api.create_study(name="x", kind="pairwise")
    _assert_error(r, 403, "not configured")


def test_oversized_bodies_are_413(make_app, api_client, db_rows):
    app = make_app(MAX_CONTENT_LENGTH=10_000)
    api = api_client(app)
    before = db_rows(app)
    big = {"examples": [{"id": f"i{i}", "text": "x" * 100} for i in range(200)]}
    api.create_study(name="lb", kind="labeling", task="sms_spam")
    before = db_rows(app)
    _assert_error(api.add_items("lb", **big), 413, "too large")
    _assert_error(api.request("POST", "/studies/lb/sessions", json_body={"worker_id": "w" * 70_000}), 413)
    assert db_rows(app) == before


def test_sql_metacharacters_in_every_field_are_refused_or_stored_as_plain_data(ready, db_app, db_rows):
    api, units = ready
    token, a = units["lb"]
    pw_token, pa = units["pw"]
    before = db_rows(db_app)
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
    _assert_error(api.answer(f"{a['assignment']} OR 1=1", token, label="ham"), 409)
    _assert_error(api.request("GET", "/studies/lb/next", SQL), 401)
    _assert_error(api.request("GET", "/studies", SQL), 403)
    _assert_error(api.admin_get(f"/studies/lb/export?what={SQL}"), 400)
    assert db_rows(db_app) == before
    # In free text (where quotes are ordinary characters) the same string is stored and returned verbatim.
    api.create_study(name="txt", kind="labeling", task="sms_spam", labels_per_item=1)
    assert api.add_items("txt", examples=[{"id": "q1", "text": SQL}]).status == 201
    t = api.session("txt", "w9")
    assert api.next("txt", t).json["item"]["text"] == SQL
    assert len(db_rows(db_app)["study"]) == len(before["study"]) + 1


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


# ----------------------------------------------------------------------------------------- never a 5xx
def _raw_json(body: str) -> str:
    """A JSON text as sent (escapes like \\ud800 and \\u0000 stay escapes until the server parses them)."""
    return body


@pytest.mark.parametrize("bad", ["\\ud800", "\\udfff", "\\u0000", "x\\ud83dy"])
def test_lone_surrogates_and_nul_in_any_string_field_are_400_and_change_nothing(ready, db_app, db_rows, bad):
    api, units = ready
    token, a = units["lb"]
    pw_token, pa = units["pw"]
    task = '{"name": "mine", "title": "T%s", "description": "d", "labels": ["a", "b"], "examples": ["e1"]}'
    cases = [
        ("POST", "/studies", api.admin_token, '{"name": "n%s", "kind": "pairwise"}'),
        ("POST", "/studies", api.admin_token, '{"name": "n1", "kind": "pairwise", "title": "t%s"}'),
        ("POST", "/studies", api.admin_token, '{"name": "n1", "kind": "pairwise", "instructions": "i%s"}'),
        ("POST", "/studies", api.admin_token, '{"name": "n1", "kind": "labeling", "task": ' + task + '}'),
        ("POST", "/studies/lb/items", api.admin_token, '{"examples": [{"id": "x1", "text": "t%s"}]}'),
        ("POST", "/studies/lb/items", api.admin_token, '{"examples": [{"id": "x1", "text": "t", "note": "n%s"}]}'),
        ("POST", "/studies/lb/items", api.admin_token, '{"examples": [{"id": "x1", "text": "t", "k%s": 1}]}'),
        ("POST", "/studies/lb/items", api.admin_token, '{"gold": [{"id": "g1", "text": "t%s", "answer": "ham"}]}'),
        ("POST", "/studies/pw/items", api.admin_token, '{"tasks": [' + task + ']}'),
        ("POST", "/studies/lb/sessions", None, '{"worker_id": "w%s"}'),
        ("POST", f"/assignments/{a['assignment']}", token, '{"label": "ham%s"}'),
        ("POST", f"/assignments/{a['assignment']}?next=1", token, '{"label": "%s"}'),
        ("POST", f"/assignments/{pa['assignment']}", pw_token, '{"winner": "sms_spam%s"}'),
    ]
    before = db_rows(db_app)
    for method, path, auth, body in cases:
        r = api.request(method, path, auth, data=_raw_json(body.replace("%s", bad)))
        _assert_error(r, 400)
        assert "NUL" in r.json["error"]["message"] or "surrogate" in r.json["error"]["message"], (body, r.text)
    assert db_rows(db_app) == before


def test_numbers_and_ids_beyond_64_bits_are_4xx_not_a_server_error(ready, db_app, db_rows):
    api, units = ready
    token, _ = units["lb"]
    huge = 2**70
    before = db_rows(db_app)
    for path in (f"/assignments/{huge}", f"/assignments/-{huge}", f"/assignments/{2**63}", "/assignments/1e400"):
        _assert_error(api.answer(path.split("/")[-1], token, label="ham"), 409, "not leased to you")
    for field in ("judgments_per_pair", "max_per_worker", "gold_every", "examples_per_task"):
        _assert_error(api.create_study(name="big", kind="pairwise", **{field: huge}), 400)
    _assert_error(api.create_study(name="big", kind="labeling", task="sms_spam", labels_per_item=-huge), 400)
    assert db_rows(db_app) == before
    # numbers where identifiers go are taken as their digits (a worker id 2**70 is the text "118...424")
    assert api.request("POST", "/studies/lb/sessions", json_body={"worker_id": huge}).status == 201
    assert api.add_items("lb", examples=[{"id": huge * 10**30, "text": "t"}]).status == 201


def test_a_malformed_task_data_file_is_422_and_no_error_reveals_a_server_path(make_app, api_client, db_rows, tmp_path):
    data = tmp_path / "private-data-dir"
    (data / "sms_spam").mkdir(parents=True)
    (data / "sms_spam" / "train.jsonl").write_text('{"id": "a", "text": "hi", "label": "ham"}\n{not json\n')
    (data / "humor").mkdir()
    (data / "humor" / "train.jsonl").write_bytes(b'{"id": "a", "text": "\xff\xfe", "label": "humor"}\n')
    app = make_app(DATA_DIR=str(data))
    api = api_client(app)
    assert api.create_study(name="pw", kind="pairwise", judgments_per_pair=2).status == 201
    before = db_rows(app)
    for task, expected in (("sms_spam", "sms_spam/train.jsonl is malformed at line 2"),
                           ("humor", "humor/train.jsonl"), ("imdb", "task 'imdb' has no example texts and no data here")):
        r = api.add_items("pw", tasks=[task, "ag_news"] if task != "imdb" else [task])
        _assert_error(r, 422, expected)
        assert str(tmp_path) not in r.text and "private-data-dir" not in r.text, r.text
    assert db_rows(app) == before


def test_data_name_in_a_task_spec_is_a_folder_name_not_a_path(ready, db_app, db_rows):
    api, _ = ready
    from subjlab.tasks import REGISTRY

    spec = dict(REGISTRY["sms_spam"].to_dict(), name="sneaky", examples=["an example"])
    before = db_rows(db_app)
    for data_name in ("../../etc", "/etc", "sms_spam/../../x", "..", "a/b", "C:\\\\x"):
        r = api.add_items("pw", tasks=[dict(spec, data_name=data_name)])
        _assert_error(r, 400, "not a path")
        assert r.json["error"]["field"] == "tasks[0].data_name"
        r = api.create_study(name="lab2", kind="labeling", task=dict(spec, data_name=data_name))
        _assert_error(r, 400, "not a path")
    assert db_rows(db_app) == before


def test_chunked_bodies_over_the_size_limit_are_413_like_content_length_ones(live_server):
    import http.client
    import json as _json
    from urllib.parse import urlsplit

    url = urlsplit(live_server.url)

    def chunked(path: str, size: int, token: str | None = None):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = _json.dumps({"worker_id": "w" * size}).encode()
        conn.putrequest("POST", path)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            for start in range(0, len(body), 8192):
                piece = body[start:start + 8192]
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        r = conn.getresponse()
        out = r.status, r.read().decode()
        conn.close()
        return out

    admin = f"Bearer {live_server.admin_token}"
    import requests

    assert requests.post(live_server.url + "/api/v1/studies", json={"name": "chunky", "kind": "pairwise"},
                         headers={"Authorization": admin}, timeout=30).status_code == 201
    status, text = chunked("/api/v1/studies/chunky/sessions", 100_000)  # worker bodies: 64 KiB at most
    assert status == 413 and "too large" in text, (status, text)
    status, text = chunked("/api/v1/studies", 5 * 1024 * 1024, live_server.admin_token)  # admin: 4 MiB
    assert status == 413 and "too large" in text, (status, text)
    status, text = chunked("/api/v1/studies/chunky/sessions", 100)  # a small chunked body is fine
    assert status == 201, text
