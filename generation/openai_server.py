"""A small OpenAI-compatible HTTP server: Chat Completions, and the Files + Batches endpoints the
OpenAI Batch API uses.

Routes: `POST /v1/chat/completions`, `GET /v1/models`, `POST /v1/files` (multipart upload),
`GET /v1/files/{id}`, `GET /v1/files/{id}/content`, `POST /v1/batches`, `GET /v1/batches/{id}`.
A batch is processed in a background thread, line by line through the same responder; answers go
to an output file, failed lines (non-200 replies) to an error file, as OpenAI does.

It serves a local model (`LocalBackend`, by default the packaged SmolLM2-135M-Instruct) so that any
OpenAI client - `subjlab generate --backend openai`, other tools - can use it, and it is the
loopback server the tests and benchmarks talk to. What answers a request is a *responder*: a
function from the parsed request body to either a response body (dict) or a `Reply` (any status,
body and headers, e.g. for fault injection). `RateLimit` wraps a responder in OpenAI's request and
token rate limits (token buckets, 429s with Retry-After, `x-ratelimit-*` headers, 429 storms).

    python -m generation.openai_server --port 8000           # serves SmolLM2 on 127.0.0.1:8000
    python -m generation.openai_server --canned 0.2 --requests-per-s 8   # no model; OpenAI's 429s
    OPENAI_API_KEY=none subjlab generate --backend openai --base-url http://127.0.0.1:8000/v1 \\
        --model SmolLM2-135M-Instruct-Q4_1 --task sms_spam --per-label 5 --out spam.jsonl

Requests are served by threads; the local model answers one request at a time. Binds to
127.0.0.1 unless told otherwise. (Over 450 lines: one concern, the stand-in endpoint - chat, Batch
API, rate limits - kept in one self-contained file so that it can move as one piece.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def format_duration(seconds: float) -> str:
    """Seconds in OpenAI's reset format: "20ms", "1.5s", "6m0s"."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60.0)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{rest_text}" if minutes else rest_text


class _Bucket:
    """A token bucket: `capacity` units, refilled at `rate` units per second."""

    def __init__(self, rate: float, capacity: float, now: float):
        self.rate, self.capacity, self.level, self.at = rate, capacity, capacity, now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + self.rate * (now - self.at))
        self.at = now

    def wait(self, cost: float) -> float:
        """Seconds until `cost` units are in the bucket (0 when they are now)."""
        return max(0.0, (min(cost, self.capacity) - self.level) / self.rate)

    def headers(self, kind: str) -> dict[str, str]:
        return {f"x-ratelimit-limit-{kind}": str(int(self.capacity)),
                f"x-ratelimit-remaining-{kind}": str(max(0, int(self.level))),
                f"x-ratelimit-reset-{kind}": format_duration((self.capacity - self.level) / self.rate)}


