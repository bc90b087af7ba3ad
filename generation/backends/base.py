"""The backend interface: chat requests in, responses with token usage out.

A backend answers `await backend.complete(requests)` with one `ChatResponse` per `ChatRequest`, in
order. It raises `RetryableError` for what may pass on a retry (rate limits, 5xx, timeouts,
connection errors, malformed bodies; `retry_after` carries the server's Retry-After),
`BackendAuthError` when the endpoint rejects the credentials (401/403: retrying cannot help), and
`BackendError` for any other request the backend refuses. Retrying is the engine's job.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Sequence

from generation.prompts import Message
from generation.ratelimit import RateLimitHeaders


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to make.

    messages: the conversation to continue. max_tokens, temperature, top_p, seed: sampling
    parameters. sample_index: which sample of these messages this is (identical messages with
    different sample indexes are different requests, e.g. the first turns of two conversations).
    """

    messages: tuple[Message, ...]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    sample_index: int = 0

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError("a chat request needs at least one message")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def parameters(self) -> dict[str, Any]:
        """Return the sampling parameters as a dict (part of the cache key)."""
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}

    def chat_body(self, model: str) -> dict[str, Any]:
        """Return the Chat Completions request body for `model` (seed only when one is set)."""
        body: dict[str, Any] = {
            "model": model,
            "messages": [m.to_dict() for m in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        return body


@dataclass(frozen=True)
class ChatResponse:
    """The model's reply: its text, prompt and completion token counts, why it stopped, whether
    it came from the response cache, and the endpoint's rate-limit headers on it (not cached)."""

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str | None = None
    cached: bool = False
    rate_limit: RateLimitHeaders | None = field(default=None, compare=False, repr=False)


class BackendError(RuntimeError):
    """The backend failed in a way a retry will not fix (e.g. a 400 Bad Request)."""


class RetryableError(BackendError):
    """A failure that may pass on a retry: 429, 5xx, timeout, connection error, malformed body.

    `retry_after`: seconds the server asked us to wait (Retry-After), or None. `status`: HTTP status.
    `rate_limit`: the reply's rate-limit headers, if it had any.
    """

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None,
                 rate_limit: RateLimitHeaders | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.rate_limit = rate_limit


class BackendAuthError(PermissionError):
    """The endpoint rejected the credentials (401/403); the run stops at once."""


class Backend(abc.ABC):
    """A chat model. Subclasses set `name`, `model`, `context_window` and `max_batch`.

    name: "local" or "openai" (recorded in provenance and in cache keys).
    model: the model's name as recorded in provenance and cache keys.
    context_window: tokens the model can attend to (prompt + completion).
    max_batch: how many requests one `complete` call should carry (1: one request per call, the
    engine runs calls concurrently; >1: the backend batches them itself).
    cache_namespace: the backend's identity in response-cache keys (e.g. "openai:<endpoint>").
    concurrent_calls: True when calls made at once are served at once (a remote endpoint): the
    engine then sends a round's likely successors ahead while the round finishes. False for a
    backend computing on this machine, where a request sent for nothing costs real compute.
    """

    name: str = ""
    model: str = ""
    cache_namespace: str = ""
    context_window: int = 4096
    max_batch: int = 1
    concurrent_calls: bool = False

    @abc.abstractmethod
    async def complete(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Return one response per request, in order."""

    @abc.abstractmethod
    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Return the number of prompt tokens `messages` take (exact or a safe over-estimate)."""

    async def aclose(self) -> None:  # noqa: B027 - a no-op default, not an abstract method
        """Release connections or memory; the default does nothing."""
