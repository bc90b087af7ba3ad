"""The OpenAPI 3.1 document of `/api/v1` (served at `/api/v1/openapi.json`), built from the pydantic models
that validate the requests (`api_models`, through pydantic's own JSON Schema) and the table of routes below.

`tests/server/test_openapi.py` validates it with `openapi-spec-validator` and checks that every route of the
blueprint is described; `tests/server/test_api_fuzz.py` fuzzes the server from it (schemathesis).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from annotation_server import api_models as m

API_VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"

_ERROR_TEXT = {
    400: "Malformed JSON, wrong types or unknown fields",
    401: "Missing token",
    403: "Wrong token (or a token of another study)",
    404: "Unknown study or assignment",
    409: "Conflict: name taken, study closed, lease expired, someone else's assignment, answered differently",
    413: "Request body too large",
    422: "A value that is not one of the allowed choices (label, winner, task)",
}

ADMIN, WORKER, PUBLIC = "adminToken", "workerToken", None


def _param(name: str, where: str, schema: Any, description: str = "", required: bool = False) -> dict[str, Any]:
    """A parameter; `schema` is a type of `api_models` (its JSON Schema goes in the document)."""
    out = {"name": name, "in": where, "required": required or where == "path",
           "schema": TypeAdapter(schema).json_schema()}
    return {**out, "description": description} if description else out


_NAME = _param("name", "path", str, "Study name")
_HANDLE = _param("handle", "path", str, "The opaque handle `next` gave (one the router cannot match, e.g. with a "
                                      "line break, is a 404)")
_NEXT = _param("next", "query", m.Flag, "1 (or true): also lease the worker's next assignment and return it as `next` "
                                        "(null when nothing is left); 0 (or false, the default): do not")
_WHAT = _param("what", "query", m.ExportWhat, required=True)
_UNCONFIRMED = _param("include_unconfirmed", "query", m.Flag,
                      "1: also the answers of sessions a crowd platform did not confirm")


@dataclass(frozen=True)
class Route:
    """One operation: its request body model (if any), its success reply and the error statuses it may answer."""

    method: str
    path: str
    operation_id: str
    summary: str
    security: str | None
    status: int
    reply: type[BaseModel] | dict[str, Any] | None
    reply_text: str
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    params: tuple[dict[str, Any], ...] = ()
    no_content: str | None = None  # what a 204 reply means, where there is one


ROUTES = (
    Route("get", "/openapi.json", "openapi", "This document", PUBLIC, 200, {"type": "object"}, "OpenAPI 3.1 document"),
    Route("get", "/health", "health", "Liveness and schema revision", PUBLIC, 200, m.Health, "Server is up"),
    Route("get", "/studies", "listStudies", "List studies", ADMIN, 200, m.StudyList, "Studies", (401, 403)),
    Route("post", "/studies", "createStudy", "Create a study", ADMIN, 201, m.StudySummary, "Created",
          (400, 401, 403, 409, 413, 422), m.StudyCreate),
    Route("get", "/studies/{name}", "studyInfo", "Public study description (for worker pages)", PUBLIC, 200,
          m.StudyInfo, "Study", (404,), params=(_NAME,)),
    Route("post", "/studies/{name}/items", "addItems", "Add tasks (pairwise), examples (labeling) and/or gold checks",
          ADMIN, 201, m.ItemsAdded, "Added", (400, 401, 403, 404, 409, 413, 422), m.ItemsAdd, (_NAME,)),
    Route("post", "/studies/{name}/close", "closeStudy", "Close a study", ADMIN, 200, m.StudySummary, "Closed",
          (401, 403, 404), params=(_NAME,)),
    Route("get", "/studies/{name}/sessions", "unconfirmedSessions",
          "Sessions a crowd platform did not confirm (subjlab mturk review), with the reason", ADMIN, 200,
          m.UnconfirmedSessions, "Unconfirmed sessions", (401, 403, 404), params=(_NAME,)),
    Route("post", "/studies/{name}/sessions", "startSession", "Start a worker session; returns the worker's bearer token",
          PUBLIC, 201, m.SessionCreated, "Session started", (400, 403, 404, 409, 413), m.SessionCreate, (_NAME,)),
    Route("get", "/studies/{name}/next", "nextAssignment", "Lease the worker's next assignment",
          WORKER, 200, m.Assignment, "An assignment", (401, 403, 404), params=(_NAME,),
          no_content="Nothing left for this worker"),
    Route("post", "/assignments/{handle}", "answer",
          "Answer an assignment (idempotent for the same answer); with ?next=1 the reply carries the worker's next "
          "assignment too (one round trip per unit). Only the session that received the assignment may answer it: "
          "any other handle (another session's, unknown, malformed) gets the same 409",
          WORKER, 201, m.AnswerRecorded, "Recorded", (400, 401, 404, 409, 413, 422), m.Answer, (_HANDLE, _NEXT)),
    Route("get", "/studies/{name}/me", "workerStatus", "The worker's progress and completion code", WORKER, 200,
          m.WorkerStatus, "Status", (401, 403, 404), params=(_NAME,)),
    Route("get", "/studies/{name}/progress", "studyProgress", "Study progress", ADMIN, 200, m.StudyProgress, "Progress",
          (401, 403, 404), params=(_NAME,)),
    Route("get", "/studies/{name}/ranking", "studyRanking", "Bradley-Terry objectivity ranking", ADMIN, 200, m.Ranking,
          "Ranking", (400, 401, 403, 404), params=(_NAME,)),
    Route("get", "/studies/{name}/agreement", "studyAgreement", "Per-item agreement, Fleiss' kappa, Krippendorff's alpha",
          ADMIN, 200, m.Agreement, "Agreement", (400, 401, 403, 404), params=(_NAME,)),
    Route("get", "/studies/{name}/workers", "studyWorkers", "Per-worker counts, gold accuracy, time per unit", ADMIN, 200,
          m.Workers, "Workers", (401, 403, 404), params=(_NAME,)),
    Route("get", "/studies/{name}/export", "exportAnswers", "Export judgments or labels as JSON Lines", ADMIN, 200,
          None, "One record a line (subjlab.records shapes)", (400, 401, 403, 404), params=(_NAME, _WHAT, _UNCONFIRMED)),
)


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document (a fresh dict) describing every `/api/v1` route."""
    return copy.deepcopy(_document())


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    models = {m.Error} | {r.body for r in ROUTES if r.body} | {r.reply for r in ROUTES if isinstance(r.reply, type)}
    _, top = models_json_schema([(model, "validation") for model in sorted(models, key=lambda c: c.__name__)],
                                ref_template=_REF)
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "subjlab annotation server", "version": API_VERSION,
                 "description": "Pairwise task-objectivity studies and instance labeling for crowd workers."},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": top["$defs"],
            "responses": {f"E{code}": _json(_ref(m.Error), text) for code, text in _ERROR_TEXT.items()},
            "securitySchemes": {
                ADMIN: {"type": "http", "scheme": "bearer", "description": "SUBJLAB_ADMIN_TOKEN"},
                WORKER: {"type": "http", "scheme": "bearer", "description": "token from POST /studies/{name}/sessions"},
            },
        },
    }


def _operation(route: Route) -> dict[str, Any]:
    if route.reply is None:  # the export: JSON Lines
        success = {"description": route.reply_text, "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}
    else:
        success = _json(route.reply if isinstance(route.reply, dict) else _ref(route.reply), route.reply_text)
    responses: dict[str, Any] = {str(route.status): success}
    if route.no_content:
        responses["204"] = {"description": route.no_content}
    responses.update({str(code): {"$ref": f"#/components/responses/E{code}"} for code in route.errors})
    op: dict[str, Any] = {"summary": route.summary, "operationId": route.operation_id,
                          "security": [{route.security: []}] if route.security else []}
    if route.params:
        op["parameters"] = list(route.params)
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(route.body)}}}
    op["responses"] = responses
    return op


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}
