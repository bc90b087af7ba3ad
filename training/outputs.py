"""Writing a run's files: predictions.jsonl, history.json and metrics.json (written last).

metrics.json is written last and atomically, so its presence means the run finished: a study runner
can treat a directory with metrics.json as done.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from subjlab.atomic import write_json_atomic
from subjlab.records import write_records
from training.config import TrainResult

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
HISTORY_FILE = "history.json"
MODEL_DIR = "model"


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically (temporary sibling, then rename)."""
    write_json_atomic(path, obj)


def write_outputs(result: TrainResult, out_dir: str | Path) -> Path:
    """Write predictions.jsonl, history.json and metrics.json of `result` into `out_dir`; return the
    metrics.json path."""
    out = Path(out_dir)
    write_records(out / PREDICTIONS_FILE, result.predictions)
    write_json(
        out / HISTORY_FILE,
        {
            "loss": result.loss_history,
            "val": [asdict(p) for p in result.val_history],
            "best_step": result.best_step,
        },
    )
    path = out / METRICS_FILE
    write_json(path, result.metrics_dict())
    return path
