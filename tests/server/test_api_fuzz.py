"""Property-based fuzzing of the JSON API from its own OpenAPI document (schemathesis + hypothesis).

Every operation served at /api/v1/openapi.json gets a bounded number of generated requests (valid and
invalid bodies, parameters, strange strings) on a fresh SQLite app, with the admin token on admin
operations and a real worker token on worker ones. Each reply must not be a 5xx, must use a documented
status, and must match the documented schema. What was covered (requests and statuses per operation)
is printed at the end of the module.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

#: Generated requests per operation: small enough for the default test run (the module takes seconds).
EXAMPLES_PER_OPERATION = 20

_covered: dict[str, Counter] = defaultdict(Counter)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory, task_data):
    """A fresh app with a labeling study, a worker session holding a lease, and the worker's token."""
    from annotation_server.app import create_app, get_state
    from annotation_server.schema import upgrade

    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    upgrade(f"sqlite:///{path}")
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "ADMIN_TOKEN": "fuzz-admin", "DATA_DIR": str(task_data),
                      "INSTANCE_PATH": str(path.parent / "instance")})
    client = app.test_client()
    admin = {"Authorization": "Bearer fuzz-admin"}
    assert client.post("/api/v1/studies", json={"name": "fuzz", "kind": "labeling", "task": "sms_spam"},
                       headers=admin).status_code == 201
    assert client.post("/api/v1/studies/fuzz/items", headers=admin,
                       json={"examples": [{"id": f"i{i}", "text": f"message {i}"} for i in range(50)]}).status_code == 201
    token = client.post("/api/v1/studies/fuzz/sessions", json={"worker_id": "fuzzer"}).get_json()["token"]
    held = client.get("/api/v1/studies/fuzz/next", headers={"Authorization": f"Bearer {token}"})
    assert held.status_code == 200
    yield app, token, held.get_json()["assignment"]
    get_state(app).dispose()


@pytest.fixture(scope="module")
def api_schema(fuzz_target):
    app = fuzz_target[0]
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def _report_coverage(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not _covered:
        return
    with capture.global_and_fixture_disabled():
        _print_coverage(reporter)


def _print_coverage(reporter) -> None:
    reporter.write_line("")
    reporter.write_line(f"API fuzzing: {sum(sum(c.values()) for c in _covered.values())} requests over "
                        f"{len(_covered)} operations")
    for operation, statuses in sorted(_covered.items()):
        shown = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        reporter.write_line(f"  {operation:<40} {shown}")


def _operations() -> list[tuple[str, str]]:
    from annotation_server.openapi import openapi_document

    return [(method.upper(), path) for path, ops in openapi_document()["paths"].items() for method in ops]


@pytest.mark.parametrize("method, path", _operations(), ids=[f"{m} {p}" for m, p in _operations()])
def test_every_operation_answers_generated_requests_without_a_5xx_and_as_documented(method, path, api_schema,
                                                                                      fuzz_target):
    _, worker_token, handle = fuzz_target
    operation = api_schema[path][method]
    schemes = {name for requirement in (operation.definition.raw.get("security") or []) for name in requirement}
    auth = {}
    if "adminToken" in schemes:
        auth["Authorization"] = "Bearer fuzz-admin"
    elif "workerToken" in schemes:
        auth["Authorization"] = f"Bearer {worker_token}"

    def known(case, use_known: bool):
        """Half the cases name the real study (and the worker's real lease), so the fuzzing gets past 404
        (not for `close`, which would end the study for the operations after it)."""
        if use_known and case.path_parameters and (method, path) != ("POST", "/studies/{name}/close"):
            if "name" in case.path_parameters:
                case.path_parameters["name"] = "fuzz"
            if "handle" in case.path_parameters:
                case.path_parameters["handle"] = handle
        return case

    @given(case=st.tuples(operation.as_strategy(), st.booleans()).map(lambda pair: known(*pair)))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        headers = {**(case.headers or {}), **auth}
        response = case.call_and_validate(headers=headers, checks=[not_a_server_error, status_code_conformance,
                                                                   response_schema_conformance])
        _covered[f"{method} {path}"][response.status_code] += 1

    fuzz()
