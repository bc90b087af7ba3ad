"""Fixtures for the export tests: real generated sets, real crowd records, and no network.

- `make_set(task, mode, per_label, ...)`: a set written by the real generation engine (prompts, the
  real `openai` client, parsing, filters, the append-only output and its summary) against the loopback
  OpenAI-compatible server of `generation.openai_server` answering with the generation tests'
  deterministic `ScriptedResponder`; few-shot demonstrations come from the data bundled with subjlab.
- `labeled_study` / `judged_study`: a labeling study over real SMS messages and a pairwise study over
  real registry tasks, built and answered through the server's JSON API on a real SQLite database
  (the server fixtures are the core's, loaded from tests/server/conftest.py as tests/mturk does).
- autouse `no_outside_network`: any connection or name lookup beyond 127.0.0.1 fails the test, so an
  export or a read that tried to reach the Hub would be caught (HF_HUB_OFFLINE=1 is set as well).
"""

from __future__ import annotations

import importlib.util
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from annotation_server.app import get_state
from annotation_server.testing import answer_everything, answer_quality_study


def _load_conftest(area: str):
    name = f"subjlab_tests_{area}_conftest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / area / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_server = _load_conftest("server")
_generation = _load_conftest("generation")

# the core's server fixtures, re-exported
clock = _server.clock
_sqlite_template = _server._sqlite_template
make_app = _server.make_app
api_client = _server.api_client

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def no_outside_network(monkeypatch):
    """Fail on any connection or DNS lookup that is not loopback (the generation fixture's server is)."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo
    attempts: list[Any] = []

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            attempts.append(address)
            raise OSError(f"test: network access to {address} blocked")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK and host is not None:
            attempts.append(host)
            raise socket.gaierror(f"test: name lookup of {host} blocked")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield attempts
    assert not attempts, f"the test tried to reach the network: {attempts}"


@pytest.fixture(scope="module")
def chat_server():
    """The loopback OpenAI-compatible server answering with deterministic 8-word texts."""
    from generation.openai_server import ChatCompletionServer

    server = ChatCompletionServer(_generation.ScriptedResponder(), "127.0.0.1", 0, "scripted").start()
    yield server
    server.stop()


@pytest.fixture
def make_set(chat_server, tmp_path, monkeypatch) -> Callable[..., Path]:
    """`make_set(task, mode, per_label, name=None, **config) -> Path` of a generated set (its summary beside it)."""
    from generation.engine import GenerationConfig, generate

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")

    def make(task: str, mode: str = "zero-shot", per_label: int = 3, name: str | None = None, **config: Any) -> Path:
        out = tmp_path / "sets" / (name or f"{task}.{mode}.jsonl")
        settings = dict(backend="openai", base_url=chat_server.url, model="scripted", cache=False, progress=False,
                        near_duplicate_threshold=None, demo_copy_threshold=None, concurrency=2, seed=3)
        settings.update(config)
        generate(GenerationConfig(task=task, mode=mode, per_label=per_label, **settings), out)
        return out

    return make


@dataclass
class Study:
    """A study built through the API: its database URL and name."""

    db_url: str
    name: str


@pytest.fixture
def labeled_study(make_app, clock, api_client, task_data) -> Study:
    """Labeling study "qc" (annotation_server.testing.answer_quality_study): 6 real SMS messages, 4 labels
    each, gold and attention checks; `careless` answers falsely and `hasty` too fast, so both are flagged."""
    app = make_app(CLOCK=clock)
    answer_quality_study(api_client(app), clock, task_data, "qc")
    return Study(get_state(app).settings.database_url, "qc")


#: Tasks of the pairwise study, most objective first in the steady workers' answers.
PAIR_TASKS = ["fewrel", "sms_spam", "humor"]


@pytest.fixture
def judged_study(make_app, clock, api_client) -> Study:
    """Pairwise study "objectivity" over 3 real registry tasks, 3 judgments per pair: two workers follow
    PAIR_TASKS' order, a third prefers the later task of a pair."""
    app = make_app(CLOCK=clock)
    api = api_client(app)
    assert api.create_study(name="objectivity", kind="pairwise", judgments_per_pair=3).status == 201
    assert api.add_items("objectivity", tasks=PAIR_TASKS).status == 201
    for worker, pick in (("w-1", min), ("w-2", min), ("w-3", max)):
        def choose(a, pick=pick):
            return {"winner": pick(a["left"]["task"], a["right"]["task"], key=PAIR_TASKS.index)}

        assert answer_everything(api, clock, "objectivity", worker, 4.0, choose) == 3
    return Study(get_state(app).settings.database_url, "objectivity")