class RateLimit:
    """A responder behind OpenAI-style rate limits: `requests_per_s` requests and `tokens_per_min`
    tokens (prompt tokens as `prompt_tokens` counts them plus `max_tokens`, charged when a request
    is admitted), each a token bucket holding `burst_s` seconds of its rate. A request over either
    limit gets 429 at once, with `retry-after` (whole seconds until enough is back, as OpenAI
    sends it; also `retry-after-ms` if `retry_after_ms`) and the `x-ratelimit-*` headers, or, for a
    share `bare_share` of them (seeded), no headers at all.
    Admitted replies carry the `x-ratelimit-*` headers too, unless `headers=False` (as vLLM,
    Ollama). `storm(start, end)`: every request between those `time.monotonic()` times gets 429
    (Retry-After 1 s, or none for the bare share). Thread-safe; counts in `admitted`,
    `rejected`, `tokens_charged`; `log` holds (time, status) per request.
    """

    def __init__(self, responder: "Responder", requests_per_s: float, tokens_per_min: float | None = None,
                 burst_s: float = 1.0, headers: bool = True, bare_share: float = 0.0, retry_after_ms: bool = False,
                 seed: int = 0):
        if requests_per_s <= 0 or (tokens_per_min is not None and tokens_per_min <= 0) or burst_s <= 0:
            raise ValueError("rate limits and burst must be positive")
        now = time.monotonic()
        self.responder = responder
        self.requests = _Bucket(requests_per_s, max(1.0, requests_per_s * burst_s), now)
        self.tokens = None if tokens_per_min is None else _Bucket(tokens_per_min / 60.0, tokens_per_min / 60.0 * burst_s, now)
        self.headers = headers
        self.bare_share = bare_share
        self.retry_after_ms = retry_after_ms
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._storms: list[tuple[float, float]] = []
        self.admitted = 0
        self.rejected = 0
        self.tokens_charged = 0
        self.log: list[tuple[float, int]] = []

    def storm(self, start: float, end: float) -> None:
        """Answer every request between `start` and `end` (`time.monotonic()`) with 429."""
        with self._lock:
            self._storms.append((start, end))

    def _budget_headers(self) -> dict[str, str]:
        if not self.headers:
            return {}
        out = self.requests.headers("requests")
        if self.tokens is not None:
            out.update(self.tokens.headers("tokens"))
        return out

    def _admit(self, cost: int) -> Reply | dict[str, str]:
        """Charge the buckets and return the headers of the reply, or the 429 (under the lock)."""
        now = time.monotonic()
        self.requests.refill(now)
        if self.tokens is not None:
            self.tokens.refill(now)
        storm = any(start <= now < end for start, end in self._storms)
        wait = 1.0 if storm else max(self.requests.wait(1), self.tokens.wait(cost) if self.tokens else 0.0)
        if wait > 0:
            self.rejected += 1
            self.log.append((now, 429))
            bare = self._rng.random() < self.bare_share
            headers = {} if bare else {"retry-after": str(math.ceil(wait)), **self._budget_headers()}
            if self.retry_after_ms and not bare:
                headers["retry-after-ms"] = str(math.ceil(wait * 1000))
            which = "a 429 storm" if storm else "requests" if self.requests.wait(1) > 0 else "tokens"
            return Reply(429, {"error": {"message": f"Rate limit reached ({which}); try again later", "type": which,
                                         "param": None, "code": "rate_limit_exceeded"}}, headers)
        self.requests.level -= 1
        if self.tokens is not None:
            self.tokens.level -= cost
        self.admitted += 1
        self.tokens_charged += cost
        self.log.append((now, 200))
        return self._budget_headers()

    def __call__(self, body: dict[str, Any]) -> dict[str, Any] | Reply:
        cost = prompt_tokens(body) + int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        with self._lock:
            admitted = self._admit(cost)
        if isinstance(admitted, Reply):
            return admitted
        out = self.responder(body)
        reply = out if isinstance(out, Reply) else Reply(200, out)
        return Reply(reply.status, reply.body, {**admitted, **reply.headers})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stalls
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, reply: Reply) -> None:
        body = reply.body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode("utf-8")
            ctype = "application/json"
        elif isinstance(body, str):
            data, ctype = body.encode("utf-8"), "text/plain; charset=utf-8"
        elif isinstance(body, bytes):
            data, ctype = body, "application/octet-stream"
        else:
            data, ctype = b"", "text/plain"
        self.send_response(reply.status)
        headers = {"Content-Type": ctype, **reply.headers}
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.rstrip("/")
        parts = path.split("/")
        store = self.server.store
        if path == "/v1/models":
            self._send(Reply(200, {"object": "list", "data": [{"id": self.server.model_name, "object": "model"}]}))
        elif len(parts) == 4 and parts[2] == "files":
            meta = store.file_meta(parts[3])
            self._send(Reply(200, meta) if meta else error_reply(404, f"no file {parts[3]}"))
        elif len(parts) == 5 and parts[2] == "files" and parts[4] == "content":
            data = store.file_data(parts[3])
            self._send(Reply(200, data) if data is not None else error_reply(404, f"no file {parts[3]}"))
        elif len(parts) == 4 and parts[2] == "batches":
            batch = store.batch(parts[3])
            self._send(Reply(200, batch) if batch else error_reply(404, f"no batch {parts[3]}"))
        else:
            self._send(error_reply(404, f"no route {self.path}"))

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        path = self.path.rstrip("/")
        if path == "/v1/files":
            self._send(self.server.store.upload(self.headers.get("Content-Type", ""), raw))
            return
        if path == "/v1/batches":
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                self._send(error_reply(400, f"invalid JSON body: {exc}"))
                return
            self._send(self.server.store.create_batch(body, self.server.responder))
            return
        if path != "/v1/chat/completions":
            self._send(error_reply(404, f"no route {self.path}"))
            return
        try:
            body = json.loads(raw.decode("utf-8"))
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            self._send(error_reply(400, f"invalid JSON body: {exc}"))
            return
        try:
            out = self.server.responder(body)
        except Exception as exc:  # a responder bug must not kill the server: answer 500
            self._send(error_reply(500, f"{type(exc).__name__}: {exc}", "server_error"))
            return
        self._send(out if isinstance(out, Reply) else Reply(200, out))


