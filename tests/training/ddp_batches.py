"""Run under a launcher (`torchrun --nproc_per_node N tests/training/ddp_batches.py DATA OUT`): record the
training batches each process gets from `training.distributed.prepare_train_loader`.

Every process tokenizes the same real SMS-spam slice (`features`, with the packaged MiniLM tokenizer),
iterates `EPOCHS` epochs of its prepared loader and records the positions ("index") of the examples of
each of its batches; the main process writes it all as JSON to OUT:
{"num_processes", "backend", "steps": [[positions of process p's slice] for p, per optimizer step]}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BATCH_SIZE = 4
SEED = 3
EPOCHS = 2
PER_LABEL = 100


def features(data_dir: str):
    """The tokenized slice and its tokenizer (the same in every process and in the test)."""
    from transformers import AutoTokenizer

    from subjlab.data import load_split
    from subjlab.models import minilm_path
    from subjlab.tasks import get_task
    from training.batches import encode

    task = get_task("sms_spam")
    examples = load_split(task, "train", data_dir, limit_per_label=PER_LABEL, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    return encode(tokenizer, examples, {lab: i for i, lab in enumerate(task.labels)}, 64), tokenizer


def main(data_dir: str, out: str) -> None:
    from accelerate.utils import gather_object

    from training.distributed import backend_name, make_accelerator, prepare_train_loader

    accelerator = make_accelerator(cpu=False)
    feats, tokenizer = features(data_dir)
    loader = prepare_train_loader(accelerator, feats, tokenizer, BATCH_SIZE, SEED)
    mine = [batch["index"].tolist() for _ in range(EPOCHS) for batch in loader]
    every = gather_object([mine])  # one list per process, in process order
    if accelerator.is_main_process:
        record = {"num_processes": accelerator.num_processes, "backend": backend_name(accelerator),
                  "steps": [list(step) for step in zip(*every)]}
        Path(out).write_text(json.dumps(record))
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
