"""subjlab.table_files (through the record readers): parquet files and splits saved by `datasets`,
as a third party would write them (pyarrow, pandas, a DatasetDict with a ClassLabel), read as
records; bad files and bad rows name the file, the row and the field."""

from __future__ import annotations

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from subjlab.records import RecordError, read_examples, read_labels
from subjlab.table_files import TableError, is_saved_split, iter_table_rows


def test_parquet_written_by_pandas_reads_as_examples_with_ids_made_for_rows_without_one(tmp_path):
    path = tmp_path / "train.parquet"
    pd.DataFrame({"text": ["win a prize now", "see you at 6"], "label": ["spam", "ham"],
                  "source_line": [12, 40]}).to_parquet(path)
    examples = read_examples(path, id_prefix="sms_spam:train")
    assert [(e.id, e.text, e.label, e.extra) for e in examples] == [
        ("sms_spam:train:1", "win a prize now", "spam", {"source_line": 12}),
        ("sms_spam:train:2", "see you at 6", "ham", {"source_line": 40})]


def test_integer_ids_and_nulls_of_a_pyarrow_table(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [7, 8], "text": ["a b c", "d e f"], "label": ["x", None], "note": [None, "n"]}), path)
    examples = read_examples(path)
    assert [(e.id, e.label, e.extra) for e in examples] == [("7", "x", {}), ("8", None, {"note": "n"})]


def test_a_saved_dataset_dict_with_a_class_label_reads_label_names(tmp_path):
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["ham", "spam"])})
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["hello there", "free money"], "label": [0, 1]}, features=features),
        "test": datasets.Dataset.from_dict({"text": ["no label yet"], "label": [-1]}, features=features),
    })
    dd.save_to_disk(str(tmp_path / "sms_spam"))
    assert is_saved_split(tmp_path / "sms_spam" / "train") and not is_saved_split(tmp_path / "sms_spam")
    assert [(e.text, e.label) for e in read_examples(tmp_path / "sms_spam" / "train")] == [
        ("hello there", "ham"), ("free money", "spam")]
    assert [e.label for e in read_examples(tmp_path / "sms_spam" / "test")] == [None]  # -1: the Hub's "no label"
    dd["train"].to_parquet(str(tmp_path / "train.parquet"))  # the same names come from the parquet metadata
    assert [e.label for e in read_examples(tmp_path / "train.parquet")] == ["ham", "spam"]


def test_a_class_index_outside_the_names_names_the_row_and_field(tmp_path):
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b"])})
    datasets.Dataset.from_dict({"text": ["x y z"] * 3, "label": [0, 1, 1]}, features=features).to_parquet(
        str(tmp_path / "t.parquet"))
    table = pq.read_table(tmp_path / "t.parquet")
    bad = table.set_column(1, "label", pa.array([0, 1, 5]))
    pq.write_table(bad.replace_schema_metadata(table.schema.metadata), tmp_path / "bad.parquet")
    with pytest.raises(RecordError) as err:
        read_examples(tmp_path / "bad.parquet")
    assert str(err.value) == f"{tmp_path / 'bad.parquet'}: row 3: field 'label': class index 5 is outside its names ['a', 'b']"
    assert (err.value.line, err.value.field) == (3, "label")


def test_a_row_missing_a_required_field_names_the_row(tmp_path):
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"item": ["i1", "i2"], "worker": ["w1", None], "label": ["ham", "spam"]}), path)
    with pytest.raises(RecordError, match=r"labels.parquet: row 2: field 'worker': required field is missing"):
        read_labels(path)


def test_a_wrong_type_names_the_row_and_field(tmp_path):
    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"text": ["fine text", "other"], "label": [0, 1]}), path)
    with pytest.raises(RecordError, match=r"train.parquet: row 1: field 'label': must be a string, got int"):
        read_examples(path)


def test_files_that_are_not_parquet_or_saved_splits_are_named(tmp_path):
    (tmp_path / "fake.parquet").write_text("id,text\n1,hello\n")
    with pytest.raises(RecordError, match=r"fake.parquet: not a readable parquet file"):
        read_examples(tmp_path / "fake.parquet")
    with pytest.raises(RecordError, match=r"gone.parquet: no such file"):
        read_examples(tmp_path / "gone.parquet")
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "state.json").write_text("{not json")
    with pytest.raises(RecordError, match=r"split: not a readable saved dataset"):
        read_examples(tmp_path / "split")
    with pytest.raises(TableError, match="not a parquet file nor a folder saved"):
        list(iter_table_rows(tmp_path / "elsewhere"))
