"""subjlab.export.dataset: generated sets and crowd records written as Hugging Face datasets round-trip
(export, then read the export back as task data or records: the same rows, ids, texts, labels and
extra fields), the parquet files are plain parquet, the card carries the provenance, and failures
leave nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from generation.engine import summary_path
from subjlab.data import BUNDLED_DATA_DIR, load_split, split_path
from subjlab.export.dataset import Table, export_crowd, export_generated, write_dataset
from subjlab.records import Example, Label, read_examples, read_judgments, read_labels
from subjlab.tasks import REGISTRY


def _export(sets, out, **kw):
    return export_generated([(s, summary_path(s)) for s in sets], out, **kw)


def _rows(examples):
    return [(e.id, e.text, e.label, e.extra) for e in examples]


def test_zero_shot_set_round_trips_through_data_from_the_saved_dataset_and_from_parquet(make_set, tmp_path):
    generated = make_set("sms_spam", "zero-shot", per_label=4, diversity_every=2, max_turns=3, conversations=1)
    out = tmp_path / "export"
    written, (prov,), licence = _export([generated], out)
    original = read_examples(generated)
    assert len(original) == 8 and written.configs["sms_spam"]["splits"] == {"train": 8}

    task = REGISTRY["sms_spam"]
    assert split_path(task, "train", out) == out / "sms_spam" / "train"  # the saved split comes before parquet
    assert _rows(load_split(task, "train", out)) == _rows(original)
    (out / "sms_spam" / "train" / "state.json").unlink()  # now only the parquet file can serve the split
    assert split_path(task, "train", out) == out / "sms_spam" / "train.parquet"
    assert _rows(load_split(task, "train", out)) == _rows(original)

    assert prov.mode == "zero-shot" and prov.real_data is None and licence.hub_id == "unknown"
    assert prov.diversity_turn_texts == sum(1 for e in original if e.extra["conversation_turn"] == 2) > 0


def test_parquet_is_plain_parquet_with_the_labels_as_a_class_label(make_set, tmp_path):
    generated = make_set("humor", "zero-shot", per_label=2)
    _export([generated], tmp_path / "export")
    table = pq.read_table(tmp_path / "export" / "humor" / "train.parquet")
    original = read_examples(generated)
    assert table.column("id").to_pylist() == [e.id for e in original]
    assert table.column("text").to_pylist() == [e.text for e in original]
    features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
    assert features["label"] == {"names": list(REGISTRY["humor"].labels), "_type": "ClassLabel"}
    names = features["label"]["names"]
    assert [names[i] for i in table.column("label").to_pylist()] == [e.label for e in original]
    assert table.column("prompt_hash").to_pylist() == [e.extra["prompt_hash"] for e in original]
    assert str(table.schema.field("demonstration_ids").type) == "list<element: string>"


def test_a_task_reading_its_label_from_another_field_gets_that_column_too(make_set, tmp_path):
    task = REGISTRY["reddit_emotion"]
    assert task.label_field != "label"
    generated = make_set("reddit_emotion", "zero-shot", per_label=1)
    _export([generated], tmp_path / "export")
    back = load_split(task, "train", tmp_path / "export")
    original = read_examples(generated)
    assert [(e.id, e.text, e.label) for e in back] == [(e.id, e.text, e.label) for e in original]
    assert all(e.extra[task.label_field] == e.label for e in back)


def test_few_shot_card_carries_model_prompts_filters_and_the_bundled_slice_with_its_licence(make_set, tmp_path):
    generated = make_set("sms_spam", "few-shot", per_label=3, shots=2)
    out = tmp_path / "export"
    _, (prov,), licence = _export([generated], out)
    summary = json.loads(summary_path(generated).read_text())
    manifest = {t["task"]: t for t in json.loads((BUNDLED_DATA_DIR / "manifest.json").read_text())["tasks"]}
    demo_ids = {i for e in read_examples(generated) for i in e.extra["demonstration_ids"]}

    card = DatasetCard.load(out / "README.md")  # the Hub's own parser of cards
    assert card.data.license == "cc-by-4.0" == manifest["sms_spam"]["licence"]["id"].lower()
    assert card.data.task_categories == ["text-classification"]
    assert card.data.configs == [{"config_name": "sms_spam", "data_files": [{"split": "train", "path": "sms_spam/train.parquet"}]}]
    text = card.text
    assert "**Model** `scripted` through the `openai` backend" in text
    assert f"{len(prov.prompt_hashes)} distinct" in text and next(iter(prov.prompt_hashes)) in text
    for reason, n in summary["filters"].items():
        assert f"{reason} {n}" in text
    assert f"{summary['candidates']} candidate texts" in text
    assert manifest["sms_spam"]["attribution"] in text
    assert f"{len(demo_ids)} of {len(demo_ids)} ids found there" in text
    assert "the slice bundled with subjlab" in text and "`subjlab/datasets/sms_spam/train.jsonl`" in text
    assert manifest["sms_spam"]["licence"]["url"] in text and str(BUNDLED_DATA_DIR) not in text

    assert prov.real_data.found == prov.real_data.demonstration_ids == len(demo_ids) > 0
    assert licence.attribution == manifest["sms_spam"]["attribution"]
    assert (out / "sms_spam" / "SOURCE_LICENSE").read_bytes() == (BUNDLED_DATA_DIR / "sms_spam" / "LICENSE").read_bytes()
    assert (out / "sms_spam" / "SOURCE_NOTICE.md").is_file()
    saved = json.loads((out / "subjlab_export.json").read_text())
    assert saved["licence"]["hub_id"] == "cc-by-4.0" and saved["configs"][0]["prompt_hashes"] == prov.prompt_hashes
    assert saved["configs"][0]["run"]["filters"] == summary["filters"]


def test_sets_of_several_tasks_become_one_config_each(make_set, tmp_path):
    sets = [make_set("sms_spam", per_label=1), make_set("humor", per_label=1)]
    written, provs, _ = _export(sets, tmp_path / "export")
    assert list(written.configs) == ["sms_spam", "humor"]
    card = DatasetCard.load(tmp_path / "export" / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["sms_spam", "humor"]
    for s, p in zip(sets, provs):
        assert _rows(load_split(REGISTRY[p.task], "train", tmp_path / "export")) == _rows(read_examples(s))


def test_two_sets_of_one_task_or_sets_under_different_licences_are_refused(make_set, tmp_path):
    a = make_set("sms_spam", per_label=1, name="a.jsonl")
    b = make_set("sms_spam", per_label=1, name="b.jsonl", seed=9)
    with pytest.raises(ValueError, match="a second set of task 'sms_spam'"):
        _export([a, b], tmp_path / "x")
    spam = make_set("sms_spam", "few-shot", per_label=1)
    fpb = make_set("financial_phrasebank", "few-shot", per_label=1)
    with pytest.raises(ValueError, match=r"different licences \(sms_spam: cc-by-4.0, financial_phrasebank: cc-by-nc-sa-3.0\)"):
        _export([spam, fpb], tmp_path / "x")
    _, _, licence = _export([spam, fpb], tmp_path / "x", licence="cc-by-nc-sa-3.0")
    assert licence.hub_id == "cc-by-nc-sa-3.0"
    assert not (tmp_path / "x").with_name("x.tmp").exists()


def test_crowd_labels_and_judgments_round_trip_through_the_record_readers(labeled_study, judged_study, tmp_path):
    from subjlab.commands._study_data import load_study_records

    for study, kind, study_kind, reader in ((labeled_study, "labels", "labeling", read_labels),
                                            (judged_study, "judgments", "pairwise", read_judgments)):
        records = load_study_records(study.db_url, study.name, study_kind, exclude_flagged=False).records
        out = tmp_path / kind
        written, licence = export_crowd(kind, records, f"study {study.name}", out)
        assert licence.hub_id == "unknown" and written.configs[kind]["splits"] == {"train": len(records)}
        for path in (out / kind / "train.parquet", out / kind / "train"):  # parquet, and the saved split
            assert [r.to_dict() for r in reader(path)] == [r.to_dict() for r in records]
        card = DatasetCard.load(out / "README.md")
        assert card.data.annotations_creators == ["crowdsourced"]
        assert f"**Rows** {len(records)} from {len({r.worker for r in records})} workers" in card.text


def test_a_column_of_mixed_types_is_refused_naming_it_and_nothing_is_written(tmp_path):
    out = tmp_path / "export"
    rows = [{"id": "a", "text": "one", "score": 1}, {"id": "b", "text": "two", "score": "high"}]
    with pytest.raises(ValueError, match=r"t/train: field 'score' mixes value types \(int, str\)"):
        write_dataset(out, [Table("t", {"train": rows})], "card", {})
    assert list(tmp_path.iterdir()) == []


def test_a_label_outside_the_class_names_is_refused(tmp_path):
    rows = [{"id": "a", "text": "one", "label": "spam"}, {"id": "b", "text": "two", "label": "eggs"}]
    with pytest.raises(ValueError, match=r"field 'label': \['eggs'\] are not among the labels \['ham', 'spam'\]"):
        write_dataset(tmp_path / "o", [Table("t", {"train": rows}, {"label": ["ham", "spam"]})], "card", {})


def test_an_existing_folder_is_replaced_only_with_force_and_whole(tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    labels = [Label(item="i1", worker="w", label="ham"), Label(item="i2", worker="w", label="spam")]
    with pytest.raises(FileExistsError, match="not empty .*--force"):
        export_crowd("labels", labels, "test", out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    export_crowd("labels", labels, "test", out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "labels", "subjlab_export.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary or old folder left


def test_null_fields_read_back_as_absent_and_other_extra_fields_keep_their_types(tmp_path):
    rows = [Example(id="a", text="one", label="ham", extra={"ratings": ["ham", "spam"], "score": 0.5}),
            Example(id="b", text="two", label="spam", extra={"ratings": ["spam"]})]
    write_dataset(tmp_path / "o", [Table("t", {"train": [r.to_dict() for r in rows]})], "card", {})
    back = read_examples(tmp_path / "o" / "t" / "train.parquet")
    assert _rows(back) == _rows(rows)
    assert isinstance(back[0].extra["score"], float) and "score" not in back[1].extra
    assert Path(tmp_path / "o" / "t" / "dataset_dict.json").is_file()
