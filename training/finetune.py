"""Fine-tune an encoder classifier: `train_classifier(config, train, eval) -> TrainResult`.

The loop is plain torch under `accelerate.Accelerator`, so the same code runs on the CPU by default,
on one GPU when one is visible, and data-parallel over several processes (GPUs with NCCL, CPUs with
gloo, one or more machines) under `torchrun` or `accelerate launch` (see training.distributed: each
process takes its slice of every global batch, evaluation is gathered, the main process writes):

1. labels are checked against the task (a label outside `config.labels` is a ValueError naming the
   example, never a new class); a stratified, seeded validation split is held out of `train`;
2. all seeds (random, numpy, torch) are set before the classification head is created and the data
   order comes from a seeded generator, so a run with the same seed repeats;
3. batches are length-grouped and padded per batch; AdamW (no decay on biases and LayerNorm), linear
   warmup then decay, gradient norm clipped at 1.0;
4. the model is validated at the end of each epoch (or every `eval_every` steps) and the checkpoint
   with the best validation Macro-F1 is kept; `patience` validations without improvement stop early;
5. the kept model predicts `eval`; metrics and predictions are returned and, with `out_dir`, written.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Sequence

from subjlab.records import Example
from training.config import TrainConfig, TrainResult, ValPoint
from training.examples import check_labels, check_unique_ids, split_validation
from training.metrics import ClassificationMetrics, classification_metrics

log = logging.getLogger("training")


def train_classifier(config: TrainConfig, train: Sequence[Example], eval: Sequence[Example]) -> TrainResult:
    """Fine-tune `config.model` on `train` (minus a validation split) and evaluate on `eval`.

    Every example needs a label from `config.labels`; eval ids must be unique. Returns a TrainResult
    (metrics of the kept model on `eval`, its predictions in `eval` order, loss and validation
    history). With `config.out_dir`, writes predictions.jsonl, history.json, metrics.json and
    (if `config.save_model`) the model and tokenizer under out_dir/model.
    """
    import torch

    previous = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(config, train, eval)
    finally:
        torch.set_num_threads(previous)


def _train(config: TrainConfig, train: Sequence[Example], eval: Sequence[Example]) -> TrainResult:
    """The body of `train_classifier` (run with the requested torch thread count)."""
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup, set_seed

    from training.backbone import load_backbone, quiet_transformers, resolve_model
    from training.batches import encode
    from training.distributed import backend_name, make_accelerator, per_process, prepare_eval_loader, prepare_train_loader
    from training.outputs import MODEL_DIR, write_outputs
    from training.predict import class_probabilities, to_predictions

    started = time.perf_counter()
    labels = config.labels
    if not train:
        raise ValueError("no training examples")
    if not eval:
        raise ValueError("no eval examples")
    check_labels(train, labels, source="training data")
    check_labels(eval, labels, source="eval data")
    check_unique_ids(eval, source="eval data")
    fit_set, val_set = split_validation(train, config.val_fraction, config.seed)
    missing = [lab for lab in labels if lab not in {ex.label for ex in fit_set}]
    if missing:
        log.warning("no training examples of label(s) %s: the classifier cannot learn them", missing)

    accelerator = make_accelerator(config.cpu)
    set_seed(config.seed)
    model, tokenizer = load_backbone(config.model, labels)
    tokenizer.model_max_length = config.max_length  # saved with the tokenizer: predict() truncates alike
    label2id = {lab: i for i, lab in enumerate(labels)}

    def features(examples: Sequence[Example]) -> list[dict]:
        return encode(tokenizer, examples, label2id, config.max_length)

    train_dl = prepare_train_loader(accelerator, features(fit_set), tokenizer, config.batch_size, config.seed)
    val_dl = prepare_eval_loader(accelerator, features(val_set), tokenizer, config.eval_batch_size) if val_set else None
    eval_dl = prepare_eval_loader(accelerator, features(eval), tokenizer, config.eval_batch_size)
    optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.effective_lr)
    model, optimizer = accelerator.prepare(model, optimizer)

    steps_per_epoch = len(train_dl)
    total = math.ceil(config.epochs * steps_per_epoch)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    log.info(
        "training %s on %d examples (%d held out for validation), evaluating on %d; %d steps of %d on %s x%d%s",
        config.task, len(fit_set), len(val_set), len(eval), total, config.batch_size * accelerator.num_processes,
        accelerator.device.type, accelerator.num_processes,
        f" ({backend_name(accelerator)}, {config.batch_size} per process)" if accelerator.num_processes > 1 else "",
    )

    losses: list[float] = []
    val_history: list[ValPoint] = []
    best = _BestCheckpoint()
    step, stopped, samples = 0, False, 0
    val_gold = [ex.label for ex in val_set]

    def validate() -> bool:
        """Validate at the current step, offer the weights to `best`; return True to stop early."""
        probs = class_probabilities(model, val_dl, accelerator)
        metrics = classification_metrics(val_gold, [labels[i] for i in probs.argmax(axis=1)], labels)
        point = ValPoint(step, step / steps_per_epoch, metrics.accuracy, metrics.macro_f1,
                         _log_loss(val_gold, probs, labels))
        val_history.append(point)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", val_f1=f"{metrics.macro_f1:.3f}")
        if best.offer(point, metrics, accelerator.unwrap_model(model)):
            return False
        return config.patience is not None and best.since_best >= config.patience

    bar = tqdm(total=total, desc=f"train {config.task}", unit="step",
               disable=not (config.progress and accelerator.is_local_main_process))
    loop_started, loop_cpu_started = time.perf_counter(), time.process_time()
    val_seconds = val_cpu_seconds = 0.0
    model.train()
    while step < total and not stopped:
        for i, batch in enumerate(train_dl):
            samples += len(batch.pop("index"))
            loss = model(**batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            losses.append(accelerator.reduce(loss.detach(), "mean").item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            last = step >= total
            due = (step % config.eval_every == 0) if config.eval_every else (i == steps_per_epoch - 1)
            if val_dl is not None and (due or last):
                t, t_cpu = time.perf_counter(), time.process_time()
                stopped = validate()
                val_seconds += time.perf_counter() - t
                val_cpu_seconds += time.process_time() - t_cpu
            if last or stopped:
                break
    bar.close()
    loop_seconds = time.perf_counter() - loop_started - val_seconds
    loop_cpu_seconds = time.process_time() - loop_cpu_started - val_cpu_seconds
    processes = per_process(accelerator, [loop_seconds, loop_cpu_seconds, samples])

    unwrapped = accelerator.unwrap_model(model)
    if best.state is not None and best.step != step:
        unwrapped.load_state_dict(best.state)
        log.info("kept the checkpoint of step %d (validation Macro-F1 %.4f)", best.step, best.metrics.macro_f1)
    probs = class_probabilities(model, eval_dl, accelerator)
    predictions = to_predictions(eval, probs, labels)
    metrics = classification_metrics([p.label for p in predictions], [p.prediction for p in predictions], labels)

    model_dir = None
    if config.out_dir and config.save_model:
        from pathlib import Path

        model_dir = Path(config.out_dir) / MODEL_DIR
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            with quiet_transformers():
                unwrapped.save_pretrained(model_dir, save_function=accelerator.save)
                tokenizer.save_pretrained(model_dir)
    result = TrainResult(
        config=config,
        metrics=metrics,
        val_metrics=best.metrics,
        predictions=predictions,
        loss_history=losses,
        val_history=val_history,
        best_step=best.step if best.state is not None else step,
        steps=step,
        epochs_run=step / steps_per_epoch,
        stopped_early=stopped,
        train_size=len(fit_set),
        val_size=len(val_set),
        eval_size=len(eval),
        seconds=0.0,
        train_seconds=max(row[0] for row in processes),
        train_cpu_seconds=sum(row[1] for row in processes),
        model=resolve_model(config.model),
        device=str(accelerator.device),
        num_processes=accelerator.num_processes,
        backend=backend_name(accelerator),
        samples_per_process=[int(row[2]) for row in processes],
        model_dir=model_dir,
    )
    result.seconds = time.perf_counter() - started
    if config.out_dir and accelerator.is_main_process:
        write_outputs(result, config.out_dir)
    return result


class _BestCheckpoint:
    """The weights of the best validation so far (highest Macro-F1, ties: lower loss), kept on the
    CPU, and the number of validations since it."""

    def __init__(self) -> None:
        self.state: dict | None = None
        self.metrics: ClassificationMetrics | None = None
        self.key = (-1.0, -math.inf)
        self.step = 0
        self.since_best = 0

    def offer(self, point: ValPoint, metrics: ClassificationMetrics, model) -> bool:
        """Keep `model`'s weights if `point` beats the best so far; return True when it did."""
        key = (point.macro_f1, -point.loss)
        if key <= self.key:
            self.since_best += 1
            return False
        self.key, self.metrics, self.step, self.since_best = key, metrics, point.step, 0
        self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return True


def _param_groups(model, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight decay on weights, none on biases and LayerNorm parameters."""
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 else decay).append(param)  # biases and LayerNorm weights are 1-D
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _log_loss(gold: Sequence[str], probs, labels: Sequence[str]) -> float:
    """Mean cross-entropy of `probs` (rows in `labels` order) against `gold`."""
    from sklearn.metrics import log_loss

    index = {lab: i for i, lab in enumerate(labels)}  # integer classes: sklearn would sort strings
    return float(log_loss([index[g] for g in gold], probs, labels=list(range(len(labels)))))
