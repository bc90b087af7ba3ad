"""Response cache: the same request (backend, model, messages, parameters, sample index) is answered
from disk instead of the backend, so repeating a run costs no calls and a resumed run replays the
conversations it had.

One SQLite file (default `subjlab.packaged_models.cache_dir()/generation/responses.sqlite`) in WAL mode:
several processes may read and write it at once (busy timeout). `put` stores one response and
`put_many` a group (the engine stores each round's responses in one transaction), each committed
before it returns, so a crash (kill -9) never loses or corrupts a response that was stored.
The key is the sha256 of the canonical JSON of the request; the value is the response text and its
token usage.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Sequence

from generation.backends.base import ChatRequest, ChatResponse
from subjlab.packaged_models import cache_dir


def default_cache_path() -> Path:
    """Return the default cache file: `cache_dir()/generation/responses.sqlite`."""
    return cache_dir() / "generation" / "responses.sqlite"


def request_key(backend: str, model: str, request: ChatRequest) -> str:
    """Return the cache key (64 hex chars) of a request to `backend`/`model`."""
    payload: dict[str, Any] = {
        "backend": backend,
        "model": model,
        "messages": [m.to_dict() for m in request.messages],
        "parameters": request.parameters(),
        "sample_index": request.sample_index,
    }
    blob = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """A persistent map from request key to ChatResponse. Safe across threads and processes."""

    def __init__(self, path: str | Path | None = None, timeout: float = 60.0):
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            with self._conn:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS responses ("
                    " key TEXT PRIMARY KEY, text TEXT NOT NULL, tokens_in INTEGER NOT NULL,"
                    " tokens_out INTEGER NOT NULL, finish_reason TEXT, created_at TEXT NOT NULL"
                    " DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')))"
                )
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path}: response cache is unreadable ({exc}); delete it to start afresh") from exc

    def get(self, key: str) -> ChatResponse | None:
        """Return the stored response for `key`, or None (marked `cached=True`)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT text, tokens_in, tokens_out, finish_reason FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return ChatResponse(text=row[0], tokens_in=row[1], tokens_out=row[2], finish_reason=row[3], cached=True)

    def put(self, key: str, response: ChatResponse) -> None:
        """Store a response (committed before returning; an existing key is replaced)."""
        self.put_many([(key, response)])

    def put_many(self, items: Sequence[tuple[str, ChatResponse]]) -> None:
        """Store (key, response) pairs in one transaction, committed before returning (existing
        keys are replaced; nothing for no items)."""
        if not items:
            return
        rows = [(key, r.text, r.tokens_in, r.tokens_out, r.finish_reason) for key, r in items]
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO responses (key, text, tokens_in, tokens_out, finish_reason) VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
