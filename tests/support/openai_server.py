"""Test support: a loopback OpenAI-compatible HTTP server - Chat Completions, and the Files +
Batches endpoints the OpenAI Batch API uses - for the tests and benchmarks to talk to with the real
`openai` client. It is not part of the product: to serve a model over the OpenAI API for real, use
an OpenAI-compatible server (vLLM, llama.cpp, Ollama, `transformers serve`; see docs/generation.md).

Routes: `POST /v1/chat/completions`, `GET /v1/models`, `POST /v1/files` (multipart upload),
`GET /v1/files/{id}`, `GET /v1/files/{id}/content`, `POST /v1/batches`, `GET /v1/batches/{id}`.
A batch is processed in a background thread, line by line through the same responder
(`tests.support.openai_batches`). What answers a request is a *responder*
(`tests.support.openai_replies`): a function from the parsed request body to either a response
body (dict) or a `Reply` (any status, body and headers, e.g. for fault injection). `RateLimit`
(`tests.support.openai_rate_limit`) wraps a responder in OpenAI's request and token rate limits
(token buckets, 429s with Retry-After, `x-ratelimit-*` headers, 429 storms).

From the repository root:

    python -m tests.support.openai_server --port 8000           # serves SmolLM2 on 127.0.0.1:8000
    python -m tests.support.openai_server --canned 0.2 --requests-per-s 8   # no model; OpenAI's 429s
    OPENAI_API_KEY=none subjlab generate --backend openai --base-url http://127.0.0.1:8000/v1 \\
        --model SmolLM2-135M-Instruct-Q4_1 --task sms_spam --per-label 5 --out spam.jsonl

Requests are served by threads; the local model answers one request at a time. Binds to
127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.openai_batches import BatchStore
from tests.support.openai_rate_limit import RateLimit, format_duration
from tests.support.openai_replies import (
    CannedReplies,
    Reply,
    Responder,
    completion_body,
    error_reply,
    local_model_responder,
    prompt_tokens,
    request_from_body,
)

__all__ = [
    "BatchStore",
    "CannedReplies",
    "ChatCompletionServer",
    "RateLimit",
    "Reply",
    "Responder",
    "completion_body",
    "error_reply",
    "format_duration",
    "local_model_responder",
    "main",
    "prompt_tokens",
    "request_from_body",
]


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
    """Serve a local model over the OpenAI Chat Completions API (`python -m tests.support.openai_server`)."""
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
