"""`subjlab generate`: help, dry run, summary, clear errors, and resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from generation.engine import GenerationConfig, generate, preview_requests
from subjlab.cli import cli

REPO = Path(__file__).resolve().parents[2]


def _run(args, env=None):
    return CliRunner().invoke(cli, ["generate", *args], env=env, catch_exceptions=False)


def test_help_explains_the_command_with_an_example():
    result = _run(["--help"])
    assert result.exit_code == 0
    for words in ("--per-label", "--diversity-every", "--dry-run", "--no-cache", "Examples:", "subjlab generate --task"):
        assert words in result.output


def test_dry_run_prints_the_exact_messages_and_sends_nothing(serve, scripted, tmp_path, task_data):
    responder = scripted()
    server = serve(responder)
    out = tmp_path / "out.jsonl"
    args = ["--task", "sms_spam", "--mode", "few-shot", "--per-label", "3", "--out", str(out), "--backend", "openai",
            "--base-url", server.url, "--model", "scripted", "--shots", "3", "--seed", "5", "--data", str(task_data), "--dry-run"]
    result = _run(args)
    assert result.exit_code == 0, result.output
    expected = preview_requests(GenerationConfig(task="sms_spam", mode="few-shot", per_label=3, shots=3, seed=5,
                                                 backend="openai", data_dir=task_data))
    for planned in expected:
        assert f"prompt_hash {planned.prompt_hash}" in result.output
        for message in planned.request.messages:
            assert f"[{message.role}]\n{message.content}\n" in result.output
    assert responder.count == 0 and not out.exists()
    as_json = json.loads(_run([*args, "--format", "json"]).output)
    assert [m["content"] for m in as_json[0]["messages"]] == [m.content for m in expected[0].request.messages]


def test_dry_run_zero_shot_shows_the_diversity_prompt(tmp_path):
    result = _run(["--task", "imdb", "--per-label", "2", "--out", str(tmp_path / "o.jsonl"), "--diversity-every", "4", "--dry-run"])
    assert result.exit_code == 0
    assert "every 4th turn" in result.output
    assert "Can you provide something more diverse compared to the previously generated data?" in result.output


def test_run_prints_a_summary_and_writes_it_next_to_the_output(serve, scripted, tmp_path):
    server = serve(scripted())
    out = tmp_path / "out.jsonl"
    result = _run(["--task", "sms_spam", "--per-label", "3", "--out", str(out), "--backend", "openai", "--base-url", server.url,
                   "--model", "gpt-4o-mini", "--no-embedding-filters", "--no-progress", "--format", "json",
                   "--cache-path", str(tmp_path / "c.sqlite")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["per_label"] == {"ham": 3, "spam": 3} and summary["complete"]
    assert summary["estimated_cost_usd"] == round((summary["tokens_in"] * 0.15 + summary["tokens_out"] * 0.60) / 1e6, 6)
    assert json.loads((tmp_path / "out.jsonl.summary.json").read_text())["written"] == 6
    table = _run(["--task", "sms_spam", "--per-label", "3", "--out", str(out), "--backend", "openai", "--base-url", server.url,
                  "--model", "gpt-4o-mini", "--no-embedding-filters", "--no-progress", "--cache-path", str(tmp_path / "c.sqlite")])
    assert "written / resumed" in table.output and "0 / 6" in table.output


def test_auth_error_is_a_clear_message_and_exit_code_2(serve, scripted, tmp_path):
    server = serve(scripted(always=("status", 401)))
    result = _run(["--task", "sms_spam", "--per-label", "1", "--out", str(tmp_path / "o.jsonl"), "--backend", "openai",
                   "--base-url", server.url, "--no-progress", "--cache-path", str(tmp_path / "c.sqlite")])
    assert result.exit_code == 2
    assert "error:" in result.output and "rejected the credentials (HTTP 401)" in result.output
    assert "Traceback" not in result.output


def test_exhausted_retries_exit_1_and_keep_the_output(serve, scripted, tmp_path):
    server = serve(scripted(always=("status", 503)))
    result = _run(["--task", "sms_spam", "--per-label", "1", "--out", str(tmp_path / "o.jsonl"), "--backend", "openai",
                   "--base-url", server.url, "--no-progress", "--max-retries", "1", "--cache-path", str(tmp_path / "c.sqlite")])
    assert result.exit_code == 1
    assert "gave up after 2 attempts" in result.output and "re-run the same command" in result.output


def _line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_kill_9_then_rerun_continues_exactly(serve, scripted, tmp_path):
    server = serve(scripted(latency=0.04))
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "SUBJLAB_CACHE": str(tmp_path / "cache"), "OPENAI_API_KEY": "test", "SUBJLAB_DEBUG": "1"}
    cmd = [sys.executable, "-m", "subjlab.cli", "generate", "--task", "sms_spam", "--per-label", "40", "--out", str(out),
           "--backend", "openai", "--base-url", server.url, "--model", "scripted", "--concurrency", "2",
           "--diversity-every", "3", "--no-embedding-filters", "--no-progress", "--format", "json"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while _line_count(out) < 15:
            assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no output within 120 s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = out.read_bytes()
    whole_lines = before[: before.rfind(b"\n") + 1].decode().splitlines()
    assert 15 <= len(whole_lines) < 80

    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads(rerun.stdout)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 80 and summary["per_label"] == {"ham": 40, "spam": 40}
    assert len({r["id"] for r in rows}) == 80 and len({r["text"] for r in rows}) == 80
    assert out.read_text().splitlines()[: len(whole_lines)] == whole_lines  # earlier lines untouched
    assert summary["resumed"] == len(whole_lines) and summary["cache_hits"] > 0

    # The resumed file is the file an uninterrupted run writes.
    clean = tmp_path / "uninterrupted.jsonl"
    generate(GenerationConfig(task="sms_spam", per_label=40, backend="openai", base_url=server.url, model="scripted",
                              concurrency=2, diversity_every=3, near_duplicate_threshold=None, demo_copy_threshold=None,
                              cache_path=tmp_path / "fresh.sqlite", progress=False), clean)
    keys = ("id", "text", "label", "conversation", "conversation_turn", "item", "prompt_hash")
    reference = [tuple(json.loads(x)[k] for k in keys) for x in clean.read_text().splitlines()]
    assert [tuple(r[k] for k in keys) for r in rows] == reference
