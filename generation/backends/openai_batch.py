"""The `openai-batch` backend: the OpenAI Batch API (half the price of synchronous calls, results
within the completion window, usually much sooner).

One `complete(requests)` call is one batch: the requests are written as a JSONL batch file
(`{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}` per line), uploaded
(`files.create(purpose="batch")`), submitted (`batches.create`), polled every `poll_interval`
seconds until it ends, and its output file is read back into responses in request order. Lines that
failed (error file, or missing from an expired batch) are resubmitted in a follow-up batch, up to
`max_resubmits` times. The engine sends each round as one batch, so a zero-shot run takes one
batch per conversation turn, a few-shot run one batch per round (`--conversations` requests).

Resuming: the id of each submitted batch is stored under the hash of its batch file in
`state_path` (default `cache_dir()/generation/batches.json`). If the process dies while a batch is
running, re-running the same command rebuilds the same batch file, finds the batch id and waits for
that batch instead of paying for a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Sequence

from generation.backends.base import BackendError, ChatRequest, ChatResponse, RetryableError
from generation.backends.openai_backend import OpenAIBackend, _message
from subjlab.atomic import write_json_atomic
from subjlab.packaged_models import cache_dir

ENDPOINT = "/v1/chat/completions"
_FINAL = ("completed", "failed", "expired", "cancelled")


def default_state_path() -> Path:
    """Return where submitted batch ids are remembered: `cache_dir()/generation/batches.json`."""
    return cache_dir() / "generation" / "batches.json"


class _BatchState:
    """A small JSON map from batch-file hash to batch id, rewritten atomically on each change."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: unreadable batch state ({exc}); delete it to forget running batches") from exc
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._read().get(key)

    def _write(self, data: dict[str, str]) -> None:
        write_json_atomic(self.path, data, indent=1)

    def set(self, key: str, batch_id: str | None) -> None:
        with self._lock:
            data = self._read()
            if batch_id is None:
                data.pop(key, None)
            else:
                data[key] = batch_id
            self._write(data)


class OpenAIBatchBackend(OpenAIBackend):
    """Chat Completions through the Batch API of an OpenAI-compatible endpoint."""

    name = "openai-batch"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        context_window: int | None = None,
        poll_interval: float = 30.0,
        max_batch: int = 50_000,
        max_resubmits: int = 3,
        state_path: str | Path | None = None,
    ):
        super().__init__(model=model, base_url=base_url, api_key=api_key, timeout=timeout, context_window=context_window)
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval}")
        self.poll_interval = poll_interval
        self.max_batch = max_batch
        self.max_resubmits = max_resubmits
        self.state = _BatchState(Path(state_path) if state_path is not None else default_state_path())
        # Same model, same answers: share the synchronous backend's cache entries.
        self.cache_namespace = f"openai:{self.endpoint}"
        self.batches_submitted = 0

    def batch_file(self, requests: Sequence[ChatRequest]) -> bytes:
        """Return the JSONL batch file for `requests` (custom ids r0, r1, ... in order)."""
        lines = []
        for i, req in enumerate(requests):
            body = req.chat_body(self.model)
            lines.append(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": ENDPOINT, "body": body}, ensure_ascii=False))
        return ("\n".join(lines) + "\n").encode("utf-8")

    async def complete(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Run `requests` as one batch (plus follow-up batches for failed lines); responses in order."""
        results: dict[int, ChatResponse] = {}
        pending = list(range(len(requests)))
        last_error = ""
        for _ in range(self.max_resubmits + 1):
            got, last_error = await self._run_batch([requests[i] for i in pending])
            results.update({pending[j]: resp for j, resp in got.items()})
            pending = [i for i in range(len(requests)) if i not in results]
            if not pending:
                return [results[i] for i in range(len(requests))]
        raise BackendError(f"{len(pending)} of {len(requests)} batch requests still failed after "
                           f"{self.max_resubmits} resubmissions: {last_error}")

    async def _run_batch(self, requests: list[ChatRequest]) -> tuple[dict[int, ChatResponse], str]:
        import openai

        content = self.batch_file(requests)
        key = hashlib.sha256(self.endpoint.encode() + b"\0" + content).hexdigest()
        try:
            batch = None
            known = self.state.get(key)
            if known is not None:
                try:
                    batch = await self.client.batches.retrieve(known)
                except openai.NotFoundError:
                    batch = None
                if batch is not None and batch.status in ("failed", "cancelled"):
                    batch = None
            if batch is None:
                upload = await self.client.files.create(file=("batch.jsonl", content, "application/jsonl"), purpose="batch")
                batch = await self.client.batches.create(input_file_id=upload.id, endpoint=ENDPOINT, completion_window="24h")
                self.batches_submitted += 1
                self.state.set(key, batch.id)
            while batch.status not in _FINAL:
                await asyncio.sleep(self.poll_interval)
                batch = await self.client.batches.retrieve(batch.id)
            if batch.status in ("failed", "cancelled"):
                self.state.set(key, None)
                errors = getattr(getattr(batch, "errors", None), "data", None) or []
                detail = "; ".join(str(getattr(e, "message", e)) for e in errors) or "no details"
                raise BackendError(f"{self.endpoint}: batch {batch.id} {batch.status}: {detail}")
            got, error = await self._collect(batch, requests)
            self.state.set(key, None)
            return got, error
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            from generation.backends.base import BackendAuthError

            raise BackendAuthError(f"{self.endpoint} rejected the credentials (HTTP {exc.status_code}): {_message(exc)}") from None
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise RetryableError(f"{self.endpoint}: batch API call failed ({exc})") from None
        except openai.APIStatusError as exc:
            if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                raise RetryableError(f"{self.endpoint}: HTTP {exc.status_code}: {_message(exc)}", None, exc.status_code) from None
            raise BackendError(f"{self.endpoint}: HTTP {exc.status_code}: {_message(exc)}") from None

    async def _collect(self, batch: Any, requests: list[ChatRequest]) -> tuple[dict[int, ChatResponse], str]:
        got: dict[int, ChatResponse] = {}
        last_error = ""
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            data = await self.client.files.content(file_id)
            for line in data.text.splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                index = int(str(row.get("custom_id", "r-1"))[1:])
                response = row.get("response") or {}
                body = response.get("body")
                if not 0 <= index < len(requests):
                    continue
                if response.get("status_code") != 200 or not isinstance(body, dict):
                    last_error = f"HTTP {response.get('status_code')}: {json.dumps(body)[:200] if body else row.get('error')}"
                    continue
                try:
                    got[index] = self._to_response(body, requests[index])
                except RetryableError as exc:
                    last_error = str(exc)
        if len(got) < len(requests) and not last_error:
            last_error = f"batch {batch.id} ended {batch.status} without {len(requests) - len(got)} result(s)"
        return got, last_error
