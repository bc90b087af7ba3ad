"""`auto_threads`: how many torch threads a study run uses when --threads is not given."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from subjlab.cli import cli
from subjlab.runner.threads import auto_threads, busy_cores, usable_cores


def test_an_idle_machine_gets_a_thread_per_core():
    assert auto_threads(cores=2, busy=0.0) == 2
    assert auto_threads(cores=2, busy=0.4) == 2
    assert auto_threads(cores=16, busy=0.2) == 16


def test_busy_cores_are_left_to_the_jobs_that_keep_them_busy():
    assert auto_threads(cores=2, busy=0.6) == 1
    assert auto_threads(cores=2, busy=1.5) == 1
    assert auto_threads(cores=16, busy=3.2) == 13


def test_an_overloaded_machine_still_gets_one_thread():
    assert auto_threads(cores=2, busy=7.0) == 1
    assert auto_threads(cores=1, busy=0.0) == 1


def test_defaults_read_this_machine():
    n = auto_threads()
    assert 1 <= n <= usable_cores() <= (os.cpu_count() or 1)


def test_busy_cores_sees_a_process_spinning_on_a_core():
    """What `auto_threads` leaves out is measured now: a process spinning on a core counts as about one
    busy core (at least 0.8 of one; more when other work runs beside it)."""
    spinner = subprocess.Popen([sys.executable, "-c", "import sys, time\nprint(flush=True)\nend = time.time() + 30\n"
                                "while time.time() < end: pass"], stdout=subprocess.PIPE)
    try:
        spinner.stdout.readline()  # it runs
        assert busy_cores(1.0) >= 0.8
    finally:
        spinner.kill()
        spinner.wait()


def test_impossible_inputs_are_errors():
    with pytest.raises(ValueError, match="cores must be at least 1"):
        auto_threads(cores=0, busy=0.0)
    with pytest.raises(ValueError, match="busy must be >= 0"):
        auto_threads(cores=2, busy=-1.0)
    with pytest.raises(ValueError, match="seconds must be > 0"):
        busy_cores(0)


def test_study_commands_document_the_automatic_default():
    for command in ("run", "demo"):
        res = CliRunner().invoke(cli, [command, "--help"])
        assert res.exit_code == 0
        assert "the cores not busy with other work when the run" in " ".join(res.output.split())