class BatchStore:
    """In-memory files and batches for the Batch API endpoints (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._batches: dict[str, dict[str, Any]] = {}

    def _add_file(self, name: str, purpose: str, data: bytes) -> dict[str, Any]:
        meta = {"id": f"file-{uuid.uuid4().hex[:24]}", "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": name, "purpose": purpose, "status": "processed"}
        with self._lock:
            self._files[meta["id"]] = (meta, data)
        return meta

    def file_meta(self, file_id: str) -> dict[str, Any] | None:
        """Return a file object, or None."""
        with self._lock:
            entry = self._files.get(file_id)
        return entry[0] if entry else None

    def file_data(self, file_id: str) -> bytes | None:
        """Return a file's content, or None."""
        with self._lock:
            entry = self._files.get(file_id)
        return entry[1] if entry else None

    def upload(self, content_type: str, raw: bytes) -> Reply:
        """Store a multipart/form-data upload (fields `purpose` and `file`)."""
        from email.parser import BytesParser
        from email.policy import HTTP

        if not content_type.startswith("multipart/form-data"):
            return error_reply(400, "file uploads must be multipart/form-data")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
        if "file" not in fields or "purpose" not in fields:
            return error_reply(400, "an upload needs the fields 'file' and 'purpose'")
        filename, data = fields["file"]
        return Reply(200, self._add_file(filename or "upload.jsonl", fields["purpose"][1].decode(), data))

    def batches(self) -> list[dict[str, Any]]:
        """Return copies of all batch objects, oldest first."""
        with self._lock:
            return [dict(b) for b in self._batches.values()]

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        """Return a batch object (a copy), or None."""
        with self._lock:
            b = self._batches.get(batch_id)
            return dict(b) if b else None

    def create_batch(self, body: dict[str, Any], responder: Responder) -> Reply:
        """Create a batch over an uploaded JSONL file and process it in a background thread."""
        data = self.file_data(str(body.get("input_file_id")))
        if data is None:
            return error_reply(400, f"no input file {body.get('input_file_id')!r}")
        if body.get("endpoint") != "/v1/chat/completions":
            return error_reply(400, "only /v1/chat/completions batches are supported")
        batch = {"id": f"batch_{uuid.uuid4().hex[:24]}", "object": "batch", "endpoint": body["endpoint"],
                 "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window", "24h"),
                 "status": "validating", "created_at": int(time.time()), "output_file_id": None, "error_file_id": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}}
        with self._lock:
            self._batches[batch["id"]] = batch
        threading.Thread(target=self._process, args=(batch["id"], data, responder), daemon=True).start()
        return Reply(200, dict(batch))

    def _set(self, batch_id: str, **changes: Any) -> None:
        with self._lock:
            self._batches[batch_id].update(changes)

    def _process(self, batch_id: str, data: bytes, responder: Responder) -> None:
        try:
            lines = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        except (UnicodeDecodeError, ValueError) as exc:
            self._set(batch_id, status="failed", failed_at=int(time.time()),
                      errors={"object": "list", "data": [{"code": "invalid_jsonl", "message": str(exc)}]})
            return
        total = len(lines)
        self._set(batch_id, status="in_progress", in_progress_at=int(time.time()),
                  request_counts={"total": total, "completed": 0, "failed": 0})
        done, failed = [], []
        for line in lines:
            try:
                out = responder(line.get("body") or {})
            except Exception as exc:  # one bad line must not sink the batch
                out = error_reply(500, f"{type(exc).__name__}: {exc}", "server_error")
            reply = out if isinstance(out, Reply) else Reply(200, out)
            entry = {"id": f"batch_req_{uuid.uuid4().hex[:16]}", "custom_id": line.get("custom_id"),
                     "response": {"status_code": reply.status, "request_id": uuid.uuid4().hex, "body": reply.body},
                     "error": None}
            (done if reply.status == 200 else failed).append(entry)
            self._set(batch_id, request_counts={"total": total, "completed": len(done), "failed": len(failed)})
        to_bytes = lambda rows: "".join(json.dumps(r) + "\n" for r in rows).encode()  # noqa: E731
        out_id = self._add_file(f"{batch_id}_output.jsonl", "batch_output", to_bytes(done))["id"] if done else None
        err_id = self._add_file(f"{batch_id}_error.jsonl", "batch_output", to_bytes(failed))["id"] if failed else None
        self._set(batch_id, status="completed", completed_at=int(time.time()), output_file_id=out_id, error_file_id=err_id)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default backlog (5) drops bursts of concurrent connections

    def __init__(self, address: tuple[str, int], responder: Responder, model_name: str, verbose: bool):
        super().__init__(address, _Handler)
        self.responder = responder
        self.model_name = model_name
        self.verbose = verbose
        self.store = BatchStore()

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-reply (it gave up after a 401, a timeout) is normal: stay quiet
        about it; anything else is printed only in verbose mode."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return
        if self.verbose:
            super().handle_error(request, client_address)


