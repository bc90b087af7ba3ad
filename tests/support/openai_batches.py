"""The Files and Batches endpoints' state of the loopback stand-in: uploaded files, and batches
processed line by line through the responder in a background thread (answers to an output file,
failed lines to an error file, as OpenAI does)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from tests.support.openai_replies import Reply, Responder, error_reply

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
