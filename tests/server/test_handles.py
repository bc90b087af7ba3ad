"""Opaque assignment handles (`annotation_server.handles`): a keyed permutation of slot ids."""

from __future__ import annotations

import re

from annotation_server.handles import MAX_ID, HandleCodec


def test_handles_round_trip_and_are_distinct_fixed_length_hex():
    codec = HandleCodec("a" * 64)
    ids = list(range(0, 5000)) + [MAX_ID, MAX_ID - 1, 2**20 + 7]
    handles = [codec.encode(i) for i in ids]
    assert all(re.fullmatch(r"[0-9a-f]{16}", h) for h in handles) and len(set(handles)) == len(ids)
    assert [codec.decode(h) for h in handles] == ids


def test_consecutive_ids_give_unordered_handles_and_another_secret_gives_other_handles():
    codec, other = HandleCodec("a" * 64), HandleCodec("b" * 64)
    handles = [codec.encode(i) for i in range(1000, 1200)]
    ascending = sum(a < b for a, b in zip(handles, handles[1:]))
    assert 60 < ascending < 140  # about half, as for random strings (sorted ids would give 199)
    assert not set(handles) & {other.encode(i) for i in range(1000, 1200)}
    assert other.decode(handles[0]) != 1000  # a handle is worth nothing under another study's key


def test_anything_that_is_not_a_handle_decodes_to_none():
    codec = HandleCodec("a" * 64)
    for bad in ("", "attention-1", "123", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "-1", None, 42):
        assert codec.decode(bad) is None
    beyond = [h for h in (f"{v:016x}" for v in range(0, 2**64, 2**58)) if codec.decode(h) is None]
    assert beyond  # values that name no slot id (above MAX_ID) are refused, not wrapped around
