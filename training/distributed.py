"""Data-parallel runs over the processes a launcher started (`torchrun`, `accelerate launch`).

Why a run under `torchrun --nproc_per_node 2` used to train alone in every process: accelerate picks
its distributed mode from the launcher's variables (LOCAL_RANK, WORLD_SIZE) *and* the device. Built
with `cpu=False` on a machine without an accelerator, it finds no backend for the (absent) device and
falls back to one process without a word, so each process trained the whole model on all the data.
`make_accelerator` asks for the CPU exactly when no accelerator is present (or `--cpu` was given): the
same code then runs NCCL over GPUs and gloo over CPUs. It refuses to go on when the launcher started
more processes than accelerate joined, and warns when `accelerate launch --num_processes N` started
one process (its single-process launcher, chosen without --multi_gpu on a machine without GPUs).

Batches: the training loader yields *global* batches of `batch_size x processes` examples, formed by
transformers' `LengthGroupedSampler` (seeded; accelerate keeps its generator in step on every
process) and accelerate's `split_batches` hands each process its own slice of every global batch. So
- at every optimizer step the processes hold disjoint examples of similar lengths (a slice of a
  length-grouped batch), so the grouping's saving on padding is kept;
- a run on N processes with `batch_size` B sees the very global batches of a one-process run with
  batch size N x B, so their results differ only by dropout draws and float summation order.
Validation and evaluation batches are split the same way and gathered (`gather_for_metrics` drops the
examples that pad the last batch), so every process holds every prediction and takes the same
early-stopping decisions; only the main process writes files.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import torch
from torch.utils.data import DataLoader

from training.batches import eval_loader, train_loader

log = logging.getLogger("training")


def launched_processes() -> int:
    """The number of processes the launcher started (its WORLD_SIZE; 1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def make_accelerator(cpu: bool):
    """Return an `accelerate.Accelerator` joined to the launcher's processes, with split batches.

    Uses the CPU (gloo between processes) when `cpu` is set or no accelerator is visible, else the
    accelerator (NCCL between CUDA processes). Raises RuntimeError when the launcher started more
    processes than accelerate joined, instead of letting each process train alone; logs a warning
    when `accelerate launch` was asked for several processes but started one (see `launch_warning`).
    """
    from accelerate import Accelerator, DataLoaderConfiguration

    use_cpu = cpu or not torch.accelerator.is_available()
    accelerator = Accelerator(cpu=use_cpu, dataloader_config=DataLoaderConfiguration(split_batches=True))
    check_joined(launched_processes(), accelerator.num_processes, f"{accelerator.distributed_type} on {accelerator.device}")
    warning = launch_warning(os.environ, accelerator.num_processes)
    if warning:
        log.warning(warning)
    return accelerator


def check_joined(launched: int, joined: int, state: str) -> None:
    """Raise RuntimeError when accelerate joined fewer processes (`joined`, in `state`) than the
    launcher started (`launched`): each process would train the whole model on all the data."""
    if joined != launched:
        raise RuntimeError(
            f"the launcher started {launched} processes (WORLD_SIZE) but accelerate joined {joined} ({state}): "
            "each process would train alone on all the data. On a device without a distributed backend, "
            "pass --cpu to train data-parallel on the CPUs (gloo)"
        )


def launch_warning(env: Mapping[str, str], joined: int) -> str | None:
    """A warning when `accelerate launch --num_processes N` (N > 1) started one process, else None.

    Without --multi_gpu (or a config file saying so) and with no GPU to count, accelerate's simple
    launcher starts a single process and only sets MASTER_PORT, never WORLD_SIZE: the run is correct
    but not parallel.
    """
    simple_launcher = "ACCELERATE_USE_CPU" in env and "MASTER_PORT" in env and "WORLD_SIZE" not in env
    if joined == 1 and simple_launcher:
        return ("accelerate launch started one process although several were asked for (without --multi_gpu "
                "it starts one on a machine without GPUs): training on 1 process. For several processes "
                "use `accelerate launch --multi_gpu --num_processes N` or `torchrun --nproc_per_node N`")
    return None


def backend_name(accelerator) -> str | None:
    """The torch.distributed backend joining the processes ("gloo", "nccl", ...), None for one process."""
    if accelerator.num_processes == 1:
        return None
    return torch.distributed.get_backend()


def prepare_train_loader(accelerator, features: list[dict[str, Any]], tokenizer, batch_size: int, seed: int) -> DataLoader:
    """A training loader giving this process `batch_size` examples of each length-grouped global batch
    of `batch_size x processes` (see the module docstring)."""
    global_batch = batch_size * accelerator.num_processes
    return accelerator.prepare(train_loader(features, tokenizer, global_batch, seed))


def prepare_eval_loader(accelerator, features: list[dict[str, Any]], tokenizer, batch_size: int) -> DataLoader:
    """An evaluation loader giving this process `batch_size` examples of each length-sorted global batch;
    run it with `predict.class_probabilities(model, loader, accelerator)` to gather every output."""
    global_batch = batch_size * accelerator.num_processes
    return accelerator.prepare(eval_loader(features, tokenizer, global_batch))


def per_process(accelerator, values: Sequence[float]) -> list[list[float]]:
    """Gather one row of numbers from every process: row p holds process p's `values` (on every process)."""
    row = torch.tensor([list(values)], dtype=torch.float64, device=accelerator.device)
    return accelerator.gather(row).cpu().tolist()
