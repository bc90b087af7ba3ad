"""Authentication and browser hardening: admin token, worker tokens, CSRF, security headers.

- Admin: `Authorization: Bearer <SUBJLAB_ADMIN_TOKEN>`, compared in constant time. A dashboard login
  (`admin_login`) opens a server-side admin session (`admin_session` row: the SHA-256 of a random token
  that the Flask session cookie carries, expiring after `ADMIN_SESSION_HOURS`, default 12); logging out
  revokes it, so a copy of the cookie taken before stops working. That cookie is honoured for GET requests
  only, so no state-changing request is ever authenticated by a cookie (no CSRF exposure on the API).
- Workers: random bearer tokens; the database keeps only their SHA-256 (`hash_token`).
- CSRF for HTML forms: one random token per browser session (`csrf_token`, `validate_csrf`).
- Headers: CSP with a per-request nonce, nosniff, Referrer-Policy, and frame-ancestors that let the
  MTurk frame embed worker pages (`/study/...`, `/mturk/...`, `/prolific/...`) and nobody embed anything
  else. A response may let its forms post to ONE more origin by setting `g.extra_form_action` (the MTurk
  hand-in page posts to `<turkSubmitTo>/mturk/externalSubmit`).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import secrets
from datetime import timedelta

from flask import Flask, Response, current_app, g, request, session
from werkzeug.exceptions import RequestEntityTooLarge

from annotation_server.errors import ApiError

ADMIN_SESSION_KEY = "subjlab_admin"
CSRF_SESSION_KEY = "subjlab_csrf"
DEFAULT_FRAME_ANCESTORS = "'self' https://*.mturk.com"
#: Pages a crowd platform may frame (MTurk shows ExternalQuestion pages in an iframe).
FRAMEABLE_PREFIXES = ("/study/", "/mturk/", "/prolific/")
#: `g` attribute: one extra origin ("https://host[:port]") this response's forms may post to.
EXTRA_FORM_ACTION = "extra_form_action"
_ORIGIN_RE = re.compile(r"https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def new_token() -> str:
    """Return a fresh random bearer token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the hex SHA-256 of a token (what the database stores)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token() -> str | None:
    """Return the bearer token of the current request's Authorization header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _configured_admin_token() -> str | None:
    token = current_app.config.get("ADMIN_TOKEN")
    return token if isinstance(token, str) and token else None


def check_admin_token(token: str | None) -> bool:
    """Return True when `token` equals the configured admin token (constant-time comparison)."""
    expected = _configured_admin_token()
    if expected is None or not token:
        return False
    return hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8"))


def require_admin() -> None:
    """Raise ApiError 401 (no credentials) or 403 (wrong token / admin disabled) unless the request is admin."""
    if _configured_admin_token() is None:
        raise ApiError(403, "admin token not configured on this server (set SUBJLAB_ADMIN_TOKEN)")
    token = bearer_token()
    if token is None:
        if request.method in ("GET", "HEAD") and is_admin():
            return
        raise ApiError(401, "admin token required: send 'Authorization: Bearer <admin token>'")
    if not check_admin_token(token):
        raise ApiError(403, "wrong admin token")


def _state():
    from annotation_server.app import get_state

    return get_state()


def admin_login(token: str) -> bool:
    """Check `token`; on success open a server-side admin session for this browser and return True."""
    from annotation_server.db import session_scope
    from annotation_server.models import AdminSession

    if not check_admin_token(token):
        return False
    state = _state()
    now = state.clock()
    hours = float(current_app.config.get("ADMIN_SESSION_HOURS") or 12)
    secret = new_token()
    with session_scope(state.engine, write=True) as db:
        db.add(AdminSession(token_hash=hash_token(secret), created_at=now, expires_at=now + timedelta(hours=hours)))
    session.clear()
    session[ADMIN_SESSION_KEY] = secret
    session.permanent = False
    g.subjlab_is_admin = True
    return True


def admin_logout() -> None:
    """End this browser's admin session on the server (a copy of its cookie no longer works) and forget it."""
    from sqlalchemy import update

    from annotation_server.db import session_scope
    from annotation_server.models import AdminSession

    secret = session.pop(ADMIN_SESSION_KEY, None)
    g.subjlab_is_admin = False
    if isinstance(secret, str) and secret:
        state = _state()
        with session_scope(state.engine, write=True) as db:
            t = AdminSession.__table__
            db.execute(update(t).where(t.c.token_hash == hash_token(secret), t.c.revoked_at.is_(None))
                       .values(revoked_at=state.clock()))


