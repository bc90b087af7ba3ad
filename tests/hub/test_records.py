"""Record files: round trips, and malformed lines fail with file:line: field, reading nothing."""

from __future__ import annotations

import pytest

from subjlab.records import (
    Example, Judgment, Label, RecordError, read_agreements, read_examples, read_judgments,
    read_labels, write_records,
)


def test_examples_round_trip_jsonl_and_csv_keeping_extra_fields(tmp_path):
    exs = [Example(id="a", text="hello", label="x", extra={"agreement": "100"}),
           Example(id="b", text="wörld, \"quoted\"", label="y")]
    for name in ("e.jsonl", "e.csv"):
        path = tmp_path / name
        assert write_records(path, exs) == 2
        back = read_examples(path)
        assert [(e.id, e.text, e.label) for e in back] == [(e.id, e.text, e.label) for e in exs]
        assert back[0].extra["agreement"] == "100"


def test_malformed_json_line_names_file_and_line(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text('{"left": "a", "right": "b", "winner": "a"}\n{"left": "a", oops}\n')
    with pytest.raises(RecordError) as err:
        read_judgments(p)
    assert err.value.line == 2 and str(p) in str(err.value)


def test_winner_outside_the_pair_is_rejected_with_field(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text('{"left": "a", "right": "b", "winner": "a"}\n\n{"left": "a", "right": "b", "winner": "c"}\n')
    with pytest.raises(RecordError) as err:
        read_judgments(p)
    assert (err.value.line, err.value.field) == (3, "winner")


def test_missing_label_field_is_named(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("item,worker\n1,w1\n")
    with pytest.raises(RecordError) as err:
        read_labels(p)
    assert (err.value.line, err.value.field) == (2, "label")


def test_agreement_out_of_range_is_rejected(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"item": "1", "agreement": 0.5}\n{"item": "2", "agreement": 1.5}\n')
    with pytest.raises(RecordError) as err:
        read_agreements(p)
    assert (err.value.line, err.value.field) == (2, "agreement")


def test_judgment_loser_and_label_ids_coerced_to_strings(tmp_path):
    j = Judgment.from_dict({"left": "a", "right": "b", "winner": "b", "worker": "w"})
    assert j.loser == "a"
    p = tmp_path / "l.jsonl"
    p.write_text('{"item": 7, "worker": 3, "label": "pos"}\n')
    assert read_labels(p)[0] == Label(item="7", worker="3", label="pos")


def test_write_is_atomic_no_temp_left_behind(tmp_path):
    write_records(tmp_path / "x.jsonl", [{"a": 1}])
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]


def test_written_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        write_records(tmp_path / "x.jsonl", [{"a": 1}])
    finally:
        os.umask(umask)
    assert (tmp_path / "x.jsonl").stat().st_mode & 0o777 == 0o644
