"""Fixtures for the training tests: tiny real slices of SMS spam, one short shared training run, and
`torchrun` for data-parallel runs of real processes on loopback.

Runs are kept to a few optimizer steps on ~40 real messages (max_length 64, one torch thread, so a
busy shared CPU is not oversubscribed); the run is shared by the tests that only read its outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from subjlab.data import load_split
from subjlab.records import Example
from subjlab.tasks import get_task

#: Settings of the shared short run: a high learning rate and no warmup so 8 steps visibly learn.
QUICK = dict(
    max_steps=8, batch_size=8, eval_batch_size=32, lr=3e-4, warmup_ratio=0.0, max_length=64,
    val_fraction=0.2, seed=7, threads=1, progress=False,
)


@dataclass
class Slices:
    """Real SMS-spam examples: `train` (20 per label) and `eval` (8 per label, from the test split)."""

    train: list[Example]
    eval: list[Example]


@dataclass
class Run:
    """The shared training run: its config, result and output directory."""

    config: object
    result: object
    out: Path


@pytest.fixture(scope="session")
def sms_task():
    return get_task("sms_spam")


@pytest.fixture(scope="session")
def sms(task_data, sms_task) -> Slices:
    return Slices(
        train=load_split(sms_task, "train", task_data, limit_per_label=20, seed=0),
        eval=load_split(sms_task, "test", task_data, limit_per_label=8, seed=0),
    )


@pytest.fixture(scope="session")
def quick_run(sms, sms_task, tmp_path_factory) -> Run:
    from training import TrainConfig, train_classifier

    out = tmp_path_factory.mktemp("sms_run")
    config = TrainConfig.for_task(sms_task, out_dir=str(out), **QUICK)
    return Run(config, train_classifier(config, sms.train, sms.eval), out)


@pytest.fixture(scope="session")
def torchrun():
    """`torchrun(args, processes=2)`: see `run_under_torchrun`."""
    return run_under_torchrun


def run_under_torchrun(args: list[str], processes: int = 2, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `args` (a script path or `-m module ...`) in `processes` real processes started by torchrun
    (standalone rendezvous on a free loopback port, gloo on a CPU machine); return the finished process
    with text stdout/stderr. One torch thread per process (torchrun's default), offline."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
