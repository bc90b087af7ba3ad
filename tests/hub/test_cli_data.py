"""`subjlab data list` and `subjlab tasks` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from subjlab.cli import cli


def test_data_list_json_counts_match_the_bundled_files(task_data):
    res = CliRunner().invoke(cli, ["data", "list", "--task", "sms_spam", "--task", "ag_news", "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["data_dir"] == str(task_data)
    spam, news = out["tasks"]
    lines = [json.loads(line) for line in (task_data / "sms_spam" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert spam["train"]["per_label"] == {"ham": sum(r["label"] == "ham" for r in lines),
                                          "spam": sum(r["label"] == "spam" for r in lines)} == {"ham": 200, "spam": 200}
    assert spam["test"]["total"] == 400
    assert news["train"] is None and news["test"] is None  # not bundled: its licence does not allow it


def test_tasks_table_marks_tweet_sarcasm_as_not_one_of_the_papers_ten(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    res = CliRunner().invoke(cli, ["tasks"])
    assert res.exit_code == 0, res.output
    rows = {line.split("│")[1].strip(): line for line in res.output.splitlines() if line.count("│") >= 4}
    assert "extra (not one of the paper's ten)" in rows["tweet_sarcasm"]
    assert all("paper" in rows[k] and "extra" not in rows[k] for k in ("ag_news", "humor", "sms_spam"))


def test_data_list_on_own_data_dir(tmp_path):
    (tmp_path / "sms_spam").mkdir()
    (tmp_path / "sms_spam" / "train.jsonl").write_text('{"text": "hi", "label": "ham"}\n{"text": "WIN", "label": "spam"}\n')
    res = CliRunner().invoke(cli, ["data", "list", "--data", str(tmp_path), "--task", "sms_spam", "--format", "json"])
    assert res.exit_code == 0, res.output
    entry = json.loads(res.output)["tasks"][0]
    assert entry["train"]["total"] == 2 and entry["test"] is None


def test_malformed_data_file_is_a_clean_error_naming_file_and_line(tmp_path):
    (tmp_path / "sms_spam").mkdir()
    (tmp_path / "sms_spam" / "train.jsonl").write_text('{"text": "hi", "label": "ham"}\n{"text": 5, "label": "ham"}\n')
    res = CliRunner().invoke(cli, ["data", "list", "--data", str(tmp_path), "--task", "sms_spam"])
    assert res.exit_code == 2
    assert "train.jsonl:2" in res.output and "'text'" in res.output
    assert "Traceback" not in res.output


def test_console_script_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "subjlab.cli", "--help"], capture_output=True, text=True, check=True).stdout
    assert "data" in out and "tasks" in out


def test_data_path_prints_the_split_in_use_alone_on_stdout(task_data, tmp_path, monkeypatch):
    monkeypatch.delenv("SUBJLAB_DATA", raising=False)
    runner = CliRunner()
    res = runner.invoke(cli, ["data", "path", "sms_spam", "train"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(task_data / "sms_spam" / "train.jsonl")
    assert "bundled" in res.stderr
    (tmp_path / "humor").mkdir()
    (tmp_path / "humor" / "test.jsonl").write_text('{"text": "a joke", "label": "humorous"}\n')
    monkeypatch.setenv("SUBJLAB_DATA", str(tmp_path))
    res = runner.invoke(cli, ["data", "path"])
    assert res.stdout.strip() == str(tmp_path) and "$SUBJLAB_DATA" in res.stderr
    res = runner.invoke(cli, ["data", "path", "humor", "test"])
    assert res.stdout.strip() == str(tmp_path / "humor" / "test.jsonl")


def test_data_path_of_a_split_that_is_not_there_says_how_to_get_it(monkeypatch):
    monkeypatch.delenv("SUBJLAB_DATA", raising=False)
    res = CliRunner().invoke(cli, ["data", "path", "ag_news", "test"])
    assert res.exit_code != 0 and res.stdout == ""
    assert "subjlab data fetch" in res.stderr and "--data DIR" in res.stderr
