"""What the loopback OpenAI stand-in answers with: raw replies, Chat Completions bodies, OpenAI-style
errors, and two responders (canned sentences; a local model)."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from generation.backends.base import ChatRequest
from generation.prompts import Message

@dataclass
class Reply:
    """A raw HTTP reply: status, body (dict -> JSON, str/bytes as is) and extra headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[dict[str, Any]], "dict[str, Any] | Reply"]


def completion_body(model: str, text: str, tokens_in: int, tokens_out: int, finish_reason: str = "stop") -> dict[str, Any]:
    """Return a Chat Completions response body with one choice."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
    }


def error_reply(status: int, message: str, kind: str = "invalid_request_error", headers: dict[str, str] | None = None) -> Reply:
    """Return an OpenAI-style error reply."""
    return Reply(status, {"error": {"message": message, "type": kind, "param": None, "code": None}}, headers or {})


def request_from_body(body: dict[str, Any], default_max_tokens: int = 256) -> ChatRequest:
    """Turn a Chat Completions request body into a ChatRequest; ValueError on a malformed body."""
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ValueError("'messages' must be a non-empty list")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise ValueError(f"messages[{i}] must be an object with a string 'content'")
        messages.append(Message(str(m.get("role")), m["content"]))
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or default_max_tokens
    temperature = body.get("temperature")
    top_p = body.get("top_p")
    seed = body.get("seed")
    return ChatRequest(
        messages=tuple(messages),
        max_tokens=int(max_tokens),
        temperature=1.0 if temperature is None else float(temperature),
        top_p=1.0 if top_p is None else float(top_p),
        seed=None if seed is None else int(seed),
    )


_WORDS = ("amber basil cedar delta ember fjord grove heron iris juniper kestrel lumen maple nectar onyx "
          "pebble quill raven sable thistle umber vale willow yarrow zephyr").split()


class CannedReplies:
    """A responder that answers each request after `latency` seconds with a distinct 9-word
    sentence (a hash of the request), counting prompt tokens as `prompt_tokens` does: an endpoint
    as fast as wanted, for benchmarks and for trying the engine and its rate limits without a model."""

    def __init__(self, latency: float = 0.2):
        self.latency = latency

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(self.latency)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
        text = " ".join(_WORDS[b % len(_WORDS)] for b in digest[:9]).capitalize() + "."
        return completion_body(body.get("model", "canned"), text, prompt_tokens(body), 12)


def local_model_responder(backend: Any, default_max_tokens: int = 256) -> Responder:
    """Return a responder answering with a `LocalBackend` (one generation at a time)."""
    lock = threading.Lock()

    def respond(body: dict[str, Any]) -> dict[str, Any] | Reply:
        try:
            request = request_from_body(body, default_max_tokens)
        except (ValueError, TypeError) as exc:
            return error_reply(400, str(exc))
        with lock:
            (resp,) = backend.complete_sync([request])
        return completion_body(backend.model, resp.text, resp.tokens_in, resp.tokens_out, resp.finish_reason or "stop")

    return respond


def prompt_tokens(body: dict[str, Any]) -> int:
    """The prompt tokens a rate limit charges for a request body: one per 4 characters of its
    messages' contents (OpenAI's rule of thumb), plus 4 per message."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(math.ceil(len(str(m.get("content", ""))) / 4) + 4 for m in messages if isinstance(m, dict))
