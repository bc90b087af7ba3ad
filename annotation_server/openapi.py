"""The OpenAPI 3.1 document of `/api/v1` (served at `/api/v1/openapi.json`).

Written out by hand from the routes in `api.py`; `tests/server/test_openapi.py` validates it with
`openapi-spec-validator` and checks that every route of the blueprint is described.
"""

from __future__ import annotations

from typing import Any

API_VERSION = "1.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_TEXT = {
    400: "Malformed JSON, wrong types or unknown fields",
    401: "Missing token",
    403: "Wrong token (or a token of another study)",
    404: "Unknown study or assignment",
    409: "Conflict: name taken, study closed, lease expired, someone else's assignment, answered differently",
    413: "Request body too large",
    422: "A value that is not one of the allowed choices (label, winner, task)",
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"$ref": f"#/components/responses/E{c}"} for c in codes}


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}, "description": "Study name"}
_ADMIN = [{"adminToken": []}]
_WORKER = [{"workerToken": []}]

_HANDLE = {"type": "string", "pattern": "^[0-9a-f]{16}$", "description": "opaque handle of the assignment"}
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["status", "code", "message"], "properties": {
            "status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"},
            "field": {"type": ["string", "null"]}}}},
    },
    "TaskSpec": {
        "type": "object",
        "description": "A task specification (subjlab.tasks.TaskSpec fields).",
        "required": ["name", "title", "description", "labels", "label_descriptions", "context", "style"],
        "properties": {
            "name": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "label_descriptions": {"type": "object", "additionalProperties": {"type": "string"}},
            "context": {"type": "string"}, "style": {"type": "string"}, "word_limit": {"type": "integer"},
            "data_name": {"type": "string"}, "label_field": {"type": "string"},
            "label_map": {"type": "object", "additionalProperties": {"type": "string"}},
            "examples": {"type": "array", "items": {"type": "string"}},
        },
    },
    "TaskRef": {"oneOf": [{"type": "string", "description": "A registry key, e.g. ag_news"}, _ref("TaskSpec")]},
    "StudyCreate": {
        "type": "object",
        "required": ["name", "kind"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
            "kind": {"type": "string", "enum": ["pairwise", "labeling"]},
            "task": _ref("TaskRef"),
            "labels_per_item": {"type": "integer", "minimum": 1, "description": "labeling: K workers per item (default 3)"},
            "judgments_per_pair": {"type": "integer", "minimum": 1, "description": "pairwise: judgments per task pair (default 12)"},
            "scheduler": {"type": "string", "enum": ["balanced", "active"]},
            "examples_per_task": {"type": "integer", "minimum": 1, "maximum": 20},
            "max_per_worker": {"type": ["integer", "null"], "minimum": 1},
            "gold_every": {"type": ["integer", "null"], "minimum": 2},
            "title": {"type": "string"},
            "instructions": {"type": "string"},
            "require_signed_entry": {"type": "boolean", "description": "sessions only through signed entry links"},
        },
    },
    "StudySummary": {
        "type": "object",
        "required": ["name", "kind", "status", "units", "answers"],
        "properties": {
            "name": {"type": "string"}, "kind": {"type": "string", "enum": ["pairwise", "labeling"]},
            "status": {"type": "string", "enum": ["open", "closed"]}, "title": {"type": "string"},
            "scheduler": {"type": "string"}, "labels_per_item": {"type": ["integer", "null"]},
            "judgments_per_pair": {"type": ["integer", "null"]}, "max_per_worker": {"type": ["integer", "null"]},
            "gold_every": {"type": ["integer", "null"]}, "examples_per_task": {"type": ["integer", "null"]},
            "task": {"type": ["string", "null"]}, "units": {"type": "integer"}, "answers": {"type": "integer"},
            "require_signed_entry": {"type": "boolean"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "StudyInfo": {
        "type": "object",
        "required": ["name", "kind", "status", "title", "instructions"],
        "properties": {
            "name": {"type": "string"}, "kind": {"type": "string"}, "status": {"type": "string"},
            "title": {"type": "string"}, "instructions": {"type": "string"},
            "definition": {"type": ["string", "null"]}, "question": {"type": ["string", "null"]},
            "task": {"type": ["object", "null"]},
        },
    },
    "ItemsAdd": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "tasks": {"type": "array", "items": _ref("TaskRef"), "description": "pairwise studies"},
            "examples": {"type": "array", "description": "labeling studies; extra fields are kept", "items": {
                "type": "object", "required": ["id", "text"],
                "properties": {"id": {"type": ["string", "integer"]}, "text": {"type": "string"}, "label": {"type": "string"}}}},
            "gold": {"type": "array", "description": "attention checks with known answers", "items": {"oneOf": [
                {"type": "object", "required": ["id", "text", "answer"], "properties": {
                    "id": {"type": "string"}, "text": {"type": "string"}, "answer": {"type": "string"}}},
                {"type": "object", "required": ["left", "right", "answer"], "properties": {
                    "id": {"type": "string"}, "left": {"type": "string"}, "right": {"type": "string"}, "answer": {"type": "string"}}},
            ]}},
        },
    },
    "ItemsAdded": {
        "type": "object",
        "required": ["study", "added", "units"],
        "properties": {"study": {"type": "string"}, "added": {"type": "object", "additionalProperties": {"type": "integer"}},
                       "units": {"type": "integer"}},
    },
    "SessionCreate": {
        "type": "object", "required": ["worker_id"], "additionalProperties": False,
        "properties": {"worker_id": {"type": "string", "maxLength": 128},
                       "signature": {"type": "string", "description": "the sig of a signed entry link "
                                                                      "(required by studies with require_signed_entry)"}},
    },
    "SessionCreated": {
        "type": "object", "required": ["token", "worker_id", "study"],
        "properties": {"token": {"type": "string"}, "worker_id": {"type": "string"}, "study": {"type": "string"}},
    },
    "Progress": {"type": "object", "required": ["answered", "target"],
                 "properties": {"answered": {"type": "integer"}, "target": {"type": "integer"}}},
    "TaskCard": {
        "type": "object", "required": ["task", "title", "description", "labels", "examples"],
        "properties": {"task": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
                       "labels": {"type": "array", "items": {"type": "string"}},
                       "label_descriptions": {"type": "object", "additionalProperties": {"type": "string"}},
                       "examples": {"type": "array", "items": {"type": "string"}}},
    },
    "PairwiseAssignment": {
        "type": "object", "required": ["assignment", "kind", "study", "left", "right", "progress"],
        "properties": {"assignment": _HANDLE, "kind": {"const": "pairwise"}, "study": {"type": "string"},
                       "lease_expires": {"type": "string", "format": "date-time"}, "question": {"type": "string"},
                       "definition": {"type": "string"}, "left": _ref("TaskCard"), "right": _ref("TaskCard"),
                       "progress": _ref("Progress")},
    },
    "LabelingAssignment": {
        "type": "object", "required": ["assignment", "kind", "study", "item", "labels", "progress"],
        "properties": {"assignment": _HANDLE, "kind": {"const": "labeling"}, "study": {"type": "string"},
                       "lease_expires": {"type": "string", "format": "date-time"},
                       "item": {"type": "object", "required": ["text"], "additionalProperties": False,
                                "properties": {"text": {"type": "string"}}},
                       "labels": {"type": "array", "items": {"type": "string"}},
                       "label_descriptions": {"type": "object", "additionalProperties": {"type": "string"}},
                       "task": {"type": "object"}, "progress": _ref("Progress")},
    },
    "Answer": {"oneOf": [
        {"type": "object", "required": ["winner"], "additionalProperties": False, "properties": {"winner": {"type": "string"}}},
        {"type": "object", "required": ["label"], "additionalProperties": False, "properties": {"label": {"type": "string"}}},
    ]},
    "AnswerRecorded": {
        "type": "object", "required": ["assignment", "kind", "recorded_at"],
        "properties": {"assignment": {"type": "string"}, "kind": {"type": "string"}, "winner": {"type": "string"},
                       "label": {"type": "string"}, "recorded_at": {"type": "string", "format": "date-time"},
                       "next": {"description": "Only with ?next=1: the worker's next assignment (as GET "
                                               "/studies/{name}/next returns it), or null when nothing is left",
                                "oneOf": [_ref("PairwiseAssignment"),
                                          _ref("LabelingAssignment"),
                                          {"type": "null"}]}},
    },
    "WorkerStatus": {
        "type": "object", "required": ["study", "worker_id", "answered", "target", "finished", "completion_code"],
        "properties": {"study": {"type": "string"}, "worker_id": {"type": "string"}, "answered": {"type": "integer"},
                       "target": {"type": "integer"}, "finished": {"type": "boolean"},
                       "completion_code": {"type": ["string", "null"]}},
    },
    "StudyProgress": {"type": "object", "required": ["study", "kind", "units", "slots", "answered"], "properties": {
        "study": {"type": "string"}, "kind": {"type": "string"}, "status": {"type": "string"}, "units": {"type": "integer"},
        "slots": {"type": "integer"}, "answered": {"type": "integer"}, "active_leases": {"type": "integer"},
        "expired_leases": {"type": "integer"}, "open_slots": {"type": "integer"}, "complete_units": {"type": "integer"},
        "workers": {"type": "integer"}, "answers_per_worker": {"type": "object"},
        "position": {"type": ["object", "null"]}, "gold": {"type": "object"}}},
    "Ranking": {"type": "object", "required": ["study", "n_judgments", "tasks"], "properties": {
        "study": {"type": "string"}, "n_judgments": {"type": "integer"}, "connected": {"type": ["boolean", "null"]},
        "components": {"type": "array"}, "stopping": {"type": ["object", "null"]},
        "tasks": {"type": "array", "items": {"type": "object", "properties": {
            "task": {"type": "string"}, "score": {"type": "number"}, "ci_low": {"type": ["number", "null"]},
            "ci_high": {"type": ["number", "null"]}, "rank": {"type": "integer"}, "n": {"type": "integer"},
            "wins": {"type": "integer"}}}}}},
    "Agreement": {"type": "object", "required": ["study", "n_items", "items"], "properties": {
        "study": {"type": "string"}, "n_items": {"type": "integer"}, "n_labels": {"type": "integer"},
        "mean_agreement": {"type": ["number", "null"]}, "fleiss_kappa": {"type": ["number", "null"]},
        "krippendorff_alpha": {"type": ["number", "null"]}, "histogram": {"type": "array"}, "items": {"type": "array"}}},
    "UnconfirmedSessions": {"type": "object", "required": ["study", "unconfirmed"], "properties": {
        "study": {"type": "string"}, "unconfirmed": {"type": "array", "items": {
            "type": "object", "required": ["session", "worker_id", "entry", "reason", "answers"], "properties": {
                "session": {"type": "integer"}, "worker_id": {"type": "string"}, "entry": {"type": "string"},
                "entry_ref": {"type": ["string", "null"]}, "reason": {"type": ["string", "null"]},
                "checked_at": {"type": ["string", "null"]}, "answers": {"type": "integer"}}}}}},
    "Workers": {"type": "object", "required": ["study", "workers"], "properties": {
        "study": {"type": "string"}, "workers": {"type": "array", "items": {"type": "object"}}}},
}


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document (a fresh dict) describing every `/api/v1` route."""
    paths: dict[str, Any] = {
        "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi", "security": [],
                                  "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")}}},
        "/health": {"get": {"summary": "Liveness and schema revision", "operationId": "health", "security": [],
                            "responses": {"200": _json({"type": "object", "properties": {
                                "status": {"type": "string"}, "database": {"type": "string"},
                                "revision": {"type": ["string", "null"]}}}, "Server is up")}}},
        "/studies": {
            "get": {"summary": "List studies", "operationId": "listStudies", "security": _ADMIN,
                    "responses": {"200": _json({"type": "object", "properties": {"studies": {"type": "array", "items": _ref("StudySummary")}}}, "Studies"),
                                  **_errors(401, 403)}},
            "post": {"summary": "Create a study", "operationId": "createStudy", "security": _ADMIN,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("StudyCreate")}}},
                     "responses": {"201": _json(_ref("StudySummary"), "Created"), **_errors(400, 401, 403, 409, 413, 422)}},
        },
        "/studies/{name}": {"get": {"summary": "Public study description (for worker pages)", "operationId": "studyInfo",
                                    "security": [], "parameters": [_NAME],
                                    "responses": {"200": _json(_ref("StudyInfo"), "Study"), **_errors(404)}}},
        "/studies/{name}/items": {"post": {
            "summary": "Add tasks (pairwise), examples (labeling) and/or gold checks", "operationId": "addItems",
            "security": _ADMIN, "parameters": [_NAME],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ItemsAdd")}}},
            "responses": {"201": _json(_ref("ItemsAdded"), "Added"), **_errors(400, 401, 403, 404, 409, 413, 422)}}},
        "/studies/{name}/close": {"post": {"summary": "Close a study", "operationId": "closeStudy", "security": _ADMIN,
                                           "parameters": [_NAME],
                                           "responses": {"200": _json(_ref("StudySummary"), "Closed"), **_errors(401, 403, 404)}}},
        "/studies/{name}/sessions": {"get": {
            "summary": "Sessions a crowd platform did not confirm (subjlab mturk review), with the reason",
            "operationId": "unconfirmedSessions", "security": _ADMIN, "parameters": [_NAME],
            "responses": {"200": _json(_ref("UnconfirmedSessions"), "Unconfirmed sessions"), **_errors(401, 403, 404)}},
            "post": {
            "summary": "Start a worker session; returns the worker's bearer token", "operationId": "startSession",
            "security": [], "parameters": [_NAME],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("SessionCreate")}}},
            "responses": {"201": _json(_ref("SessionCreated"), "Session started"), **_errors(400, 403, 404, 409, 413)}}},
        "/studies/{name}/next": {"get": {
            "summary": "Lease the worker's next assignment", "operationId": "nextAssignment", "security": _WORKER,
            "parameters": [_NAME],
            "responses": {"200": _json({"oneOf": [_ref("PairwiseAssignment"), _ref("LabelingAssignment")]}, "An assignment"),
                          "204": {"description": "Nothing left for this worker"}, **_errors(401, 403, 404)}}},
        "/assignments/{handle}": {"post": {
            "summary": "Answer an assignment (idempotent for the same answer); with ?next=1 the reply carries the "
                       "worker's next assignment too (one round trip per unit). Only the session that received "
                       "the assignment may answer it: any other handle (another session's, unknown, malformed) "
                       "gets the same 409",
            "operationId": "answer", "security": _WORKER,
            "parameters": [{"name": "handle", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "next", "in": "query", "required": False,
                            "description": "1 (or true): also lease the worker's next assignment and return it as "
                                           "`next` (null when nothing is left); 0 (or false, the default): do not",
                            "schema": {"type": "string", "enum": ["0", "1", "false", "true"]}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Answer")}}},
            "responses": {"201": _json(_ref("AnswerRecorded"), "Recorded"), **_errors(400, 401, 409, 413, 422)}}},
        "/studies/{name}/me": {"get": {
            "summary": "The worker's progress and completion code", "operationId": "workerStatus", "security": _WORKER,
            "parameters": [_NAME], "responses": {"200": _json(_ref("WorkerStatus"), "Status"), **_errors(401, 403, 404)}}},
        "/studies/{name}/progress": {"get": {"summary": "Study progress", "operationId": "studyProgress", "security": _ADMIN,
                                             "parameters": [_NAME],
                                             "responses": {"200": _json(_ref("StudyProgress"), "Progress"), **_errors(401, 403, 404)}}},
        "/studies/{name}/ranking": {"get": {"summary": "Bradley-Terry objectivity ranking", "operationId": "studyRanking",
                                            "security": _ADMIN, "parameters": [_NAME],
                                            "responses": {"200": _json(_ref("Ranking"), "Ranking"), **_errors(400, 401, 403, 404)}}},
        "/studies/{name}/agreement": {"get": {"summary": "Per-item agreement, Fleiss' kappa, Krippendorff's alpha",
                                              "operationId": "studyAgreement", "security": _ADMIN, "parameters": [_NAME],
                                              "responses": {"200": _json(_ref("Agreement"), "Agreement"), **_errors(400, 401, 403, 404)}}},
        "/studies/{name}/workers": {"get": {"summary": "Per-worker counts, gold accuracy, time per unit",
                                            "operationId": "studyWorkers", "security": _ADMIN, "parameters": [_NAME],
                                            "responses": {"200": _json(_ref("Workers"), "Workers"), **_errors(401, 403, 404)}}},
        "/studies/{name}/export": {"get": {
            "summary": "Export judgments or labels as JSON Lines", "operationId": "exportAnswers", "security": _ADMIN,
            "parameters": [_NAME, {"name": "what", "in": "query", "required": True,
                                   "schema": {"type": "string", "enum": ["judgments", "labels"]}},
                           {"name": "include_unconfirmed", "in": "query", "required": False,
                            "description": "1: also the answers of sessions a crowd platform did not confirm",
                            "schema": {"type": "string", "enum": ["0", "1", "false", "true"]}}],
            "responses": {"200": {"description": "One record a line (subjlab.records shapes)",
                                  "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                          **_errors(400, 401, 403, 404)}}},
    }
    responses = {f"E{c}": _json(_ref("Error"), text) for c, text in _ERROR_TEXT.items()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "subjlab annotation server", "version": API_VERSION,
                 "description": "Pairwise task-objectivity studies and instance labeling for crowd workers."},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "responses": responses,
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer", "description": "SUBJLAB_ADMIN_TOKEN"},
                "workerToken": {"type": "http", "scheme": "bearer", "description": "token from POST /studies/{name}/sessions"},
            },
        },
    }
