"""subjlab.atomic: whole files or nothing, the usual permissions, secrets private."""

from __future__ import annotations

import json
import os
import stat

import pytest

from subjlab.atomic import atomic_open, write_json_atomic, write_text_atomic


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_text_atomic_creates_folders_and_gives_usual_permissions(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    umask = os.umask(0o022)
    try:
        write_text_atomic(target, "héllo\n")
    finally:
        os.umask(umask)
    assert target.read_text(encoding="utf-8") == "héllo\n"
    assert _mode(target) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_secret_permissions_are_kept_private(tmp_path):
    target = tmp_path / "secret"
    write_text_atomic(target, "key", permissions=0o600)
    assert _mode(target) == 0o600


def test_failure_inside_the_block_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "data.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(target, "w") as fh:
            fh.write("half of the new")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


def test_binary_mode_and_custom_suffix(tmp_path):
    target = tmp_path / "blob.bin"
    with atomic_open(target, "wb", suffix=".part") as fh:
        fh.write(b"\x00\x01")
        assert [p.suffix for p in tmp_path.iterdir()] == [".part"] and not target.exists()
    assert target.read_bytes() == b"\x00\x01"


def test_json_refuses_nan_and_writes_nothing(tmp_path):
    target = tmp_path / "m.json"
    with pytest.raises(ValueError):
        write_json_atomic(target, {"x": float("nan")})
    assert not target.exists()
    write_json_atomic(target, {"ü": [1, 2]})
    assert json.loads(target.read_text(encoding="utf-8")) == {"ü": [1, 2]}
    assert target.read_text(encoding="utf-8").endswith("\n")


def test_append_modes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="whole files"):
        with atomic_open(tmp_path / "x", "a"):
            pass
