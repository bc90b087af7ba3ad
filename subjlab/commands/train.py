"""`subjlab train`: fine-tune an encoder classifier on real or synthetic data and score it."""

from __future__ import annotations

import logging
import os

import click

from subjlab.commands._output import FORMAT_OPTION, emit_json, emit_table
from subjlab.commands.data import DATA_OPTION

REAL = "real"


@click.command()
@click.option("--task", "task_name", required=True, help="Task: registry key (e.g. sms_spam) or a task TOML/YAML file.")
@click.option(
    "--train", "train_sources", multiple=True, metavar="FILE|real[:N]",
    help="Training data: a JSONL/CSV examples file whose `label` holds the task's labels, or `real` for "
    "the task's real train split (`real:N`: a seeded sample of N per label of it). Several sources: "
    "--train real:50 synthetic.jsonl (or repeat --train).",
)
@click.argument("more_train", nargs=-1, type=click.Path(dir_okay=False), metavar="[FILE...]")
@click.option(
    "--eval", "eval_source", default=REAL, show_default=True, metavar="FILE|real",
    help="Evaluation data: an examples file, or `real` for the task's real test split.",
)
@click.option(
    "--model", default="minilm", show_default=True, metavar="PATH_OR_ID",
    help="Backbone: `minilm` (the packaged all-MiniLM-L6-v2), a local model directory or a Hugging Face id "
    "(e.g. bert-base-uncased, roberta-base: downloaded by transformers, so the hub must be reachable or the "
    "model cached).",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory (created).")
@click.option("--epochs", type=float, default=3.0, show_default=True, help="Training epochs (may be fractional).")
@click.option("--batch-size", type=int, default=16, show_default=True,
              help="Examples per optimizer step and process (under torchrun with N processes a step takes N x this).")
@click.option("--lr", type=float, default=None,
              help="Peak learning rate (AdamW, 10% linear warmup, linear decay) [default: 2e-4 for the packaged "
              "MiniLM, 5e-5 for other models].")
@click.option("--max-length", type=int, default=128, show_default=True, help="Truncate texts to this many tokens.")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Share of the training data held out (stratified) to pick the best checkpoint; 0 = none.")
@click.option("--patience", type=int, default=2, show_default=True,
              help="Stop after this many validations without a better Macro-F1; 0 = never stop early.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the split, the head, dropout and data order.")
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimizer steps.")
@click.option("--limit-per-label", type=int, default=None, help="Use a seeded sample of at most N training examples per label.")
@click.option("--eval-limit-per-label", type=int, default=None, help="Evaluate on at most N examples per label (seeded).")
@DATA_OPTION
@click.option("--cpu", is_flag=True, help="Train on the CPU even if a GPU is visible.")
@click.option("--threads", type=int, default=None, help="torch CPU threads [default: one per core]; 1 is fastest on a busy shared CPU.")
@click.option("--save-model/--no-save-model", default=True, show_default=True, help="Save the fine-tuned model under OUT/model.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr.")
@FORMAT_OPTION
def train(
    task_name: str, train_sources: tuple[str, ...], more_train: tuple[str, ...], eval_source: str, model: str,
    out_dir: str, epochs: float, batch_size: int, lr: float, max_length: int, val_fraction: float, patience: int,
    seed: int, max_steps: int | None, limit_per_label: int | None, eval_limit_per_label: int | None,
    data_dir: str | None, cpu: bool, threads: int | None, save_model: bool, progress: bool, fmt: str,
) -> None:
    """Fine-tune an encoder classifier (AutoModelForSequenceClassification) and evaluate it.

    \b
    Writes into OUT:
      metrics.json       accuracy, macro_f1, per-class precision/recall/F1, confusion matrix,
                         sizes, validation score of the kept checkpoint, seconds, model, seed
      predictions.jsonl  one line per eval example: id, label, prediction, probs {label: p}
      history.json       training loss per step and every validation
      model/             the fine-tuned model and tokenizer (save_pretrained)

    Every label must be one of the task's labels (an error names the file, line and example).
    Runs in one process by default (a visible GPU, else the CPU). Data-parallel, the same command
    under a launcher: each process trains on its share of every batch, only the first writes OUT
    (see docs/training.md):

    \b
      torchrun --nproc_per_node 2 -m subjlab.cli train ...            CPUs (gloo) or GPUs (NCCL)
      accelerate launch --multi_gpu --num_processes 4 -m subjlab.cli train ...

    \b
    Example:
      subjlab train --task sms_spam --train real --limit-per-label 100 \\
          --eval real --eval-limit-per-label 100 --epochs 2 --out runs/sms_real
    """
    from subjlab.data import load_split, resolve_data_dir, sample_per_label
    from subjlab.tasks import get_task
    from training.config import TrainConfig
    from training.examples import read_labeled_file
    from training.finetune import train_classifier

    _show_training_log()
    sources = list(train_sources) + list(more_train)
    if not sources:
        raise click.UsageError("give training data: --train FILE [FILE...] or --train real")
    task = get_task(task_name)
    examples = []
    for source in sources:
        real_limit = _real_source(source)
        if real_limit is not None:
            examples += load_split(task, "train", data_dir, real_limit or None, seed)
        else:
            examples += read_labeled_file(source, task.labels)
    if limit_per_label is not None:
        examples = sample_per_label(examples, limit_per_label, seed)
    if eval_source == REAL:
        eval_examples = load_split(task, "test", data_dir, eval_limit_per_label, seed)
    else:
        eval_examples = read_labeled_file(eval_source, task.labels)
        if eval_limit_per_label is not None:
            eval_examples = sample_per_label(eval_examples, eval_limit_per_label, seed)
    provenance = {
        "train": sources,
        "eval": eval_source,
        "limit_per_label": limit_per_label,
        "eval_limit_per_label": eval_limit_per_label,
    }
    if any(_real_source(s) is not None for s in sources) or eval_source == REAL:
        provenance["data_dir"] = str(resolve_data_dir(data_dir))
    config = TrainConfig.for_task(
        task, model=model, out_dir=out_dir, epochs=epochs, batch_size=batch_size,
        lr=lr, max_length=max_length, val_fraction=val_fraction, seed=seed, max_steps=max_steps,
        patience=patience or None, save_model=save_model, cpu=cpu, threads=threads, progress=progress,
        provenance=provenance,
    )
    result = train_classifier(config, examples, eval_examples)
    if os.environ.get("RANK", "0") != "0":  # under `accelerate launch`: only the main process reports
        return
    metrics = result.metrics_dict()
    if fmt == "json":
        emit_json(metrics)
        return
    m = result.metrics
    rows = [["accuracy", m.accuracy, "", "", ""], ["macro_f1", m.macro_f1, "", "", ""]]
    for lab, s in m.per_class.items():
        rows.append([f"class {lab}", s.f1, s.precision, s.recall, s.support])
    title = (f"{task.name}: {result.train_size} train / {result.val_size} val / {result.eval_size} eval, "
             f"{result.steps} steps, {result.seconds:.0f}s")
    emit_table(title, ["metric", "value (F1)", "precision", "recall", "support"], rows)
    if result.val_metrics is not None:
        click.echo(f"kept checkpoint: step {result.best_step}, validation Macro-F1 {result.val_metrics.macro_f1:.3f}")
    click.echo(f"wrote {out_dir}/metrics.json, predictions.jsonl, history.json"
               + (", model/" if result.model_dir else ""))


def _real_source(source: str) -> int | None:
    """Return None for a file, 0 for `real`, N for `real:N` (N per label of the real train split)."""
    if source == REAL:
        return 0
    head, sep, tail = source.partition(":")
    if head != REAL or not sep:
        return None
    if not tail.isdigit() or int(tail) < 1:
        raise click.BadParameter(f"{source!r}: expected real:N with N a positive integer", param_hint="--train")
    return int(tail)


class _EchoHandler(logging.Handler):
    """A logging handler that writes each message to the current stderr with click.echo."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _show_training_log() -> None:
    """Send the training package's INFO log lines to stderr (once; main process only when distributed)."""
    if os.environ.get("RANK", "0") != "0":
        return
    logger = logging.getLogger("training")
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler())
    logger.setLevel(logging.INFO)
