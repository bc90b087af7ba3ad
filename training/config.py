"""What a fine-tuning run takes (`TrainConfig`) and what it hands back (`TrainResult`).

Plain dataclasses with no torch import, so the study runner can build configs, hash them
(`TrainConfig.to_dict()` is JSON-safe) and read results without loading a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from subjlab.records import Prediction
from subjlab.tasks import TaskSpec
from training.metrics import ClassificationMetrics

#: Names that mean "the packaged all-MiniLM-L6-v2" (the default backbone).
MINILM_ALIASES = ("", "minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")
#: Default peak learning rates (see `TrainConfig.effective_lr`).
MINILM_DEFAULT_LR = 2e-4
DEFAULT_LR = 5e-5


@dataclass
class TrainConfig:
    """Settings of one fine-tuning run.

    task: the task's name (recorded in the outputs); labels: the task's label set in TaskSpec order
    (class index i is labels[i]); model: a Hugging Face id or local path, "" for the packaged
    all-MiniLM-L6-v2. epochs may be fractional; max_steps (optimizer steps) caps training when set.
    lr: the peak learning rate; None picks `effective_lr` (2e-4 for the packaged MiniLM, 5e-5 else).
    val_fraction of the training data is held out (stratified by label, seeded) to pick the best
    checkpoint by validation Macro-F1; 0 turns validation off (the last step's model is kept).
    patience: stop after this many validations without improvement (None: never stop early).
    eval_every: validate every N optimizer steps (None: at the end of each epoch and at the last step).
    out_dir: when set, `train_classifier` writes metrics.json, predictions.jsonl, history.json and
    (if save_model) the model under out_dir/model. provenance: free-form JSON-safe facts copied into
    metrics.json (e.g. the training files). cpu: force the CPU even where a GPU is visible.
    threads: torch CPU threads during the run (None: torch's default, one per core); 1 is much
    faster on a CPU shared with other busy processes, where OpenMP threads wait on each other.
    """

    task: str
    labels: tuple[str, ...]
    model: str = ""
    out_dir: str | None = None
    epochs: float = 3.0
    batch_size: int = 16
    eval_batch_size: int = 64
    lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    val_fraction: float = 0.1
    seed: int = 42
    max_steps: int | None = None
    patience: int | None = 2
    eval_every: int | None = None
    save_model: bool = True
    cpu: bool = False
    threads: int | None = None
    progress: bool = True
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = tuple(self.labels)
        if len(self.labels) < 2:
            raise ValueError(f"labels: a classifier needs at least 2 labels, got {list(self.labels)}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels: duplicate labels in {list(self.labels)}")
        checks = [
            ("epochs", self.epochs > 0, "must be > 0"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("eval_batch_size", self.eval_batch_size >= 1, "must be >= 1"),
            ("lr", self.lr is None or self.lr > 0, "must be > 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "must be in [0, 1)"),
            ("max_length", self.max_length >= 8, "must be >= 8"),
            ("val_fraction", 0 <= self.val_fraction < 1, "must be in [0, 1)"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "must be >= 1"),
            ("patience", self.patience is None or self.patience >= 1, "must be >= 1"),
            ("eval_every", self.eval_every is None or self.eval_every >= 1, "must be >= 1"),
            ("threads", self.threads is None or self.threads >= 1, "must be >= 1"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise ValueError(f"{name}: {why}, got {getattr(self, name)!r}")

    @classmethod
    def for_task(cls, task: TaskSpec, **settings: Any) -> "TrainConfig":
        """Return a config for `task` (name and labels taken from the TaskSpec) with `settings`."""
        return cls(task=task.name, labels=tuple(task.labels), **settings)

    def to_dict(self) -> dict[str, Any]:
        """Return every setting as a JSON-safe dict (labels as a list)."""
        out = asdict(self)
        out["labels"] = list(self.labels)
        return out

    @property
    def uses_packaged_minilm(self) -> bool:
        """True when `model` names the packaged all-MiniLM-L6-v2."""
        return self.model.strip().lower() in MINILM_ALIASES

    @property
    def effective_lr(self) -> float:
        """The learning rate used: `lr`, else 2e-4 for the packaged MiniLM (a small model that learns
        slowly at BERT rates: on 128 AG News examples, 3 epochs, validation Macro-F1 0.63 at 5e-5,
        0.77 at 1e-4, 0.85 at 2e-4) and 5e-5 (the transformers default) for any other model."""
        if self.lr is not None:
            return self.lr
        return MINILM_DEFAULT_LR if self.uses_packaged_minilm else DEFAULT_LR


@dataclass(frozen=True)
class ValPoint:
    """One validation during training: after `step` optimizer steps (epoch is fractional)."""

    step: int
    epoch: float
    accuracy: float
    macro_f1: float
    loss: float


@dataclass
class TrainResult:
    """What a run produced.

    metrics: the final model on the eval examples; val_metrics: the kept (best) checkpoint on the
    validation split (None without validation); predictions: one per eval example, in eval order;
    loss_history: the training loss of every optimizer step; val_history: every validation;
    best_step: the step of the kept checkpoint; seconds: wall time of the whole call;
    train_seconds: the training loop alone (no validation, no final evaluation; the slowest process's);
    train_cpu_seconds: the CPU time spent in it by all processes together (all their threads; steadier
    than wall time on a busy machine); model: the backbone as loaded (a path or hub id); device: this
    process's device; num_processes: the data-parallel processes; backend: the torch.distributed
    backend joining them (None for one process); samples_per_process: the training examples each
    process ran forward and backward (its share of every global batch); model_dir: where the model was
    saved (or None).
    """

    config: TrainConfig
    metrics: ClassificationMetrics
    val_metrics: ClassificationMetrics | None
    predictions: list[Prediction]
    loss_history: list[float]
    val_history: list[ValPoint]
    best_step: int
    steps: int
    epochs_run: float
    stopped_early: bool
    train_size: int
    val_size: int
    eval_size: int
    seconds: float
    train_seconds: float
    train_cpu_seconds: float
    model: str
    device: str
    num_processes: int
    backend: str | None = None
    samples_per_process: list[int] = field(default_factory=list)
    model_dir: Path | None = None

    @property
    def train_samples(self) -> int:
        """Training examples run forward and backward, all processes together."""
        return sum(self.samples_per_process)

    @property
    def train_samples_per_second(self) -> float:
        """Training examples processed per second of the training loop (all processes together)."""
        if self.train_seconds <= 0:
            return 0.0
        return self.train_samples / self.train_seconds

    @property
    def train_cpu_seconds_per_sample(self) -> float:
        """CPU seconds (all processes) per training example processed."""
        if self.train_samples <= 0:
            return 0.0
        return self.train_cpu_seconds / self.train_samples

    def metrics_dict(self) -> dict[str, Any]:
        """Return the content of metrics.json (see docs/training.md for the keys)."""
        import torch
        import transformers

        m = self.metrics
        out: dict[str, Any] = {
            "task": self.config.task,
            "model": self.model,
            "seed": self.config.seed,
            "lr": self.config.effective_lr,
            "accuracy": m.accuracy,
            "macro_f1": m.macro_f1,
            "labels": list(m.labels),
            "per_class": {lab: asdict(s) for lab, s in m.per_class.items()},
            "confusion_matrix": {"labels": list(m.labels), "rows": "gold", "columns": "predicted",
                                 "matrix": m.confusion},
            "train_size": self.train_size,
            "val_size": self.val_size,
            "eval_size": self.eval_size,
            "val": None,
            "best_step": self.best_step,
            "steps": self.steps,
            "epochs_run": round(self.epochs_run, 4),
            "stopped_early": self.stopped_early,
            "seconds": round(self.seconds, 3),
            "train_seconds": round(self.train_seconds, 3),
            "train_cpu_seconds": round(self.train_cpu_seconds, 3),
            "train_samples": self.train_samples,
            "train_samples_per_second": round(self.train_samples_per_second, 3),
            "train_cpu_seconds_per_sample": round(self.train_cpu_seconds_per_sample, 5),
            "model_dir": str(self.model_dir) if self.model_dir else None,
            "device": self.device,
            "num_processes": self.num_processes,
            "backend": self.backend,
            "samples_per_process": self.samples_per_process,
            "config": self.config.to_dict(),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }
        if self.val_metrics is not None:
            out["val"] = {"accuracy": self.val_metrics.accuracy, "macro_f1": self.val_metrics.macro_f1,
                          "step": self.best_step}
        return out
