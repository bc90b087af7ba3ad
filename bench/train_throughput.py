"""Training throughput on the CPU: subjlab's loop (`training.train_classifier`) vs a plain Hugging Face
`Trainer` with default arguments, same data, model, batch size and number of steps.

    nice python bench/train_throughput.py            # ~1-2 minutes on an idle 2-core machine

Data: a seeded slice of the real FewRel train split bundled with the package (up to 128 per label:
394 examples, of which --max-steps 12 batches of 16 are used), tokenized once (truncated to
--max-length) and handed to both. Model: the packaged all-MiniLM-L6-v2 with a fresh 4-label head. The Trainer gets
`TrainingArguments(output_dir, per_device_train_batch_size, max_steps, report_to="none")` and
otherwise its defaults (AdamW, lr 5e-5, linear schedule, grad-norm clipping at 1.0, random batches
padded per batch by DataCollatorWithPadding, no evaluation, no checkpoint within these steps). Our
loop runs with the same lr, no warmup and no validation split.

Timed: the training loop alone (Trainer: a callback from on_train_begin to on_train_end; ours:
`TrainResult.train_seconds` / `train_cpu_seconds`), after one untimed warm-up step. Printed:
samples/s of each by wall time and by this process's CPU time, and both ratios (ours / Trainer).
On a machine shared with other busy processes the CPU-time ratio is the steadier one.

Where a gain comes from: length-grouped batches pad far less (AG News texts are 33-84 tokens,
5th-95th percentile; random batches of 16 pad the slice to ~1.7x its real token count).

Case `processes` (`--case processes`, part of the default run): `subjlab train` on the same slice in
one process and data-parallel in `--processes` (2) processes under torchrun (gloo on loopback), each
process with batch --batch-size and one torch thread, --samples (384) training examples per run,
--rounds (3) alternated runs of each, medians reported. --threads-baseline adds one process with 2
threads, the other way to spend the same cores (on a busy machine by far the slowest). Printed per
setting: samples/s of the training loop (wall time of the slowest process) and CPU seconds per
sample (all processes), and the ratio of the data-parallel run to the one-process run(s). The load
average is printed at the start and end: on a machine busy with other jobs the processes compete
for the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import TrainerCallback  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="fewrel")
    parser.add_argument("--per-label", type=int, default=128, help="examples per label in the slice")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=12)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for both (default 1: on a small shared CPU more threads oversubscribe "
                        "it and OpenMP threads wait on each other; 0 = torch's default, one per core)")
    parser.add_argument("--data", default=None, help="data directory [default: as `subjlab train`]")
    parser.add_argument("--case", choices=("all", "trainer", "processes"), default="all",
                        help="trainer: HF Trainer vs our loop; processes: 1 vs --processes data-parallel processes")
    parser.add_argument("--processes", type=int, default=2, help="processes case: the data-parallel run's processes")
    parser.add_argument("--samples", type=int, default=384,
                        help="processes case: training examples each run processes (multiple of batch x processes)")
    parser.add_argument("--threads-baseline", action="store_true",
                        help="processes case: also run 1 process with --processes torch threads")
    parser.add_argument("--rounds", type=int, default=3,
                        help="processes case: runs of each setting, alternated; medians are reported")
    args = parser.parse_args()
    os.nice(5)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    if args.case in ("all", "trainer"):
        trainer_vs_loop(args)
    if args.case in ("all", "processes"):
        one_vs_several_processes(args)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def trainer_vs_loop(args: argparse.Namespace) -> None:
    """The HF Trainer with default arguments vs `train_classifier`, in this process."""
    import torch
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

    from subjlab.data import load_split
    from subjlab.models import minilm_path
    from subjlab.tasks import get_task
    from training import TrainConfig, train_classifier
    from training.backbone import load_backbone, quiet_transformers
    from training.batches import encode

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    task = get_task(args.task)
    data = load_split(task, "train", args.data, limit_per_label=args.per_label, seed=0)
    held_out = load_split(task, "test", args.data, limit_per_label=2, seed=0)  # our API needs eval data; untimed
    labels = list(task.labels)
    samples = args.max_steps * args.batch_size
    print(f"{task.name}: {len(data)} real examples, MiniLM, batch {args.batch_size}, {args.max_steps} steps "
          f"({samples} samples), max_length {args.max_length}, torch threads {torch.get_num_threads()}")

    # Warm-up: one forward/backward pass so allocator and kernels are warm for both timed runs.
    model, tokenizer = load_backbone("", labels)
    warm = DataCollatorWithPadding(tokenizer)(
        [{k: v for k, v in f.items() if k != "index"} for f in encode(tokenizer, data[: args.batch_size], {l: i for i, l in enumerate(labels)}, args.max_length)]
    )
    model(**warm).loss.backward()

    # Baseline: a plain Trainer with default arguments on the same tokenized features.
    features = [
        {k: v for k, v in f.items() if k != "index"}
        for f in encode(tokenizer, data, {l: i for i, l in enumerate(labels)}, args.max_length)
    ]
    torch.manual_seed(42)
    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(
            minilm_path(), num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={l: i for i, l in enumerate(labels)},
        )
    clock = _TrainClock()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            model=model,
            args=TrainingArguments(output_dir=tmp, per_device_train_batch_size=args.batch_size,
                                   max_steps=args.max_steps, report_to="none"),
            train_dataset=features,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=[clock],
        )
        trainer.train()

    # Ours: the same slice, no validation split, same steps, batch size and lr.
    config = TrainConfig.for_task(
        task, batch_size=args.batch_size, max_steps=args.max_steps, max_length=args.max_length,
        val_fraction=0.0, warmup_ratio=0.0, lr=5e-5, seed=42,
    )
    result = train_classifier(config, data, held_out)

    rows = [("HF Trainer (defaults)", clock.wall, clock.cpu), ("subjlab loop", result.train_seconds, result.train_cpu_seconds)]
    for name, wall, cpu in rows:
        print(f"{name:22s} {samples / wall:7.2f} samples/s wall ({wall:6.1f} s)   "
              f"{samples / cpu:7.2f} samples per CPU-second ({cpu:6.1f} s)")
    print(f"ratio (ours / Trainer): {clock.wall / result.train_seconds:.2f}x by wall time, "
          f"{clock.cpu / result.train_cpu_seconds:.2f}x by CPU time")


def one_vs_several_processes(args: argparse.Namespace) -> None:
    """`subjlab train` in 1 process vs under torchrun with `--processes` (gloo), same slice and samples.

    Both get the same per-process batch (--batch-size), one torch thread per process, no validation
    and --samples training examples: 1 process takes samples/batch steps, N processes samples/(batch x N)
    steps of N slices. Timed by the runs themselves (the training loop: the slowest process's wall time,
    and the CPU time of all processes together, from metrics.json). With --threads-baseline, also 1
    process with N threads, the other way to use the same cores.
    """
    several = (f"{args.processes} processes x 1 thread", args.processes, 1)
    settings = [("1 process x 1 thread", 1, 1), several]
    if args.threads_baseline:
        settings.insert(1, (f"1 process x {args.processes} threads", 1, args.processes))
    per_run = {name: [] for name, _, _ in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, processes, threads in (settings if round_ % 2 == 0 else settings[::-1]):
                metrics = _train_run(args, processes, threads, Path(tmp) / f"r{round_}p{processes}t{threads}")
                per_run[name].append(metrics)
    first = per_run[settings[0][0]][0]
    print(f"\n{first['task']}: {first['train_size']} real examples, MiniLM, {args.samples} samples per run, "
          f"batch {args.batch_size} per process, max_length {args.max_length}, {args.rounds} round(s); "
          "training loop only (no model loading, no evaluation)")
    rates = {}
    for name, runs in per_run.items():
        rate = statistics.median(m["train_samples_per_second"] for m in runs)
        cpu = statistics.median(m["train_cpu_seconds_per_sample"] for m in runs)
        rates[name] = (rate, cpu)
        m = runs[0]
        print(f"{name:24s} {rate:7.2f} samples/s wall   {cpu:6.3f} CPU-s per sample   "
              f"({m['steps']} steps, samples per process {m['samples_per_process']}, backend {m['backend']}; "
              f"each run: {', '.join(format(r['train_samples_per_second'], '.2f') for r in runs)} samples/s)")
    for name, _, _ in settings[:-1]:
        base, parallel = rates[name], rates[several[0]]
        print(f"ratio ({several[0]} / {name}): {parallel[0] / base[0]:.2f}x samples/s, "
              f"{parallel[1] / base[1]:.2f}x CPU-s per sample")


def _train_run(args: argparse.Namespace, processes: int, threads: int, out: Path) -> dict:
    """Run `subjlab train` (under torchrun when processes > 1) and return its metrics.json."""
    if args.samples % (args.batch_size * processes):
        raise SystemExit(f"--samples {args.samples} is not a multiple of batch {args.batch_size} x {processes} processes")
    steps = args.samples // (args.batch_size * processes)
    train = ["-m", "subjlab.cli", "train", "--task", args.task, "--train", f"real:{args.per_label}",
             "--eval", "real", "--eval-limit-per-label", "2", "--epochs", "100", "--max-steps", str(steps),
             "--batch-size", str(args.batch_size), "--max-length", str(args.max_length), "--val-fraction", "0",
             "--lr", "5e-5", "--threads", str(threads), "--no-save-model", "--no-progress", "--format", "json",
             "--out", str(out)] + (["--data", args.data] if args.data else [])
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(launcher + train, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(launcher + train)} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    if metrics["num_processes"] != processes:
        raise SystemExit(f"{' '.join(launcher + train)}: expected {processes} processes, got {metrics['num_processes']}")
    return metrics


class _TrainClock(TrainerCallback):
    """A Trainer callback timing the training loop (wall and process CPU time), like our loop's clock."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def on_train_begin(self, *args, **kwargs) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def on_train_end(self, *args, **kwargs) -> None:
        self.wall, self.cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu


if __name__ == "__main__":
    main()
