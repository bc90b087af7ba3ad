"""Data-parallel training over real processes (torchrun, gloo on loopback): split batches, one writer,
the same results as one process."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from subjlab.cli import cli
from subjlab.records import read_predictions

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("subjlab_tests_ddp_batches", HERE / "ddp_batches.py")
ddp_batches = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ddp_batches)


def _padding_ratio(batches: list[list[int]], lengths: list[int]) -> float:
    """Tokens after padding each batch to its longest example, over the real tokens."""
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    return padded / sum(lengths[i] for batch in batches for i in batch)


@pytest.mark.slow
def test_two_processes_take_disjoint_halves_of_the_one_process_length_grouped_batches(task_data, tmp_path, torchrun):
    from training.batches import train_loader

    out = tmp_path / "batches.json"
    proc = torchrun([str(HERE / "ddp_batches.py"), str(task_data), str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["num_processes"] == 2 and record["backend"] == "gloo"

    features, tokenizer = ddp_batches.features(str(task_data))
    lengths = [len(f["input_ids"]) for f in features]
    size = ddp_batches.BATCH_SIZE
    loader = train_loader(features, tokenizer, 2 * size, ddp_batches.SEED)
    one_process = [b["index"].tolist() for _ in range(ddp_batches.EPOCHS) for b in loader]
    per_epoch = math.ceil(len(features) / (2 * size))
    assert len(record["steps"]) == len(one_process) == ddp_batches.EPOCHS * per_epoch
    for step, ((first, second), global_batch) in enumerate(zip(record["steps"], one_process)):
        assert len(first) == len(second) == size, step  # every step: half the global batch each
        assert not set(first) & set(second), step
        # process 0 holds the first half of the one-process run's batch, process 1 the second half;
        # a short last batch is filled up with the epoch's first examples, as accelerate does
        assert (first + second)[: len(global_batch)] == global_batch, step
    for epoch in range(ddp_batches.EPOCHS):
        seen = [i for step in record["steps"][epoch * per_epoch:(epoch + 1) * per_epoch] for part in step for i in part]
        assert set(seen) == set(range(len(features)))

    slices = [part for step in record["steps"] for part in step]
    random_batches = [random.Random(s).sample(range(len(features)), size) for s in range(len(slices))]
    grouped, shuffled = _padding_ratio(slices, lengths), _padding_ratio(random_batches, lengths)
    assert grouped < 1.25 < shuffled, (grouped, shuffled)  # each process's slice holds similar lengths


@pytest.mark.slow
def test_train_under_torchrun_splits_the_work_writes_once_and_matches_one_process(task_data, tmp_path, torchrun):
    common = ["--task", "sms_spam", "--train", "real:20", "--eval", "real", "--eval-limit-per-label", "8",
              "--data", str(task_data), "--epochs", "1", "--max-length", "64", "--lr", "3e-4", "--seed", "5",
              "--val-fraction", "0.2", "--no-progress", "--format", "json"]
    two = tmp_path / "two"
    proc = torchrun(["-m", "subjlab.cli", "train", *common, "--batch-size", "4", "--out", str(two)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout)  # one JSON document: only the main process reports
    one = tmp_path / "one"
    res = CliRunner().invoke(cli, ["train", *common, "--batch-size", "8", "--threads", "1", "--out", str(one)])
    assert res.exit_code == 0, res.output + res.stderr

    m2, m1 = json.loads((two / "metrics.json").read_text()), json.loads((one / "metrics.json").read_text())
    assert printed == m2
    assert (m2["num_processes"], m2["backend"], m1["num_processes"], m1["backend"]) == (2, "gloo", 1, None)
    assert m1["train_size"] == m2["train_size"] == 32 and m1["steps"] == m2["steps"] == 4
    assert m1["samples_per_process"] == [32] and m2["samples_per_process"] == [16, 16]
    assert sorted(p.name for p in two.iterdir()) == ["history.json", "metrics.json", "model", "predictions.jsonl"]
    assert len(json.loads((two / "history.json").read_text())["loss"]) == 4

    p2, p1 = read_predictions(two / "predictions.jsonl"), read_predictions(one / "predictions.jsonl")
    assert [p.id for p in p2] == [p.id for p in p1] and len({p.id for p in p2}) == 16  # complete, once each
    # the same global batches: only dropout draws and float summation order differ
    assert max(abs(a.probs["spam"] - b.probs["spam"]) for a, b in zip(p1, p2)) < 0.05
    assert abs(m1["accuracy"] - m2["accuracy"]) <= 1 / 16 and abs(m1["macro_f1"] - m2["macro_f1"]) <= 0.07


def test_a_launch_that_accelerate_did_not_join_is_refused_instead_of_training_alone_twice():
    from training.distributed import check_joined

    check_joined(2, 2, "MULTI_CPU on cpu")
    with pytest.raises(RuntimeError, match=r"started 2 processes \(WORLD_SIZE\) but accelerate joined 1 .*"
                                           r"each process would train alone on all the data"):
        check_joined(2, 1, "NO on mps")


def _launcher_env(cmd: list[str]) -> dict[str, str]:
    """The environment a launcher gives its process (`cmd` runs `env` through it)."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True,
                         env=dict(os.environ, HF_HUB_OFFLINE="1")).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_accelerate_launch_asked_for_two_processes_on_a_cpu_machine_warns_that_it_started_one():
    from training.distributed import launch_warning

    bin_dir = Path(sys.executable).parent
    simple = _launcher_env([str(bin_dir / "accelerate"), "launch", "--num_processes", "2", "--no_python", "env"])
    warning = launch_warning(simple, joined=1)
    assert warning and "--multi_gpu --num_processes N" in warning and "torchrun --nproc_per_node N" in warning
    torchrun = _launcher_env([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                              "--no-python", "env"])
    assert launch_warning(torchrun, joined=1) is None and launch_warning(dict(os.environ), joined=1) is None
