"""Class probabilities and `Prediction` records from a classifier, in memory or saved on disk.

`predict(model_dir, examples)` loads a model saved by `train_classifier` (or any sequence classifier
whose config names its labels in id2label) and returns one `Prediction` per example, in input order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from subjlab.records import Example, Prediction
from training.examples import check_labels


def class_probabilities(model, loader, accelerator=None) -> np.ndarray:
    """Run `model` over `loader` (batches with an "index" key) under inference mode.

    Returns softmax probabilities as an array [n_examples, n_labels] in the examples' input order.
    With an `accelerate.Accelerator`, pass a loader already made by `accelerator.prepare` (sharded
    over its processes); the outputs of all processes are gathered.
    """
    n = len(loader.dataset)
    if accelerator is not None:
        device = accelerator.device
    else:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    probs_parts, index_parts = [], []
    with torch.inference_mode():
        for batch in loader:
            index = batch.pop("index")
            batch.pop("labels", None)
            batch = {k: v.to(device) for k, v in batch.items()}
            probs = torch.softmax(model(**batch).logits.double(), dim=-1)
            if accelerator is not None:
                probs, index = accelerator.gather_for_metrics((probs, index.to(device)))
            probs_parts.append(probs.cpu())
            index_parts.append(index.cpu())
    model.train(was_training)
    out = np.zeros((n, probs_parts[0].shape[1]), dtype=np.float64)
    out[torch.cat(index_parts).numpy()] = torch.cat(probs_parts).numpy()
    return out


def to_predictions(examples: Sequence[Example], probs: np.ndarray, labels: Sequence[str]) -> list[Prediction]:
    """Turn per-example probabilities (rows in `labels` order) into `Prediction` records."""
    if probs.shape != (len(examples), len(labels)):
        raise ValueError(f"probabilities of shape {probs.shape} do not fit {len(examples)} examples x {len(labels)} labels")
    out = []
    for ex, row in zip(examples, probs):
        out.append(
            Prediction(
                id=ex.id,
                label=ex.label,
                prediction=labels[int(np.argmax(row))],
                probs={lab: float(p) for lab, p in zip(labels, row)},
            )
        )
    return out


def model_labels(model) -> tuple[str, ...]:
    """Return a classifier's labels in class-index order, from its config's id2label."""
    id2label = model.config.id2label
    return tuple(id2label[i] for i in range(len(id2label)))


def predict(
    model_dir: str | Path,
    examples: Sequence[Example],
    batch_size: int = 64,
    device: str | None = None,
) -> list[Prediction]:
    """Load the classifier saved in `model_dir` and predict `examples` (each labeled with one of the
    model's labels); returns one Prediction per example, in input order.

    Texts are truncated to the tokenizer's `model_max_length` (set to the training max_length when
    `train_classifier` saved the model). device: "cpu", "cuda", ... (default: CUDA if available).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.backbone import quiet_transformers
    from training.batches import encode, eval_loader

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: no saved model here (config.json missing)")
    if not examples:
        return []
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    labels = model_labels(model)
    check_labels(examples, labels, source="predict")
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    max_length = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", 512))
    features = encode(tokenizer, examples, None, max_length)
    probs = class_probabilities(model, eval_loader(features, tokenizer, batch_size))
    return to_predictions(examples, probs, labels)
