"""The OpenAPI document is valid OpenAPI 3.1 and describes every route of the JSON API."""

from __future__ import annotations

import re

from openapi_spec_validator import validate


def test_openapi_document_is_valid_and_covers_every_api_route(app, client):
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.get_json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    described = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint == "api.answer_bad_id":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule[len("/api/v1"):]).replace("{assignment_id}", "{id}")
        served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == described


def test_every_operation_documents_its_error_replies(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            schemes = {name for req in op.get("security", []) for name in req}
            if "adminToken" in schemes:
                assert {"401", "403"} <= set(op["responses"]), (path, method)
            if "workerToken" in schemes:
                assert "401" in op["responses"], (path, method)
            if "requestBody" in op:
                assert {"400", "413"} <= set(op["responses"]), (path, method)


SPEC = {"name": "mine", "title": "T", "description": "d", "labels": ["a", "b"], "label_descriptions": {},
        "context": "c", "style": "s"}
#: Request bodies, accepted and refused ones. (Not here: NUL characters and lone surrogates, refused anywhere
#: in a body before the models run; 1.0 for an integer, which JSON Schema calls an integer and the API refuses.)
BODIES = {
    "StudyCreate": [
        {"name": "s", "kind": "pairwise"}, {"name": "s", "kind": "labeling", "task": "sms_spam", "labels_per_item": 5},
        {"name": "s", "kind": "labeling", "task": SPEC}, {"name": "s", "kind": "labeling", "task": dict(SPEC, title=" ")},
        {"name": "s", "kind": "pairwise", "title": None, "max_per_worker": None}, {"name": "s"}, {"kind": "pairwise"},
        {"name": "s", "kind": "survey"}, {"name": "a b", "kind": "pairwise"}, {"name": "x" * 65, "kind": "pairwise"},
        {"name": "s", "kind": "pairwise", "judgments_per_pair": "4"}, {"name": "s", "kind": "pairwise", "gold_every": 1},
        {"name": "s", "kind": "pairwise", "judgments_per_pair": True}, {"name": "s", "kind": "pairwise", "colour": 1},
        {"name": "s", "kind": "pairwise", "examples_per_task": 21}, {"name": "s", "kind": "labeling", "task": 5},
        {"name": "s", "kind": "labeling", "task": dict(SPEC, data_name="../x")}, ["name"],
    ],
    "ItemsAdd": [
        {"tasks": ["sms_spam", SPEC]}, {"examples": [{"id": 3, "text": "t", "extra": [1]}]}, {"tasks": []},
        {"gold": [{"id": "g", "text": "t", "answer": "ham"}, {"left": "a", "right": "b", "answer": "a"}]},
        {"gold": [{"left": "a", "right": "b", "answer": "a", "text": "t"}]}, {"examples": [{"id": "a b", "text": "t"}]},
        {"examples": [{"id": "a", "text": ""}]}, {"examples": [{"id": "a"}]}, {}, {"tasks": None}, {"colour": []},
        {"examples": "i1"}, {"tasks": [dict(SPEC, colour=1)]},
    ],
    "SessionCreate": [{"worker_id": "w-1"}, {"worker_id": 42}, {"worker_id": "w", "signature": "ab"}, {}, {"worker_id": ""},
                      {"worker_id": -1}, {"worker_id": ["w"]}, {"worker_id": "w" * 129}, {"worker_id": "w", "x": 1}],
    "Answer": [{"label": "ham"}, {"winner": "imdb"}, {"label": ""}, {"label": 1}, {}, {"label": "a", "winner": "b"},
               {"label": None}, {"label": "a", "x": 1}, "ham"],
}


def test_the_document_accepts_exactly_the_bodies_the_server_validates(client):
    """The document's request schemas and the server's checks are the same models: for each body, the
    document's JSON Schema and the server's validation agree on accept or refuse."""
    from jsonschema import Draft202012Validator

    from annotation_server import api_models
    from annotation_server.errors import ApiError
    from annotation_server.validation import validate as server_accepts

    doc = client.get("/api/v1/openapi.json").get_json()
    for name, bodies in BODIES.items():
        document = Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})
        verdicts = set()
        for body in bodies:
            try:
                server_accepts(getattr(api_models, name), body)
                accepted = True
            except ApiError:
                accepted = False
            assert document.is_valid(body) == accepted, (name, body, accepted)
            verdicts.add(accepted)
        assert verdicts == {True, False}, name  # both kinds of body were tried
