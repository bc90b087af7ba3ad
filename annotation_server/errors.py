"""Errors as JSON: `ApiError` for the domain code, and handlers that turn every error into a clean reply.

Every error body has one shape:
`{"error": {"status": 409, "code": "conflict", "message": "...", "field": null}}`.
Under `/api/` (or when the client prefers JSON) the reply is that JSON; for HTML pages it is a small
page with the (escaped) message. Unexpected exceptions are logged and answered with a generic 500 -
never a traceback. Database contention that outlasts the busy timeout answers 503 with Retry-After.
"""

from __future__ import annotations

import html
import logging

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("annotation_server")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(ValueError):
    """A request that cannot be served: `status` (HTTP code), a message for people, the offending field.

    A ValueError, so the CLI (which calls the same domain functions) prints it as `error: <message>`.
    """

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> dict:
        """Return the JSON error body."""
        return error_body(self.status, self.message, self.field)


def error_body(status: int, message: str, field: str | None = None) -> dict:
    """Return the error JSON for an HTTP status and message."""
    return {"error": {"status": status, "code": _CODES.get(status, "error"), "message": message, "field": field}}


def _wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json"


def error_response(status: int, message: str, field: str | None = None) -> Response:
    """Build the error reply (JSON under /api/, a minimal escaped HTML page elsewhere)."""
    if _wants_json():
        resp = jsonify(error_body(status, message, field))
    else:
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Error {s}</title></head>"
            "<body><h1>Error {s}</h1><p>{m}</p></body></html>"
        ).format(s=status, m=html.escape(message))
        resp = Response(page, mimetype="text/html")
    resp.status_code = status
    return resp


def register_error_handlers(app: Flask) -> None:
    """Install the JSON/HTML error handlers on `app` (every HTTPException, ApiError, and a catch-all)."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            limit = request.max_content_length
            message = f"request body too large (limit {limit} bytes)" if limit else "request body too large"
        resp = error_response(status, message)
        valid = getattr(exc, "valid_methods", None)
        if status == 405 and valid:
            resp.headers["Allow"] = ", ".join(valid)
        return resp

    @app.errorhandler(DataError)
    def _bad_value(exc: DataError):
        log.warning("database refused a value: %s", exc.orig if exc.orig is not None else exc)
        return error_response(400, "a value in the request cannot be stored or looked up (e.g. a NUL character)")

    @app.errorhandler(OperationalError)
    def _db_busy(exc: OperationalError):
        log.warning("database unavailable: %s", exc.orig if exc.orig is not None else exc)
        resp = error_response(503, "database busy or unavailable; retry shortly")
        resp.headers["Retry-After"] = "1"
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal server error")
