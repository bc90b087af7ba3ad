"""`subjlab export generated|labels|judgments`: the commands' outputs, and the exports read back by
subjlab's own commands (`data list --data`, `agreement`, `rank`) with the same results as the sources."""

from __future__ import annotations

import json

from click.testing import CliRunner
from huggingface_hub import DatasetCard

from generation.engine import summary_path
from subjlab.cli import cli
from subjlab.records import read_judgments, write_records


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_export_generated_then_data_list_on_the_export_counts_the_same_texts(make_set, tmp_path):
    generated = make_set("sms_spam", per_label=3)
    result = run("export", "generated", generated, "--out", tmp_path / "out", "--license", "cc0-1.0", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["configs"]["sms_spam"]["splits"] == {"train": 6} and report["licence"]["hub_id"] == "cc0-1.0"
    assert report["warnings"] == [] and report["card"] == str(tmp_path / "out" / "README.md")
    listed = json.loads(run("data", "list", "--data", tmp_path / "out", "--task", "sms_spam", "--format", "json").output)
    assert listed["tasks"][0]["train"] == {"total": 6, "per_label": {"ham": 3, "spam": 3}}
    assert listed["tasks"][0]["test"] is None
    assert DatasetCard.load(tmp_path / "out" / "README.md").data.license == "cc0-1.0"


def test_export_generated_without_its_summary_is_an_error_naming_the_file(make_set, tmp_path):
    generated = make_set("humor", per_label=1)
    summary_path(generated).unlink()
    result = run("export", "generated", generated, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert f"error: {summary_path(generated)} is missing: `subjlab generate` writes it" in result.output
    assert not (tmp_path / "out").exists()


def test_export_labels_from_the_study_then_agreement_on_the_export_matches_the_study(labeled_study, tmp_path):
    db = ["--study", labeled_study.name, "--db", labeled_study.db_url, "--exclude-flagged"]
    result = run("export", "labels", *db, "--out", tmp_path / "labels")
    assert result.exit_code == 0, result.output
    direct = json.loads(run("agreement", *db, "--format", "json").output)
    exported = json.loads(run("agreement", tmp_path / "labels" / "labels" / "train.parquet", "--format", "json").output)
    assert exported["items"] == direct["items"] and exported["fleiss_kappa"] == direct["fleiss_kappa"]

    card = (tmp_path / "labels" / "README.md").read_text()
    excluded = direct["excluded"]
    assert excluded["applied"] and excluded["n"] > 0
    assert f"{excluded['n']} of {excluded['of']} records of {len(excluded['workers'])} flagged workers left out" in card
    assert f"study 'qc' in {labeled_study.db_url}" in card
    provenance = json.loads((tmp_path / "labels" / "subjlab_export.json").read_text())
    assert provenance["configs"][0]["excluded"] == excluded


def test_export_judgments_file_then_rank_on_the_export_matches_the_file(judged_study, tmp_path):
    from subjlab.commands._study_data import load_study_records

    records = load_study_records(judged_study.db_url, judged_study.name, "pairwise", exclude_flagged=False).records
    source = tmp_path / "judgments.jsonl"
    write_records(source, records)
    result = run("export", "judgments", source, "--out", tmp_path / "out", "--title", "Objectivity judgments")
    assert result.exit_code == 0, result.output
    assert "judgments │ train │ 9" in result.output
    exported = tmp_path / "out" / "judgments" / "train.parquet"
    assert [j.to_dict() for j in read_judgments(exported)] == [j.to_dict() for j in records]
    ranked = [json.loads(run("rank", path, "--format", "json", "--bootstrap", "50").output) for path in (source, exported)]
    assert ranked[0] == ranked[1] and [r["task"] for r in ranked[0]] == ["fewrel", "sms_spam", "humor"]
    card = DatasetCard.load(tmp_path / "out" / "README.md")
    assert card.data.pretty_name == "Objectivity judgments" and card.data.license == "unknown"
    assert "file judgments.jsonl (sha256 " in card.text and "more objective" in card.text


def test_crowd_export_needs_a_file_or_a_study_and_options_of_studies_need_the_study(tmp_path):
    result = run("export", "labels", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "give either a LABELS file or --study NAME" in result.output
    (tmp_path / "l.jsonl").write_text('{"item": "i", "worker": "w", "label": "x"}\n')
    result = run("export", "labels", tmp_path / "l.jsonl", "--exclude-flagged", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "--exclude-flagged: these options need --study NAME" in result.output


def test_a_malformed_record_file_is_an_error_naming_its_line_and_field(tmp_path):
    (tmp_path / "j.jsonl").write_text('{"left": "a", "right": "b", "winner": "a"}\n{"left": "a", "right": "b", "winner": "c"}\n')
    result = run("export", "judgments", tmp_path / "j.jsonl", "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'j.jsonl'}:2: field 'winner': 'c' is neither left ('a') nor right ('b')" in result.output
    assert not (tmp_path / "o").exists()


def test_help_lists_the_three_exports():
    result = run("export", "--help")
    assert result.exit_code == 0
    for name in ("generated", "labels", "judgments"):
        assert name in result.output
    assert "export" in run("--help").output
