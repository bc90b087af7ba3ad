"""The `openai` backend: any OpenAI-compatible Chat Completions endpoint via the official async client.

OpenAI itself, vLLM, Ollama, a llama.cpp server or `python -m generation.openai_server` all work:
point `base_url` at the endpoint (…/v1). The API key comes from `api_key`, else $OPENAI_API_KEY;
the base URL from `base_url`, else $OPENAI_BASE_URL, else OpenAI. Servers that need no key
(vLLM, Ollama) get the placeholder "EMPTY" when a base URL is set and no key is.

The client's own retries are off (`max_retries=0`; by default it would retry 408/409/429/5xx and
connection errors twice itself, honouring Retry-After, so the engine's limiter would never see those
429s): the engine retries, through its adaptive limiter (`generation.limiter`), what this backend
reports as `RetryableError` (429, 408/409, 5xx, timeouts, connection errors, malformed bodies),
honouring the server's Retry-After; 401/403 raise `BackendAuthError`. Every reply's rate-limit
headers (`x-ratelimit-*`, `retry-after(-ms)`, read by `generation.ratelimit`) ride along on the
`ChatResponse` or the `RetryableError` (`rate_limit`).
"""

from __future__ import annotations

import asyncio
import math
import os
from typing import Any, Sequence

import httpx

from generation.backends.base import (
    Backend,
    BackendAuthError,
    BackendError,
    ChatRequest,
    ChatResponse,
    RetryableError,
)
from generation.prompts import Message
from generation.ratelimit import parse_retry_after, read_rate_limit

__all__ = ["DEFAULT_OPENAI_MODEL", "OpenAIBackend", "estimate_tokens", "parse_retry_after"]

DEFAULT_OPENAI_MODEL = "gpt-3.5-turbo"
_CHAT_PATH = "/chat/completions"
#: Context window assumed for OpenAI-compatible models unless told (gpt-3.5-turbo's).
DEFAULT_CONTEXT_WINDOW = 16385


def estimate_tokens(messages: Sequence[Message]) -> int:
    """Over-estimate the prompt tokens of `messages` without a tokenizer: one token per 3 characters
    (English averages about 4) plus 4 per message and 3 for the reply's priming."""
    return sum(math.ceil(len(m.content) / 3) + 4 for m in messages) + 3


class OpenAIBackend(Backend):
    """Chat Completions through `openai.AsyncOpenAI`."""

    name = "openai"
    concurrent_calls = True

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        context_window: int | None = None,
    ):
        from openai import AsyncOpenAI

        self.model = model or DEFAULT_OPENAI_MODEL
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if self.base_url is None:
                raise ValueError(
                    "no API key for the openai backend: set OPENAI_API_KEY (or pass --api-key), or point "
                    "--base-url at a server that needs none"
                )
            key = "EMPTY"
        if timeout <= 0:
            raise ValueError(f"request timeout must be positive, got {timeout}")
        self.context_window = context_window or DEFAULT_CONTEXT_WINDOW
        self.timeout = timeout
        self.client = AsyncOpenAI(api_key=key, base_url=self.base_url, timeout=timeout, max_retries=0)
        self.endpoint = str(self.client.base_url).rstrip("/")
        self.cache_namespace = f"openai:{self.endpoint}"

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Estimate prompt tokens (no tokenizer for arbitrary endpoints; see `estimate_tokens`)."""
        return estimate_tokens(messages)

    async def complete(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Send the requests concurrently; return their responses in order."""
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def _one(self, request: ChatRequest) -> ChatResponse:
        import openai

        kwargs = request.chat_body(self.model)
        where = self.endpoint
        try:
            # The client's generic `post` (its documented way to call any endpoint) sends the body we
            # built as is, and `cast_to=object` hands back the decoded JSON. `chat.completions.create`
            # would first walk the body against the request's TypedDict annotations and then build a
            # pydantic `ChatCompletion` of the reply; neither changes what is sent or read here, and
            # together they were about half of the client's CPU time per request in
            # bench/generation_throughput.py. Auth, base URL, timeouts and errors are the same.
            # `cast_to=httpx.Response` (the client's documented way to read headers from `post`)
            # hands back the HTTP response itself, for its rate-limit headers; we decode the JSON.
            raw = await self.client.post(_CHAT_PATH, cast_to=httpx.Response, body=kwargs)
            resp = raw.json()
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise BackendAuthError(
                f"{where} rejected the credentials (HTTP {exc.status_code}): {_message(exc)}; "
                "check OPENAI_API_KEY / --api-key"
            ) from None
        except openai.APITimeoutError:
            raise RetryableError(f"{where}: no response within {self.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise RetryableError(f"{where}: connection failed ({exc})") from None
        except openai.APIResponseValidationError as exc:
            raise RetryableError(f"{where}: malformed response body ({exc})") from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            headers = exc.response.headers if exc.response is not None else None
            if status == 429 and getattr(exc, "code", None) == "insufficient_quota":
                raise BackendError(f"{where}: quota exhausted (HTTP 429 insufficient_quota): {_message(exc)}") from None
            if status in (408, 409, 429) or status >= 500:
                raise RetryableError(f"{where}: HTTP {status}: {_message(exc)}", parse_retry_after(headers), status,
                                     read_rate_limit(headers)) from None
            raise BackendError(f"{where}: HTTP {status}: {_message(exc)}") from None
        except (ValueError, TypeError, KeyError) as exc:  # a body the client could not decode
            raise RetryableError(f"{where}: malformed response body ({type(exc).__name__}: {exc})") from None
        return self._to_response(resp, request, raw.headers)

    def _to_response(self, body: Any, request: ChatRequest, headers: Any = None) -> ChatResponse:
        """Read a Chat Completions response body (decoded JSON) into a ChatResponse; raises
        RetryableError for a body without a choice carrying text content."""
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise RetryableError(f"{self.endpoint}: malformed response body (no choices): {str(body)[:200]!r}")
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise RetryableError(f"{self.endpoint}: malformed response body (no message content)")
        usage = body.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        tokens_in = usage.get("prompt_tokens")
        tokens_out = usage.get("completion_tokens")
        if not isinstance(tokens_in, int):
            tokens_in = estimate_tokens(request.messages)
        if not isinstance(tokens_out, int):
            tokens_out = math.ceil(len(content) / 3)
        finish = choices[0].get("finish_reason")
        return ChatResponse(content, tokens_in, tokens_out, finish if isinstance(finish, str) else None,
                            rate_limit=read_rate_limit(headers))

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.client.close()


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", exc))
