"""subjlab.export.provenance: where a generated set's real data came from and under what licence,
the checks that a set matches its summary, and the licence an export gets."""

from __future__ import annotations

import json
import shutil

import pytest

from generation.engine import summary_path
from subjlab.data import BUNDLED_DATA_DIR
from subjlab.export.provenance import (
    UNKNOWN_LICENCE, data_licence, dataset_licence, generated_provenance, read_summary,
)
from subjlab.records import read_examples, write_records
from subjlab.tasks import REGISTRY


def _copy_task(root, task="sms_spam"):
    shutil.copytree(BUNDLED_DATA_DIR / task, root / task)
    return root


def test_bundled_licences_come_from_the_manifest(task_data):
    manifest = json.loads((BUNDLED_DATA_DIR / "manifest.json").read_text())
    for entry in manifest["tasks"]:
        lic = data_licence(task_data, entry["task"])
        assert lic.hub_id == entry["licence"]["id"].lower() and lic.url == entry["licence"]["url"]
        assert lic.attribution == entry["attribution"]


def test_a_fetched_folder_gives_its_provenance_statement(tmp_path):
    root = _copy_task(tmp_path)
    (root / "sms_spam" / "provenance.json").write_text(json.dumps({"task": "sms_spam", "licence": {
        "statement": "Not stated in the source copy; UCI lists CC BY 4.0.", "texts": {}}}))
    lic = data_licence(root, "sms_spam")
    assert (lic.hub_id, lic.statement) == ("unknown", "Not stated in the source copy; UCI lists CC BY 4.0.")


def test_a_development_manifest_with_a_free_text_licence_is_quoted_not_guessed(tmp_path):
    root = _copy_task(tmp_path)
    (root / "manifest.json").write_text(json.dumps({"tasks": [{"task": "sms_spam", "licence": "research use only"}]}))
    lic = data_licence(root, "sms_spam")
    assert (lic.hub_id, lic.statement) == ("unknown", "research use only")


def test_an_earlier_export_used_as_data_passes_its_licence_on(tmp_path):
    root = _copy_task(tmp_path)
    licence = {"hub_id": "mit", "name": "MIT License", "statement": "from the source", "url": None, "attribution": "A. B."}
    (root / "subjlab_export.json").write_text(json.dumps({"licence": licence}))
    assert data_licence(root, "sms_spam").__dict__ == licence


def test_a_folder_with_only_a_licence_file_or_nothing_says_so(tmp_path):
    root = _copy_task(tmp_path)
    assert "LICENSE (not identified)" in data_licence(root, "sms_spam").statement
    (root / "sms_spam" / "LICENSE").unlink()
    lic = data_licence(root, "sms_spam")
    assert lic.hub_id == "unknown" and f"no licence found in {root}" in lic.statement


def test_demonstrations_are_looked_up_in_the_data_named_and_missing_ones_are_a_warning(make_set, tmp_path):
    generated = make_set("sms_spam", "few-shot", per_label=2, shots=2)
    records, summary = read_examples(generated), read_summary(summary_path(generated))
    task = REGISTRY["sms_spam"]
    prov = generated_provenance(generated, records, summary, task)
    assert prov.real_data.found == prov.real_data.demonstration_ids > 0 and not prov.warnings
    assert prov.real_data.how_chosen.startswith("the run recorded no data directory")

    other = tmp_path / "other"
    (other / "sms_spam").mkdir(parents=True)
    demo_ids = {i for r in records for i in r.extra["demonstration_ids"]}
    kept = [ex for ex in read_examples(BUNDLED_DATA_DIR / "sms_spam" / "train.jsonl") if ex.id != min(demo_ids)]
    write_records(other / "sms_spam" / "train.jsonl", kept)
    prov = generated_provenance(generated, records, summary, task, data_dir=other)
    assert prov.real_data.how_chosen == "--data of the export" and prov.real_data.found == len(demo_ids) - 1
    assert prov.warnings == [f"1 of {len(demo_ids)} demonstration ids are not rows of {other.resolve()}/sms_spam/"
                             "train.jsonl: the set may have been drawn from other data (name it with --data)"]


def test_a_set_that_does_not_match_its_summary_is_refused_or_flagged(make_set):
    generated = make_set("humor", per_label=2)
    records, summary = read_examples(generated), read_summary(summary_path(generated))
    with pytest.raises(ValueError, match=r"humor.zero-shot.jsonl:1: field 'mode': 'zero-shot', but its summary says 'few-shot'"):
        generated_provenance(generated, records, {**summary, "mode": "few-shot"}, REGISTRY["humor"])
    prov = generated_provenance(generated, records[:-1], summary, REGISTRY["humor"])
    assert prov.warnings and "it changed after the run" in prov.warnings[0]


def test_a_summary_file_that_is_missing_or_not_a_summary_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"x.summary.json is missing: `subjlab generate` writes it"):
        read_summary(tmp_path / "x.summary.json")
    (tmp_path / "y.json").write_text('{"task": "humor"}')
    with pytest.raises(ValueError, match=r"y.json: field 'mode': missing"):
        read_summary(tmp_path / "y.json")


def test_the_licence_chosen_must_be_a_hub_id_and_zero_shot_sets_default_to_unknown(make_set):
    generated = make_set("humor", per_label=1)
    prov = generated_provenance(generated, read_examples(generated), read_summary(summary_path(generated)), REGISTRY["humor"])
    assert dataset_licence([prov], None) == UNKNOWN_LICENCE
    assert dataset_licence([prov], "mit").hub_id == "mit"
    with pytest.raises(ValueError, match="'MIT' is not one of the Hub's licence ids"):
        dataset_licence([prov], "MIT")
