"""Security: hashed worker tokens, constant-time admin check, CSRF helpers, browser security headers."""

from __future__ import annotations

import hashlib

import pytest
from flask import session
from sqlalchemy import select

from annotation_server import security
from annotation_server.app import get_state
from annotation_server.db import session_scope
from annotation_server.errors import ApiError
from annotation_server.models import WorkerSession


def test_worker_tokens_are_stored_only_as_sha256(app, api):
    api.create_study(name="s", kind="labeling", task="sms_spam")
    token = api.session("s", "w1")
    with session_scope(get_state(app).engine) as db:
        stored = db.scalars(select(WorkerSession.token_hash)).all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()] and token not in stored


def test_two_sessions_of_one_worker_get_different_tokens_for_the_same_worker(api):
    api.create_study(name="s", kind="labeling", task="sms_spam", labels_per_item=1)
    api.add_items("s", examples=[{"id": "a", "text": "x"}, {"id": "b", "text": "y"}])
    t1, t2 = api.session("s", "w1"), api.session("s", "w1")
    assert t1 != t2
    a1 = api.next("s", t1).json
    a2 = api.next("s", t2).json  # same worker, another session: its own lease, on another unit
    assert a2["assignment"] != a1["assignment"] and a2["item"]["text"] != a1["item"]["text"]
    assert api.next("s", t1).json["assignment"] == a1["assignment"]


def test_admin_token_check_uses_constant_time_comparison(app, monkeypatch):
    calls = []
    real = security.hmac.compare_digest
    monkeypatch.setattr(security.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    with app.test_request_context("/api/v1/studies", headers={"Authorization": "Bearer test-admin-token"}):
        security.require_admin()
    with app.test_request_context("/api/v1/studies", headers={"Authorization": "Bearer test-admin-tokeX"}):
        with pytest.raises(ApiError) as exc:
            security.require_admin()
    assert exc.value.status == 403 and len(calls) == 2


def test_admin_login_cookie_allows_reads_but_never_writes(app):
    with app.test_request_context("/admin/login", method="POST"):
        assert security.admin_login("wrong") is False
        assert security.admin_login("test-admin-token") is True and security.is_admin()
        cookie_session = dict(session)
    with app.test_request_context("/api/v1/studies", method="GET"):
        session.update(cookie_session)
        security.require_admin()  # a GET with the admin cookie is fine (export links)
    with app.test_request_context("/api/v1/studies", method="POST"):
        session.update(cookie_session)
        with pytest.raises(ApiError) as exc:
            security.require_admin()
        assert exc.value.status == 401


def test_csrf_token_must_match_the_session(app):
    with app.test_request_context("/study/s/start", method="POST", data={"csrf_token": "nope"}):
        token = security.csrf_token()
        assert security.csrf_token() == token  # stable within a session
        with pytest.raises(ApiError) as exc:
            security.validate_csrf()
        assert exc.value.status == 400
    with app.test_request_context("/study/s/start", method="POST", data={"csrf_token": "abc"}):
        session[security.CSRF_SESSION_KEY] = "abc"
        security.validate_csrf()


def test_security_headers_on_api_and_frameable_worker_pages(client):
    api = client.get("/api/v1/health")
    csp = api.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp and "default-src 'self'" in csp
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert api.headers["Referrer-Policy"] == "same-origin"
    assert api.headers["X-Frame-Options"] == "DENY"
    assert api.headers["Cache-Control"] == "no-store"
    page = client.get("/study/anything")  # a worker page (or its 404): MTurk may frame it
    assert "frame-ancestors 'self' https://*.mturk.com" in page.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in page.headers


def test_the_csp_nonce_changes_per_request(client):
    a = client.get("/api/v1/health").headers["Content-Security-Policy"]
    b = client.get("/api/v1/health").headers["Content-Security-Policy"]
    assert "'nonce-" in a and a != b


def test_errors_outside_the_api_are_escaped_html_for_browsers(client):
    r = client.get("/nope/<script>alert(1)</script>", headers={"Accept": "text/html"})
    assert r.status_code == 404 and r.mimetype == "text/html" and "<script>" not in r.get_data(as_text=True)


def _log_in(client) -> None:
    import re

    page = client.get("/admin/").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/admin/login", data={"csrf_token": csrf, "token": "test-admin-token"})
    assert r.status_code == 303, r.get_data(as_text=True)


def _logged_in(client) -> bool:
    return 'name="token"' not in client.get("/admin/").get_data(as_text=True)


def test_logging_out_revokes_the_admin_session_so_an_old_copy_of_the_cookie_stops_working(app):
    import re

    browser, thief = app.test_client(), app.test_client()
    _log_in(browser)
    stolen = browser.get_cookie("subjlab_session").value
    thief.set_cookie("subjlab_session", stolen)
    assert _logged_in(thief) and thief.get("/api/v1/studies").status_code == 200
    page = browser.get("/admin/").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert browser.post("/admin/logout", data={"csrf_token": csrf}).status_code == 303
    thief.set_cookie("subjlab_session", stolen)  # the copy taken before logging out
    assert not _logged_in(thief) and not _logged_in(browser)
    assert thief.get("/api/v1/studies").status_code == 401
    assert thief.get("/admin/studies/x").status_code == 303  # to the login form


def test_admin_sessions_expire_after_twelve_hours_or_the_configured_time(make_app, clock):
    default, short = make_app(CLOCK=clock), make_app(CLOCK=clock, ADMIN_SESSION_HOURS=2)
    a, b = default.test_client(), short.test_client()
    _log_in(a)
    _log_in(b)
    clock.advance(2 * 3600 + 1)
    assert _logged_in(a) and not _logged_in(b)
    clock.advance(10 * 3600)
    assert not _logged_in(a)