def is_admin() -> bool:
    """Return True when the browser session holds an admin session that is neither revoked nor expired."""
    found = getattr(g, "subjlab_is_admin", None)
    if found is not None:
        return found
    secret = session.get(ADMIN_SESSION_KEY)
    found = False
    if isinstance(secret, str) and secret:
        from sqlalchemy import select

        from annotation_server.db import session_scope
        from annotation_server.models import AdminSession

        state = _state()
        t = AdminSession.__table__
        with session_scope(state.engine) as db:
            found = db.execute(select(t.c.id).where(t.c.token_hash == hash_token(secret), t.c.revoked_at.is_(None),
                                                    t.c.expires_at > state.clock())).first() is not None
    g.subjlab_is_admin = found
    return found


def csrf_token() -> str:
    """Return this browser session's CSRF token, creating it on first use."""
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def validate_csrf() -> None:
    """Raise ApiError 400 unless the form field `csrf_token` (or header X-CSRF-Token) matches the session's."""
    expected = session.get(CSRF_SESSION_KEY)
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not isinstance(expected, str) or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(400, "missing or invalid CSRF token; reload the page and try again", field="csrf_token")


def csp_nonce() -> str:
    """Return the per-request nonce allowed by the CSP for inline <script>/<style> (nonce="...")."""
    nonce = getattr(g, "subjlab_csp_nonce", None)
    if nonce is None:
        nonce = secrets.token_urlsafe(16)
        g.subjlab_csp_nonce = nonce
    return nonce


def extra_form_action() -> str:
    """Return " <origin>" for the origin set in `g.extra_form_action`, "" when none is set.

    Only a bare http(s) origin (no path, spaces, quotes or semicolons) is ever added to the CSP; anything
    else is a programming error: it is logged and left out (the form then cannot post: fail closed).
    """
    origin = getattr(g, EXTRA_FORM_ACTION, None)
    if not origin:
        return ""
    if not isinstance(origin, str) or not _ORIGIN_RE.fullmatch(origin):
        current_app.logger.error("g.%s must be one origin like https://host[:port]; ignored %r", EXTRA_FORM_ACTION, origin)
        return ""
    return " " + origin.lower()


def apply_security_headers(response: Response) -> Response:
    """Add the security headers to a response (see module doc)."""
    nonce = csp_nonce()
    worker_page = request.path.startswith(FRAMEABLE_PREFIXES)
    ancestors = (current_app.config.get("FRAME_ANCESTORS") or DEFAULT_FRAME_ANCESTORS) if worker_page else "'none'"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
        f"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        f"form-action 'self'{extra_form_action()}; frame-ancestors {ancestors}"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if not worker_page:
        response.headers["X-Frame-Options"] = "DENY"
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def bound_chunked_body() -> None:
    """Hold a body sent with `Transfer-Encoding: chunked` (no Content-Length) to the request's size limit, as
    a Content-Length body is: read at most limit + 1 bytes (the WSGI server ends the stream at the last
    chunk), 413 if there were more, else hand the rest of the app the body with its length. Without this a
    chunked body was silently cut at the limit and then read as malformed JSON."""
    env = request.environ
    if env.get("CONTENT_LENGTH") or "chunked" not in env.get("HTTP_TRANSFER_ENCODING", "").lower():
        return
    limit = request.max_content_length
    if limit is None:
        return
    data = env["wsgi.input"].read(limit + 1)
    if len(data) > limit:
        raise RequestEntityTooLarge()
    env["wsgi.input"] = io.BytesIO(data)
    env["CONTENT_LENGTH"] = str(len(data))


def no_store(response: Response) -> Response:
    """`Cache-Control: no-store`: for every page that may carry a worker token, a signed entry link, a
    completion code or admin data (registered on the worker, MTurk, Prolific and admin blueprints)."""
    response.headers["Cache-Control"] = "no-store"
    return response


def init_security(app: Flask) -> None:
    """Install the header hook and the template helpers `csrf_token()` and `csp_nonce()`."""
    app.after_request(apply_security_headers)
    app.before_request(lambda: None if request.path.startswith("/api/") else bound_chunked_body())
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["csp_nonce"] = csp_nonce
