"""Fine-tuning encoder classifiers, evaluation and per-instance predictions.

Stable Python API (used by the study runner; keep these names and signatures):

    from training import TrainConfig, TrainResult, train_classifier
    from training.predict import predict

    config = TrainConfig.for_task(get_task("sms_spam"), model="", epochs=3, out_dir="runs/x")
    result = train_classifier(config, train_examples, eval_examples)   # -> TrainResult
    result.metrics.macro_f1, result.metrics.accuracy                   # ClassificationMetrics
    result.predictions                                                 # list[Prediction], eval order
    result.loss_history, result.val_history, result.best_step          # training trace
    predict("runs/x/model", examples)                                  # -> list[Prediction]

- `TrainConfig` / `TrainResult` / `ValPoint` (training.config): settings and results, plain dataclasses.
- `train_classifier(config, train, eval)` (training.finetune): validation split, seeded training loop
  under accelerate, best checkpoint by validation Macro-F1; with `config.out_dir` it writes
  predictions.jsonl, history.json, metrics.json (last, atomically: its presence means "done") and
  the model under out_dir/model.
- `predict(model_dir, examples)` (training.predict): predictions of a saved classifier.
- Data-parallel runs (training.distributed): under `torchrun`/`accelerate launch` each process takes its
  slice of every global batch, evaluation is gathered, the main process writes; see docs/training.md.
- `classification_metrics(gold, predicted, labels)` (training.metrics): accuracy, Macro-F1,
  per-class scores and confusion matrix over a fixed label order.
- `read_labeled_file(path, labels)` / `check_labels` / `split_validation` (training.examples).

Labels are the task's labels in TaskSpec order (class index i = labels[i]); a label outside them is a
ValueError, never a new class. torch and transformers are imported only when a function needs them,
so importing this package is cheap.
"""

from __future__ import annotations

from typing import Any

from training.config import TrainConfig, TrainResult, ValPoint
from training.metrics import ClassificationMetrics, ClassScores, classification_metrics

__all__ = [
    "TrainConfig",
    "TrainResult",
    "ValPoint",
    "ClassificationMetrics",
    "ClassScores",
    "classification_metrics",
    "train_classifier",
]


def __getattr__(name: str) -> Any:
    """Import the torch-using `train_classifier` on first use (`predict` lives in training.predict)."""
    if name == "train_classifier":
        from training.finetune import train_classifier

        return train_classifier
    raise AttributeError(f"module 'training' has no attribute {name!r}")
