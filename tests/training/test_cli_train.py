"""`subjlab train` as a user runs it: files in, metrics/predictions/model out, clean errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from subjlab.cli import cli
from subjlab.records import read_predictions, write_records

QUICK_FLAGS = ["--max-steps", "3", "--batch-size", "8", "--max-length", "64", "--threads", "1",
               "--lr", "3e-4", "--no-progress", "--seed", "5"]


@pytest.mark.slow
def test_train_on_real_sample_plus_two_files_evaluates_on_the_real_test_split_and_writes_every_output(
    sms, task_data, tmp_path
):
    half = len(sms.train) // 2
    write_records(tmp_path / "a.jsonl", sms.train[:half])
    write_records(tmp_path / "b.jsonl", sms.train[half:])
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, [
        "train", "--task", "sms_spam", "--train", "real:3", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"),
        "--eval", "real", "--eval-limit-per-label", "5", "--data", str(task_data), "--out", str(out),
        "--format", "json", *QUICK_FLAGS,
    ])
    assert res.exit_code == 0, res.output + res.stderr
    printed = json.loads(res.stdout)
    written = json.loads((out / "metrics.json").read_text())
    assert printed == written
    assert written["train_size"] + written["val_size"] == len(sms.train) + 6  # real:3 = 3 per label
    assert written["eval_size"] == 10 and written["steps"] == 3
    assert written["config"]["provenance"]["train"] == ["real:3", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]
    assert written["config"]["provenance"]["data_dir"] == str(task_data)
    preds = read_predictions(out / "predictions.jsonl")
    assert len(preds) == 10 and all(p.id.startswith("sms_spam:test:") for p in preds)
    assert (out / "model" / "config.json").is_file()
    assert "new classification head" in res.stderr  # the expected fresh head is explained, not warned about
    assert json.loads((out / "model" / "config.json").read_text())["id2label"] == {"0": "ham", "1": "spam"}


def test_a_foreign_label_in_a_training_file_is_a_clean_error_with_file_and_line(tmp_path):
    bad = tmp_path / "gen.jsonl"
    bad.write_text('{"id": "g1", "text": "See you at 5", "label": "ham"}\n'
                   '{"id": "g2", "text": "Free prize!!", "label": "scam"}\n')
    res = CliRunner().invoke(cli, ["train", "--task", "sms_spam", "--train", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert f"error: {bad}:2: example 'g2' has label 'scam', which is not one of the task's labels" in res.stderr
    assert "Traceback" not in res.output + res.stderr
    assert not (tmp_path / "o").exists()


def test_a_malformed_eval_file_is_a_clean_error_with_file_line_and_field(sms, tmp_path):
    write_records(tmp_path / "train.jsonl", sms.train)
    bad = tmp_path / "eval.jsonl"
    bad.write_text('{"id": "e1", "text": "ok", "label": "ham"}\n{"id": "e2", "text": 7, "label": "ham"}\n')
    res = CliRunner().invoke(cli, ["train", "--task", "sms_spam", "--train", str(tmp_path / "train.jsonl"),
                                   "--eval", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert f"{bad}:2: field 'text'" in res.stderr
    assert "Traceback" not in res.output + res.stderr


def test_training_data_is_required_and_real_samples_need_a_count(tmp_path):
    res = CliRunner().invoke(cli, ["train", "--task", "sms_spam", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "--train FILE" in res.stderr
    res = CliRunner().invoke(cli, ["train", "--task", "sms_spam", "--train", "real:lots", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "'real:lots': expected real:N" in res.stderr
