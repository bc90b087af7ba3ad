"""Signed entry links: a worker id that nobody else can claim on a web-link study.

`subjlab study link NAME --worker ID --url https://HOST` prints `https://HOST/study/NAME?worker=ID&sig=SIG`
where SIG is an HMAC-SHA256 of the worker id under a key derived from the study's own secret
(`Study.signing_secret`, kept in the server's database and never shown). The consent page carries the
signature into the session start, and a study created with `require_signed_entry` refuses any session
without a valid one (`sessions.start_session`: 403, nothing written). Such a session is recorded as
`entry = "signed"` and confirmed. The key lives in the database, so every server process and the CLI
agree on it, links survive restarts, and a link of one study is worthless for another.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from annotation_server import validation as v
from annotation_server.handles import derive_key

#: Hex digits of the HMAC kept in a link (128 bits).
SIGNATURE_LENGTH = 32


def sign_worker(secret: str, worker_id: str) -> str:
    """The signature of `worker_id` for the study whose secret is `secret` (32 hex digits)."""
    return hmac.new(derive_key(secret, "entry-links"), worker_id.encode("utf-8"), "sha256").hexdigest()[:SIGNATURE_LENGTH]


def signature_ok(secret: str | None, worker_id: str, signature: object) -> bool:
    """Whether `signature` is the study's signature of `worker_id` (constant-time comparison)."""
    if not secret or not isinstance(signature, str) or len(signature) != SIGNATURE_LENGTH:
        return False
    return hmac.compare_digest(sign_worker(secret, worker_id).encode(), signature.encode("ascii", "replace"))


def public_base(url: str) -> str:
    """The server's public base URL (http(s), no query): ValueError otherwise."""
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"--url {str(url)[:80]!r} must be the server's public base URL, like https://study.example.org")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class EntryLink:
    """One worker's signed link."""

    worker_id: str
    url: str


def entry_link(base_url: str, study_name: str, secret: str, worker_id: str) -> EntryLink:
    """The signed link of `worker_id` to study `study_name` on the server at `base_url`."""
    worker_id = v.identifier(worker_id, "worker id", max_len=128)
    query = urlencode({"worker": worker_id, "sig": sign_worker(secret, worker_id)})
    return EntryLink(worker_id, f"{public_base(base_url)}/study/{quote(study_name, safe='')}?{query}")
