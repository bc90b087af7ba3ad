"""From examples to padded tensor batches: tokenize once, pad per batch, group by length.

Training batches come from transformers' `LengthGroupedSampler` (a seeded shuffle, then examples of
similar length batched together), padded per batch by `DataCollatorWithPadding`, so little compute
goes to padding. Evaluation batches run over examples sorted by length (longest first) and carry
each example's position so the outputs can be put back in input order.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader

from subjlab.records import Example


def encode(tokenizer, examples: Sequence[Example], label2id: dict[str, int] | None, max_length: int) -> list[dict[str, Any]]:
    """Tokenize `examples` (truncated to `max_length`, unpadded) into feature dicts.

    With `label2id`, each feature gets its class index under "labels"; every feature gets its
    position under "index".
    """
    enc = tokenizer([ex.text for ex in examples], truncation=True, max_length=max_length)
    features: list[dict[str, Any]] = []
    for i, ex in enumerate(examples):
        feat = {key: enc[key][i] for key in enc.keys()}
        if label2id is not None:
            feat["labels"] = label2id[ex.label]
        feat["index"] = i
        features.append(feat)
    return features


class _Collate:
    """Pad a list of features with `DataCollatorWithPadding`, keeping "index" as a tensor."""

    def __init__(self, tokenizer) -> None:
        from transformers import DataCollatorWithPadding

        self.pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        index = torch.tensor([f["index"] for f in features], dtype=torch.long)
        batch = self.pad([{k: v for k, v in f.items() if k != "index"} for f in features])
        batch["index"] = index
        return batch


def train_loader(features: list[dict[str, Any]], tokenizer, batch_size: int, seed: int) -> DataLoader:
    """Return a length-grouped, seeded, shuffled training DataLoader (same order for the same seed)."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    generator = torch.Generator().manual_seed(seed)
    sampler = LengthGroupedSampler(
        batch_size, lengths=[len(f["input_ids"]) for f in features], generator=generator
    )
    return DataLoader(features, batch_size=batch_size, sampler=sampler, collate_fn=_Collate(tokenizer))


def eval_loader(features: list[dict[str, Any]], tokenizer, batch_size: int) -> DataLoader:
    """Return an evaluation DataLoader over `features` sorted by length, longest first."""
    ordered = sorted(features, key=lambda f: len(f["input_ids"]), reverse=True)
    return DataLoader(ordered, batch_size=batch_size, shuffle=False, collate_fn=_Collate(tokenizer))
