"""The content-addressed step cache, with cheap real steps (files in, files out)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from subjlab.runner.steps import DONE, Step, StepRunner, read_log


class Calls:
    """Counts how often each step function really ran."""

    def __init__(self):
        self.ran: list[str] = []


def chain(tmp_path: Path, runner: StepRunner, calls: Calls, source: Path, suffix: str = "!"):
    """A three-step chain: upper-case the source, append `suffix`, count characters."""

    def upper(work: Path):
        calls.ran.append("upper")
        (work / "out.txt").write_text(source.read_text().upper())
        return {"chars": len(source.read_text())}

    a = runner.run(Step("upper", tmp_path / "run" / "upper", params={"v": 1}, inputs={"src": source}), upper)

    def add(work: Path):
        calls.ran.append("add")
        (work / "out.txt").write_text(a.path("out.txt").read_text() + suffix)

    b = runner.run(Step("add", tmp_path / "run" / "add", params={"suffix": suffix}, inputs={"in": a.path("out.txt")}), add)

    def count(work: Path):
        calls.ran.append("count")
        (work / "n.json").write_text(json.dumps(len(b.path("out.txt").read_text())))
        return {"n": len(b.path("out.txt").read_text())}

    c = runner.run(Step("count", tmp_path / "run" / "count", inputs={"in": b.path("out.txt")}), count)
    return a, b, c


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.txt"
    path.write_text("hello")
    return path


def test_second_run_skips_every_finished_step(tmp_path, source):
    calls = Calls()
    first = chain(tmp_path, StepRunner(tmp_path / "log.jsonl", echo=lambda s: None), calls, source)
    assert calls.ran == ["upper", "add", "count"]
    assert all(r.ran for r in first)
    assert first[2].meta == {"n": 6}
    calls.ran.clear()
    second = chain(tmp_path, StepRunner(tmp_path / "log.jsonl", echo=lambda s: None), calls, source)
    assert calls.ran == []
    assert [r.record.status for r in second] == ["cached"] * 3
    assert second[2].meta == {"n": 6}
    assert second[1].path("out.txt").read_text() == "HELLO!"
    log = read_log(tmp_path / "log.jsonl")
    assert [r.status for r in log] == ["ran"] * 3 + ["cached"] * 3


def test_changed_parameter_redoes_only_the_steps_that_depend_on_it(tmp_path, source):
    calls = Calls()
    chain(tmp_path, StepRunner(tmp_path / "log.jsonl", echo=lambda s: None), calls, source)
    calls.ran.clear()
    _, b, c = chain(tmp_path, StepRunner(tmp_path / "log.jsonl", echo=lambda s: None), calls, source, suffix="?")
    assert calls.ran == ["add", "count"]  # upper is upstream of the change: reused
    assert b.path("out.txt").read_text() == "HELLO?"


def test_changed_input_that_yields_the_same_output_stops_the_redo_there(tmp_path, source):
    calls = Calls()
    chain(tmp_path, StepRunner(tmp_path / "log.jsonl", echo=lambda s: None), calls, source)
    calls.ran.clear()
    source.write_text("HeLLo")  # a different input whose upper-case output is identical
    chain(tmp_path, StepRunner(tmp_path / "log.jsonl", echo=lambda s: None), calls, source)
    assert calls.ran == ["upper"]


def test_a_crashed_step_leaves_no_done_marker_and_runs_again(tmp_path, source):
    runner = StepRunner(tmp_path / "log.jsonl", echo=lambda s: None)
    step = Step("flaky", tmp_path / "run" / "flaky", inputs={"src": source})

    def crash(work: Path):
        (work / "half.txt").write_text("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        runner.run(step, crash)
    assert not (step.directory / DONE).exists()
    assert runner.lookup(step) is None

    def finish(work: Path):
        assert not (work / "half.txt").exists()  # without resume the partial output is cleared
        (work / "out.txt").write_text("whole")

    result = runner.run(step, finish)
    assert result.ran and (step.directory / "out.txt").read_text() == "whole"
    assert json.loads((step.directory / DONE).read_text())["outputs"].keys() == {"out.txt"}


def test_resume_continues_from_the_partial_output_of_the_same_key(tmp_path, source):
    step = Step("gen", tmp_path / "run" / "gen", params={"n": 3}, inputs={"src": source})

    def crash_after_one(work: Path):
        (work / "data.txt").write_text("1\n")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        StepRunner(tmp_path / "log.jsonl", echo=lambda s: None).run(step, crash_after_one)

    seen = []

    def continue_(work: Path):
        have = (work / "data.txt").read_text().splitlines() if (work / "data.txt").exists() else []
        seen.append(len(have))
        (work / "data.txt").write_text("".join(f"{i}\n" for i in range(1, 4)))

    StepRunner(tmp_path / "log.jsonl", echo=lambda s: None, resume=True).run(step, continue_)
    assert seen == [1]
    assert (step.directory / "data.txt").read_text() == "1\n2\n3\n"


def test_deleted_output_invalidates_the_cache_entry(tmp_path, source):
    calls = Calls()
    runner = StepRunner(tmp_path / "log.jsonl", echo=lambda s: None)
    a, _, _ = chain(tmp_path, runner, calls, source)
    (a.directory / "out.txt").unlink()
    calls.ran.clear()
    chain(tmp_path, StepRunner(tmp_path / "log.jsonl", echo=lambda s: None), calls, source)
    assert calls.ran == ["upper"]  # same output again, so add/count stay cached


def test_progress_lines_show_position_status_and_time(tmp_path, source):
    lines: list[str] = []
    chain(tmp_path, StepRunner(tmp_path / "log.jsonl", echo=lines.append, total=3), Calls(), source)
    chain(tmp_path, StepRunner(tmp_path / "log.jsonl", echo=lines.append, total=3), Calls(), source)
    assert lines[0] == "[1/3] upper: running ..."
    assert re.fullmatch(r"\[1/3\] upper: done in \d+\.\d s \(CPU \d+\.\d s\)", lines[1]), lines[1]
    assert lines[-1].startswith("[3/3] count: cached (")


def test_records_keep_the_steps_cpu_time_apart_from_its_wall_time(tmp_path):
    """A step that waits costs wall time but no CPU; one that computes costs both. The CPU time
    is logged, stored in done.json and comes back with the cached record."""
    runner = StepRunner(tmp_path / "log.jsonl", echo=lambda s: None)

    def wait(work: Path):
        time.sleep(0.3)
        (work / "w.txt").write_text("waited")

    def compute(work: Path):
        end = time.process_time() + 0.3
        n = 0
        while time.process_time() < end:
            n += 1
        (work / "c.txt").write_text(str(n))

    waited = runner.run(Step("wait", tmp_path / "wait"), wait).record
    computed = runner.run(Step("compute", tmp_path / "compute"), compute).record
    assert waited.seconds >= 0.3 and waited.cpu_seconds < 0.1
    assert computed.cpu_seconds >= 0.3 and computed.seconds >= 0.3
    assert [r.cpu_seconds for r in read_log(tmp_path / "log.jsonl")] == [waited.cpu_seconds, computed.cpu_seconds]
    assert json.loads((tmp_path / "compute" / DONE).read_text())["cpu_seconds"] == computed.cpu_seconds
    again = StepRunner(tmp_path / "log.jsonl", echo=lambda s: None).run(Step("compute", tmp_path / "compute"), compute)
    assert again.record.status == "cached" and again.record.cpu_seconds == computed.cpu_seconds


def test_a_folder_input_is_hashed_by_its_files(tmp_path):
    """A data split saved by `datasets` is a folder: its hash follows every file in it."""
    from subjlab.runner.steps import file_sha256

    split = tmp_path / "train"
    split.mkdir()
    (split / "state.json").write_text("{}")
    (split / "data-00000-of-00001.arrow").write_bytes(b"one")
    first = file_sha256(split)
    assert file_sha256(split) == first
    (split / "data-00000-of-00001.arrow").write_bytes(b"two")
    second = file_sha256(split)
    assert second != first
    (split / "extra.arrow").write_bytes(b"")
    assert file_sha256(split) not in (first, second)
