"""Fixtures for the generation tests: OpenAI-compatible servers on 127.0.0.1 and the local model.

`ScriptedResponder` answers Chat Completions with deterministic canned texts (a function of the
request body, so the same request always gets the same text), after a fixed latency, and can be
told to fail chosen requests (status codes with headers, slow replies, malformed bodies). It logs
every request and the peak number in flight. The servers are real HTTP servers
(`tests.support.openai_server.ChatCompletionServer`) that the real `openai` client talks to.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any, Callable

import pytest

from tests.support.openai_server import ChatCompletionServer, Reply, completion_body, error_reply

VOCAB = (
    "apple river market cloud signal garden orbit lantern pepper violet canyon harbor meadow rocket "
    "silver thunder copper falcon maple quartz saddle timber velvet willow amber bramble cedar dune"
).split()


def canned_text(body: dict[str, Any]) -> str:
    """A deterministic 8-word sentence for a request body (messages, seed and model)."""
    key = json.dumps({"m": body.get("messages"), "s": body.get("seed"), "model": body.get("model")}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).digest()
    words = [VOCAB[b % len(VOCAB)] for b in digest[:8]]
    return " ".join(words).capitalize() + "."


class ScriptedResponder:
    """Canned completions with a fixed latency; `faults[n]` says how request number n (0-based) fails.

    A fault is one of: ("status", code, headers), ("sleep", seconds), ("malformed",), ("no_choices",),
    ("text", content). `always` applies to every request. `log` holds (arrival time, body) pairs.
    """

    def __init__(self, latency: float = 0.0, faults: dict[int, tuple] | None = None, always: tuple | None = None,
                 text: Callable[[dict[str, Any]], str] = canned_text):
        self.latency = latency
        self.faults = dict(faults or {})
        self.always = always
        self.text = text
        self.log: list[tuple[float, dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return len(self.log)

    def __call__(self, body: dict[str, Any]) -> dict[str, Any] | Reply:
        with self._lock:
            n = len(self.log)
            self.log.append((time.monotonic(), body))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            fault = self.always or self.faults.get(n)
            if self.latency:
                time.sleep(self.latency)
            if fault is not None:
                kind = fault[0]
                if kind == "status":
                    code, headers = fault[1], (fault[2] if len(fault) > 2 else {})
                    return error_reply(code, f"injected HTTP {code}", "server_error" if code >= 500 else "error", headers)
                if kind == "sleep":
                    time.sleep(fault[1])
                elif kind == "malformed":
                    return Reply(200, "this is not JSON {", {"Content-Type": "application/json"})
                elif kind == "no_choices":
                    return Reply(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []})
                elif kind == "text":
                    return completion_body(body.get("model", "m"), fault[1], 10, 5)
            text = self.text(body)
            return completion_body(body.get("model", "m"), text, 20, len(text.split()))
        finally:
            with self._lock:
                self.in_flight -= 1


@pytest.fixture(name="canned_text")
def canned_text_fixture():
    """The default reply function of `ScriptedResponder` (for responders built on it)."""
    return canned_text


@pytest.fixture
def scripted():
    """Make a `ScriptedResponder`: `scripted(latency=..., faults=..., always=..., text=...)`."""
    return ScriptedResponder


@pytest.fixture
def serve():
    """Start servers for a test: `serve(responder) -> ChatCompletionServer` (stopped afterwards)."""
    servers: list[ChatCompletionServer] = []

    def start(responder, model_name: str = "scripted") -> ChatCompletionServer:
        server = ChatCompletionServer(responder, "127.0.0.1", 0, model_name).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def _api_key(monkeypatch):
    """The loopback servers need no key; the openai client needs some value."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture(scope="session")
def local_backend():
    """The packaged SmolLM2-135M-Instruct, loaded once per session (converted once, cached in
    `subjlab.packaged_models.cache_dir()/models`, reused by later sessions). One torch thread while it
    generates: on a CPU shared with other jobs, oversubscribed OpenMP threads run ~10x slower."""
    from generation.backends.local import LocalBackend

    return LocalBackend(batch_size=4, threads=1)
