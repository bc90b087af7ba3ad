"""Fixtures for the crowd-platform tests.

The server fixtures (`make_app`, `app`, `clock`, `api_client`, PostgreSQL) are the core's, loaded from
tests/server/conftest.py and re-exported here. On top of them:

- `spam_study(app)`: a labeling study over REAL SMS-spam test messages (with their true labels kept in
  `extra`), three gold items (one an attention check) from other real messages, 3 labels per item,
  2 units per worker, an attention check every 2nd unit.
- `stubbed_mturk()`: a REAL boto3 `mturk` client on the sandbox endpoint with botocore's Stubber attached,
  wrapped in our `MTurk` (retry sleeps recorded, not slept). Every test asserts the stub was used up.
- `mturk_standin`: a loopback HTTP server speaking the MTurk JSON protocol (X-Amz-Target), answering
  from canned replies and recording every request, for the CLI tests (real botocore over real HTTP).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

_spec = importlib.util.spec_from_file_location("subjlab_tests_server_conftest",
                                               Path(__file__).resolve().parents[1] / "server" / "conftest.py")
_server = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _server
_spec.loader.exec_module(_server)

# the core's fixtures (CONTRACT.md), re-exported
ADMIN = _server.ADMIN
clock = _server.clock
admin_token = _server.admin_token
pg_server = _server.pg_server
pg_url = _server.pg_url
_sqlite_template = _server._sqlite_template
_pg_template = _server._pg_template
make_app = _server.make_app
app = _server.app
client = _server.client
backend = _server.backend
db_app = _server.db_app
api_client = _server.api_client

SPAM_ITEMS = 6


@dataclass
class SpamStudy:
    """The real-data labeling study: its name, items (id -> true label) and gold keys (key -> answer)."""

    name: str
    truth: dict[str, str]
    gold: dict[str, str]
    texts: dict[str, str]
    gold_texts: dict[str, str] = field(default_factory=dict)

    def answer_for(self, text: str) -> str:
        """The true label of a shown text (item or gold)."""
        for key, t in self.texts.items():
            if t == text:
                return self.truth[key]
        for key, t in self.gold_texts.items():
            if t == text:
                return self.gold[key]
        raise KeyError(text[:60])


def create_spam_study(app_, name: str = "spam", max_per_worker: int | None = 2, gold_every: int | None = 2,
                      labels_per_item: int = 3) -> SpamStudy:
    """Create a labeling study over real sms_spam test messages (see the module doc)."""
    from annotation_server import studies
    from annotation_server.app import get_state
    from annotation_server.db import session_scope
    from subjlab.data import load_split
    from subjlab.records import Example
    from subjlab.tasks import REGISTRY

    task = REGISTRY["sms_spam"]
    rows = load_split(task, "test", app_.config["DATA_DIR"], limit_per_label=5, seed=7)
    by_label: dict[str, list] = {}
    for ex in rows:
        by_label.setdefault(ex.label, []).append(ex)
    items = by_label["ham"][:3] + by_label["spam"][:3]
    golds = [by_label["ham"][3], by_label["spam"][3], by_label["ham"][4]]
    gold_entries = [{"id": f"gold-{g.id}", "text": g.text, "answer": g.label} for g in golds[:2]]
    gold_entries.append({"id": f"attention-{golds[2].id}", "text": golds[2].text, "answer": golds[2].label})
    with session_scope(get_state(app_).engine) as db:
        study = studies.create_study(db, name, "labeling", task=task, labels_per_item=labels_per_item,
                                     max_per_worker=max_per_worker, gold_every=gold_every)
        studies.add_examples(db, study, [Example(id=e.id, text=e.text, label=e.label) for e in items])
        studies.add_gold(db, study, gold_entries)
    return SpamStudy(name=name, truth={e.id: e.label for e in items}, gold={g["id"]: g["answer"] for g in gold_entries},
                     texts={e.id: e.text for e in items}, gold_texts={g["id"]: g["text"] for g in gold_entries})


@pytest.fixture
def make_spam_study() -> Callable[..., SpamStudy]:
    """`make_spam_study(app, name="spam", max_per_worker=2, gold_every=2, labels_per_item=3)` -> SpamStudy."""
    return create_spam_study


@pytest.fixture
def spam_study(app) -> SpamStudy:
    """The real-data labeling study "spam" on the `app` fixture's database."""
    return create_spam_study(app)


def answer_all(client_, study: SpamStudy, worker_id: str, correct: bool | Callable[[str], bool] = True,
               token: str | None = None) -> list[tuple[str, str]]:
    """Work through the study as `worker_id` over the JSON API (a new session unless `token` is given),
    answering truly (or falsely: the other label) until the server has nothing left; return
    [(shown text, answer)]."""
    if token is None:
        r = client_.post(f"/api/v1/studies/{study.name}/sessions", json={"worker_id": worker_id})
        assert r.status_code == 201, r.get_data(as_text=True)
        token = r.json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    done = []
    while True:
        r = client_.get(f"/api/v1/studies/{study.name}/next", headers=headers)
        if r.status_code == 204:
            return done
        assert r.status_code == 200, r.get_data(as_text=True)
        text = r.json["item"]["text"]
        truth = study.answer_for(text)
        right = correct(text) if callable(correct) else correct
        label = truth if right else ("spam" if truth == "ham" else "ham")
        assert client_.post(f"/api/v1/assignments/{r.json['assignment']}", json={"label": label},
                            headers=headers).status_code == 201
        done.append((text, label))


