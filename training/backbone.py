"""Loading an encoder as a sequence classifier for a task's labels (no downloads unless the hub allows).

The packaged all-MiniLM-L6-v2 (`subjlab.packaged_models.minilm_path()`) is a sentence-transformers folder whose
top level holds a BERT `config.json`, weights and tokenizer, so `AutoModelForSequenceClassification`
loads it as `BertForSequenceClassification` with a NEW classification head (`classifier.weight`,
`classifier.bias`). That is expected, not an error: the head is what fine-tuning trains. transformers'
load report about those missing keys is silenced and replaced by one log line saying so.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator, Sequence

log = logging.getLogger("training")


def resolve_model(model: str) -> str:
    """Return what to load: the packaged MiniLM for ""/"minilm"/"all-MiniLM-L6-v2", a local path as
    an absolute path, anything else unchanged (a Hugging Face id)."""
    from training.config import MINILM_ALIASES

    if model.strip().lower() in MINILM_ALIASES:
        from subjlab.packaged_models import minilm_path

        return str(minilm_path())
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"{path}: not a model directory (no config.json)")
        return str(path.resolve())
    return model


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' info/warning logs and its weight-loading progress bar for the block."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_backbone(model: str, labels: Sequence[str]):
    """Load `model` (a hub id or path, see `resolve_model`) as a classifier over `labels`.

    Returns (model, tokenizer). id2label/label2id follow `labels` order. A head whose shape does not
    fit is replaced. Raises ValueError when the model cannot be found (offline and not cached).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    name = resolve_model(model)
    id2label = {i: lab for i, lab in enumerate(labels)}
    label2id = {lab: i for i, lab in id2label.items()}
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(name)
            clf, info = AutoModelForSequenceClassification.from_pretrained(
                name,
                num_labels=len(labels),
                id2label=id2label,
                label2id=label2id,
                ignore_mismatched_sizes=True,
                output_loading_info=True,
            )
    except OSError as exc:
        raise ValueError(
            f"cannot load model {model!r}: {exc.__class__.__name__}: {str(exc).splitlines()[0].rstrip('.')}. "
            "Pass a local model directory, or download the model where the Hugging Face hub is reachable "
            f"(e.g. `hf download {model}`) and run with HF_HUB_OFFLINE=1."
        ) from None
    fresh = sorted(set(info.get("missing_keys", [])) | {k for k, *_ in info.get("mismatched_keys", [])})
    if fresh:
        log.info(
            "%s: new classification head for %d labels (%s), trained from scratch; expected for an "
            "encoder checkpoint without a head for this task",
            name, len(labels), ", ".join(fresh),
        )
    return clf, tokenizer