class ChatCompletionServer:
    """An OpenAI-compatible server in a background thread. Use as a context manager.

    `url` is the base URL to give an OpenAI client (http://HOST:PORT/v1). Port 0 picks a free port.
    """

    def __init__(self, responder: Responder, host: str = "127.0.0.1", port: int = 0, model_name: str = "local", verbose: bool = False):
        self._server = _Server((host, port), responder, model_name, verbose)
        self.host, self.port = self._server.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> BatchStore:
        """The server's files and batches (Batch API)."""
        return self._server.store

    @property
    def url(self) -> str:
        """The base URL for OpenAI clients."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> "ChatCompletionServer":
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="openai-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "ChatCompletionServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve a local model over the OpenAI Chat Completions API (`python -m generation.openai_server`)."""
    from generation.backends.local import LocalBackend

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port)")
    parser.add_argument("--model", default=None, help="a .gguf file or Hugging Face model directory (default: SmolLM2)")
    parser.add_argument("--canned", type=float, default=None, metavar="LATENCY",
                        help="no model: answer with distinct canned sentences after LATENCY seconds")
    parser.add_argument("--threads", type=int, default=None, help="torch threads while generating (default: torch's)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument("--requests-per-s", type=float, default=None,
                        help="enforce a request rate limit, as OpenAI does (429 with Retry-After beyond it)")
    parser.add_argument("--tokens-per-min", type=float, default=None,
                        help="enforce a token rate limit (prompt tokens + max_tokens per request)")
    parser.add_argument("--no-limit-headers", action="store_true",
                        help="with a rate limit: send no x-ratelimit-* headers, only 429s with Retry-After")
    args = parser.parse_args(argv)
    if args.canned is not None:
        responder: Responder = CannedReplies(args.canned)
        model = "canned"
    else:
        backend = LocalBackend(model_path=args.model, batch_size=1, threads=args.threads)
        responder, model = local_model_responder(backend), backend.model
    limits = ""
    if args.requests_per_s is not None or args.tokens_per_min is not None:
        responder = RateLimit(responder, args.requests_per_s or 1e9, args.tokens_per_min,
                              headers=not args.no_limit_headers)
        limits = f", at most {args.requests_per_s or 'any'} requests/s and {args.tokens_per_min or 'any'} tokens/min"
    server = ChatCompletionServer(responder, args.host, args.port, model, args.verbose)
    print(f"serving {model} at {server.url}{limits} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()


if __name__ == "__main__":  # pragma: no cover
    main()
