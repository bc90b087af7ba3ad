"""`auto_threads`: how many torch threads a study run uses when --threads is not given."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from subjlab.cli import cli
from subjlab.runner.threads import auto_threads, usable_cores


def test_an_idle_machine_gets_a_thread_per_core():
    assert auto_threads(cores=2, load=0.0) == 2
    assert auto_threads(cores=2, load=0.4) == 2
    assert auto_threads(cores=16, load=0.2) == 16


def test_busy_cores_are_left_to_the_jobs_that_keep_them_busy():
    assert auto_threads(cores=2, load=0.6) == 1
    assert auto_threads(cores=2, load=1.5) == 1
    assert auto_threads(cores=16, load=3.2) == 13


def test_an_overloaded_machine_still_gets_one_thread():
    assert auto_threads(cores=2, load=7.0) == 1
    assert auto_threads(cores=1, load=0.0) == 1


def test_defaults_read_this_machine():
    n = auto_threads()
    assert 1 <= n <= usable_cores() <= (os.cpu_count() or 1)


def test_impossible_inputs_are_errors():
    with pytest.raises(ValueError, match="cores must be at least 1"):
        auto_threads(cores=0, load=0.0)
    with pytest.raises(ValueError, match="load must be >= 0"):
        auto_threads(cores=2, load=-1.0)


def test_study_commands_document_the_automatic_default():
    for command in ("run", "demo"):
        res = CliRunner().invoke(cli, [command, "--help"])
        assert res.exit_code == 0
        assert "the cores not busy with other work when the run" in " ".join(res.output.split())
