"""Opaque assignment handles: what workers see instead of the database's slot ids.

A slot id says too much: ids grow with time (attention-check slots are created when they are handed
out, so their ids come after every pre-made slot), and neighbouring ids tell which other slots exist.
Workers therefore see `HandleCodec.encode(id)`: a keyed pseudo-random permutation of the 64-bit id
(a four-round Feistel network whose round function is keyed BLAKE2b), written as 16 hex digits. Handles
of consecutive ids look unrelated, and without the key nobody can tell which id a handle names or make
a valid handle for another slot (a guessed one names a random id, answered like any unknown assignment).

The key comes from the study's own secret (`Study.signing_secret`, kept in the database), so every server
process, the CLI's export and a restarted server agree on the handles without sharing a file, and
handles of one study say nothing about another's. Written by hand, not taken from a library: a 64-bit
block permutation is a few lines, and no small maintained package offers format-preserving encryption.
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: The only shape a handle has.
HANDLE_RE = re.compile(r"^[0-9a-f]{16}$")
_ROUNDS = 4
_MASK32 = 0xFFFFFFFF
#: Slot ids are INTEGER columns (32-bit on PostgreSQL): a decoded value above this names no slot.
MAX_ID = 2**31 - 1


def derive_key(secret: str, purpose: str) -> bytes:
    """A 32-byte key for one `purpose` from a study's secret (HMAC-SHA256; purposes never share keys)."""
    return hmac.new(secret.encode("utf-8"), f"subjlab:{purpose}".encode(), hashlib.sha256).digest()


class HandleCodec:
    """encode(slot id) -> 16-hex-digit handle; decode(handle) -> slot id, or None for anything else."""

    def __init__(self, secret: str) -> None:
        key = derive_key(secret, "assignment-handles")
        # one keyed BLAKE2b state per round, copied for each use (cheaper than keying a new one)
        self._rounds = [hashlib.blake2b(digest_size=4, key=key + bytes([i])) for i in range(_ROUNDS)]

    def _round(self, i: int, half: int) -> int:
        state = self._rounds[i].copy()
        state.update(half.to_bytes(4, "big"))
        return int.from_bytes(state.digest(), "big")

    def encode(self, slot_id: int) -> str:
        """The handle of slot `slot_id` (0 <= slot_id <= MAX_ID)."""
        if not 0 <= slot_id <= MAX_ID:
            raise ValueError(f"slot id out of range: {slot_id}")
        left, right = slot_id >> 32, slot_id & _MASK32
        for i in range(_ROUNDS):
            left, right = right, left ^ self._round(i, right)
        return f"{(left << 32) | right:016x}"

    def decode(self, handle: str) -> int | None:
        """The slot id a handle names, or None when it is not a handle (wrong shape, or out of range)."""
        if not isinstance(handle, str) or not HANDLE_RE.fullmatch(handle):
            return None
        value = int(handle, 16)
        left, right = value >> 32, value & _MASK32
        for i in reversed(range(_ROUNDS)):
            left, right = right ^ self._round(i, left), left
        slot_id = (left << 32) | right
        return slot_id if slot_id <= MAX_ID else None
