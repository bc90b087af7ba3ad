"""`subjlab data list` and `subjlab tasks` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from subjlab.cli import cli


def test_data_list_json_counts_match_the_real_files(shared_data):
    res = CliRunner().invoke(cli, ["data", "list", "--task", "sms_spam", "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    entry = out["tasks"][0]
    assert entry["train"]["per_label"] == {"ham": 1000, "spam": 436}
    assert entry["test"]["total"] == 717


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