def enter_mturk(client_, study: str, hit_id: str, assignment_id: str, worker_id: str) -> str:
    """Open the MTurk entry page as MTurk does for an accepted assignment; return the page's worker token."""
    import re
    from urllib.parse import urlencode

    query = urlencode({"assignmentId": assignment_id, "hitId": hit_id, "workerId": worker_id,
                       "turkSubmitTo": "https://www.mturk.com"})
    page = client_.get(f"/mturk/{study}?{query}").get_data(as_text=True)
    return re.search(r'<meta name="subjlab-worker-token" content="([^"]+)">', page).group(1)


@pytest.fixture
def mturk_entry() -> Callable[..., str]:
    """`mturk_entry(test_client, study, hit_id, assignment_id, worker_id)` -> the worker token of the entry page."""
    return enter_mturk


@pytest.fixture
def work_through() -> Callable[..., list[tuple[str, str]]]:
    """`work_through(test_client, spam_study, worker_id, correct=True, token=None)`: see `answer_all`."""
    return answer_all


@pytest.fixture
def publish_one(hit_response) -> Callable[..., str]:
    """`publish_one(app, stubbed, study="spam")`: publish one sandbox HIT through the stub; return its HIT id."""
    from decimal import Decimal

    def run(app_, stubbed: "Stubbed", study: str = "spam", hit_id: str = "3HIT00000000000000000000000000",
            qual: str = "3QUALIFICATION0000000000000001") -> str:
        from annotation_server.app import get_state
        from annotation_server.db import session_scope
        from annotation_server.mturk import publish as pub
        from annotation_server.studies import get_study

        spec = pub.HitSpec(title="Is this SMS spam?", description="Label short messages", reward=Decimal("0.50"),
                           assignments=3, duration_seconds=1800, lifetime_seconds=86400)
        with session_scope(get_state(app_).engine) as db:
            s = get_study(db, study)
            stubbed.stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": qual}})
            stubbed.stub.add_response("create_hit", hit_response(hit_id),
                                      pub.hit_params(s, spec, f"https://study.example.org/mturk/{study}", 0, "sandbox", qual))
            pub.publish(db, stubbed.mturk, study, "https://study.example.org", 1, spec)
        return hit_id

    return run


# ----------------------------------------------------------------------------------------- MTurk stubs
@dataclass
class Stubbed:
    """A stubbed MTurk client: `mturk` (our wrapper), `stub` (botocore Stubber), `sleeps` (retry delays)."""

    mturk: Any
    stub: Any
    sleeps: list[float]


@pytest.fixture
def stubbed_mturk(monkeypatch) -> Iterator[Callable[..., Stubbed]]:
    """Factory `stubbed_mturk(live=False)` -> Stubbed; every created Stubber must be used up at the end."""
    import random

    import boto3
    from botocore.stub import Stubber

    from annotation_server.mturk.client import MTurk, make_boto_client, resolve_endpoint

    for var in ("AWS_ENDPOINT_URL_MTURK", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    made: list[Stubbed] = []

    def factory(live: bool = False) -> Stubbed:
        endpoint = resolve_endpoint(live=live)
        session = boto3.session.Session(aws_access_key_id="AKIDSTUBBED", aws_secret_access_key="stubbed-secret",
                                        region_name="us-east-1")
        client = make_boto_client(endpoint, session=session)
        stub = Stubber(client)
        stub.activate()
        sleeps: list[float] = []
        s = Stubbed(MTurk(client, endpoint, sleep=sleeps.append, rng=random.Random(0)), stub, sleeps)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.stub.assert_no_pending_responses()
        s.stub.deactivate()


def make_hit_response(hit_id: str, hit_type: str = "3TYPE0000000000000000000000000", status: str = "Assignable") -> dict:
    """A create_hit / get_hit reply."""
    return {"HIT": {"HITId": hit_id, "HITTypeId": hit_type, "HITGroupId": "3GROUP000000000000000000000000",
                    "HITStatus": status, "MaxAssignments": 3, "NumberOfAssignmentsAvailable": 3,
                    "NumberOfAssignmentsPending": 0, "NumberOfAssignmentsCompleted": 0,
                    "Expiration": datetime(2030, 1, 1, tzinfo=timezone.utc)}}


@pytest.fixture
def hit_response() -> Callable[..., dict]:
    """`hit_response(hit_id, hit_type=..., status=...)` -> a create_hit / get_hit reply."""
    return make_hit_response


# ----------------------------------------------------------------------------------------- stand-in server
@dataclass
class StandIn:
    """A loopback stand-in of the MTurk API: `url`, `requests` [(operation, body)], `replies` {operation: fn(body)}."""

    url: str
    requests: list[tuple[str, dict]]
    replies: dict[str, Callable[[dict], tuple[int, dict]]]

    def calls(self, operation: str) -> list[dict]:
        """The bodies of the requests for one operation."""
        return [body for op, body in self.requests if op == operation]


@pytest.fixture
def mturk_standin() -> Iterator[StandIn]:
    """Start the stand-in on 127.0.0.1 (a free port); stop it after the test."""
    standin = StandIn(url="", requests=[], replies={})

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            target = self.headers.get("X-Amz-Target", "")
            operation = target.rsplit(".", 1)[-1]
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            standin.requests.append((operation, body))
            reply = standin.replies.get(operation)
            status, payload = reply(body) if reply else (400, {"__type": "RequestError", "message": f"no reply for {operation}"})
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    standin.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def aws_test_credentials(monkeypatch, tmp_path) -> None:
    """Throwaway credentials through the standard chain (environment), isolated from ~/.aws."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTONLY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-only-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for var in ("AWS_ENDPOINT_URL_MTURK", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
