"""Diversity of a text set and its similarity to real data, on sentence embeddings.

After Cox et al. (2021), "Directed Diversity", with cosine distance d(u, v) = 1 - cos(u, v):

- Remote Clique = mean over instances i of the mean distance from i to every OTHER instance
  (pairs i != j only; the zero self-distance on the diagonal is excluded). Higher = more diverse.
- Chamfer = mean over instances i of the distance from i to its nearest OTHER instance.
  Higher = more diverse; 0 when every text has an exact duplicate.
- Top-k similarity (the paper's similarity, k = 5): for each REFERENCE (real) text, the mean cosine
  similarity to its k most similar candidate (synthetic) texts, averaged over reference texts.

Memory stays O(n*d) plus one block of O(block*n): Remote Clique uses the exact identity
sum_{i != j} cos(v_i, v_j) = ||sum_i v_i||^2 - sum_i ||v_i||^2 on unit vectors (O(n*d) time too);
Chamfer and top-k run blocked matrix products with a running row minimum / partial sort, so 50,000
texts never need the 50,000^2 matrix (10 GB in float32). Inputs are any (n, d) arrays of non-zero
vectors; rows are L2-normalised here.

Fewer than 2 instances: the metric functions raise ValueError (a nearest OTHER instance does not
exist); reports show a label with a single instance as n=1 with null metrics instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from analysis.embeddings import Embedder, normalize_rows
from subjlab.records import Example

DISTANCE = "cosine"
TOP_K = 5
#: Elements of one block of the similarity matrix (float32: 64 MiB) when no block size is given.
BLOCK_ELEMENTS = 1 << 24


def auto_block_size(n_rows: int, n_cols: int, max_elements: int = BLOCK_ELEMENTS) -> int:
    """Return the rows per block so that one (rows x n_cols) float32 block holds <= max_elements."""
    return max(1, min(n_rows, max_elements // max(1, n_cols)))


def _check_block(block_size: int | None, n_rows: int, n_cols: int) -> int:
    if block_size is None:
        return auto_block_size(n_rows, n_cols)
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    return int(block_size)


def _need_two(emb: np.ndarray, what: str) -> None:
    if emb.shape[0] < 2:
        raise ValueError(f"{what} needs at least 2 instances (distance to OTHER instances), got {emb.shape[0]}")


def remote_clique(embeddings: np.ndarray) -> float:
    """Return Remote Clique: mean cosine distance over ordered pairs i != j (diagonal excluded).

    Exact in O(n*d) via ||sum v||^2 on unit vectors. Raises ValueError for n < 2.
    """
    emb = normalize_rows(embeddings)
    _need_two(emb, "Remote Clique")
    n = emb.shape[0]
    total = emb.sum(axis=0, dtype=np.float64)
    self_sim = float(np.einsum("ij,ij->i", emb, emb).sum(dtype=np.float64))
    mean_sim = (float(total @ total) - self_sim) / (n * (n - 1))
    return float(np.clip(1.0 - mean_sim, 0.0, 2.0))


def remote_clique_per_item(embeddings: np.ndarray) -> np.ndarray:
    """Return each instance's mean cosine distance to every OTHER instance (their mean is Remote Clique).

    O(n*d) with the same identity as `remote_clique`. Raises ValueError for n < 2.
    """
    emb = normalize_rows(embeddings)
    _need_two(emb, "Remote Clique")
    n = emb.shape[0]
    total = emb.sum(axis=0, dtype=np.float64)
    self_sim = np.einsum("ij,ij->i", emb, emb).astype(np.float64)
    mean_sim = (emb.astype(np.float64) @ total - self_sim) / (n - 1)
    return np.clip(1.0 - mean_sim, 0.0, 2.0)


def chamfer(embeddings: np.ndarray, block_size: int | None = None) -> float:
    """Return Chamfer distance: mean over instances of the cosine distance to the nearest OTHER one.

    Blocked: memory O(n*d + block_size*n). Raises ValueError for n < 2.
    """
    emb = normalize_rows(embeddings)
    _need_two(emb, "Chamfer distance")
    n = emb.shape[0]
    step = _check_block(block_size, n, n)
    buffer = np.empty((min(step, n), n), dtype=np.float32)  # the one block alive at a time
    total = 0.0
    for start in range(0, n, step):
        stop = min(n, start + step)
        sims = np.matmul(emb[start:stop], emb.T, out=buffer[: stop - start])
        rows = np.arange(stop - start)
        sims[rows, rows + start] = -np.inf  # not itself
        nearest = 1.0 - sims.max(axis=1)
        total += float(np.clip(nearest, 0.0, 2.0).sum(dtype=np.float64))
    return total / n


def top_k_similarity(reference: np.ndarray, candidates: np.ndarray, k: int = TOP_K, block_size: int | None = None) -> float:
    """Return the mean over reference rows of the mean cosine similarity to their k most similar candidates.

    `reference` are the real texts' embeddings, `candidates` the synthetic ones. Blocked over reference
    rows: memory O((m + r)*d + block_size*m). Raises ValueError when there are fewer than k candidates
    or no reference rows.
    """
    return float(top_k_similarity_per_reference(reference, candidates, k, block_size).mean(dtype=np.float64))


def top_k_similarity_per_reference(reference: np.ndarray, candidates: np.ndarray, k: int = TOP_K,
                                   block_size: int | None = None) -> np.ndarray:
    """Return, for each reference row, the mean cosine similarity to its k most similar candidates
    (their mean is `top_k_similarity`); same checks and memory bound."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    ref = normalize_rows(reference)
    cand = normalize_rows(candidates)
    if ref.shape[0] == 0:
        raise ValueError("top-k similarity needs at least one reference text")
    if cand.shape[0] < k:
        raise ValueError(f"top-{k} similarity needs at least {k} candidate texts, got {cand.shape[0]}")
    if ref.shape[1] != cand.shape[1]:
        raise ValueError(f"reference and candidate embeddings differ in dimension: {ref.shape[1]} vs {cand.shape[1]}")
    m, r = cand.shape[0], ref.shape[0]
    step = _check_block(block_size, r, m)
    buffer = np.empty((min(step, r), m), dtype=np.float32)  # the one block alive at a time
    out = np.empty(r, dtype=np.float64)
    for start in range(0, r, step):
        stop = min(r, start + step)
        sims = np.matmul(ref[start:stop], cand.T, out=buffer[: stop - start])
        if k < m:
            sims.partition(m - k, axis=1)  # in place: the k largest end up in the last k columns
        out[start:stop] = sims[:, m - k :].mean(axis=1, dtype=np.float64)
    return out


@dataclass(frozen=True)
class DiversityScores:
    """Diversity of one set of texts. Metrics are None only when n < 2 (undefined, never NaN)."""

    n: int
    remote_clique: float | None
    chamfer: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return {"n", "remote_clique", "chamfer"}."""
        return {"n": self.n, "remote_clique": self.remote_clique, "chamfer": self.chamfer}


@dataclass(frozen=True)
class DiversityReport:
    """Diversity overall and per label, and (with a reference) top-5 similarity to it."""

    overall: DiversityScores
    per_label: dict[str, DiversityScores]
    similarity_top5: float | None = None
    reference_n: int | None = None
    distance: str = DISTANCE
    model: str | None = None  #: the embedding model's id, when the report embedded texts itself
    #: with per_item=True: each text's mean distance to the others (overall), and each reference
    #: text's top-5 similarity, in input order (the items the report's intervals resample)
    remote_clique_items: tuple[float, ...] | None = None
    similarity_top5_items: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON interface: distance, overall, per_label, and similarity_top5 with a reference."""
        out: dict[str, Any] = {
            "distance": self.distance,
            "overall": self.overall.to_dict(),
            "per_label": {label: s.to_dict() for label, s in self.per_label.items()},
        }
        if self.similarity_top5 is not None:
            out["similarity_top5"] = self.similarity_top5
            out["reference_n"] = self.reference_n
        if self.model is not None:
            out["model"] = self.model
        return out


def diversity_scores(embeddings: np.ndarray, block_size: int | None = None) -> DiversityScores:
    """Return Remote Clique and Chamfer of one set; n < 2 gives null metrics (not an error)."""
    emb = normalize_rows(embeddings)
    if emb.shape[0] < 2:
        return DiversityScores(emb.shape[0], None, None)
    return DiversityScores(emb.shape[0], remote_clique(emb), chamfer(emb, block_size))


def diversity_report(
    embeddings: np.ndarray,
    labels: Sequence[str | None] | None = None,
    reference: np.ndarray | None = None,
    block_size: int | None = None,
    model: str | None = None,
    per_item: bool = False,
) -> DiversityReport:
    """Return the diversity report of embedded texts.

    `labels` (one per row; None = unlabelled, counted only overall) gives per-label scores, labels in
    sorted order. `reference` (real texts' embeddings) adds top-5 similarity of the whole set to it.
    `per_item` also keeps the per-text values behind Remote Clique and top-5 similarity (not part of
    `to_dict`). Raises ValueError when there are fewer than 2 texts overall or labels do not match the rows.
    """
    emb = normalize_rows(embeddings)
    if emb.shape[0] < 2:
        raise ValueError(f"diversity needs at least 2 texts, got {emb.shape[0]}")
    per_label: dict[str, DiversityScores] = {}
    if labels is not None:
        if len(labels) != emb.shape[0]:
            raise ValueError(f"{len(labels)} labels for {emb.shape[0]} embeddings")
        arr = np.array([lab if lab is not None else "" for lab in labels], dtype=object)
        for label in sorted({lab for lab in labels if lab is not None}):
            per_label[label] = diversity_scores(emb[arr == label], block_size)
    similarity = reference_n = similarity_items = None
    if reference is not None:
        ref = normalize_rows(reference)
        per_reference = top_k_similarity_per_reference(ref, emb, TOP_K, block_size)
        similarity = float(per_reference.mean())
        reference_n = ref.shape[0]
        similarity_items = tuple(per_reference.tolist()) if per_item else None
    return DiversityReport(
        overall=diversity_scores(emb, block_size),
        per_label=per_label,
        similarity_top5=similarity,
        reference_n=reference_n,
        model=model,
        remote_clique_items=tuple(remote_clique_per_item(emb).tolist()) if per_item else None,
        similarity_top5_items=similarity_items,
    )


def example_diversity(
    examples: Sequence[Example],
    reference: Sequence[Example] | None = None,
    model_path: str | Path | None = None,
    batch_size: int = 64,
    cache: bool | Path = True,
    progress: bool = False,
    block_size: int | None = None,
    per_item: bool = False,
) -> DiversityReport:
    """Embed `examples` (and the real `reference` examples) and return their diversity report
    (`per_item`: see `diversity_report`).

    Embeddings come from `analysis.embeddings` (default all-MiniLM-L6-v2, cached by text hash).
    """
    if len(examples) < 2:
        raise ValueError(f"diversity needs at least 2 texts, got {len(examples)}")
    embedder = Embedder(model_path, batch_size=batch_size, cache=cache)
    emb = embedder.embed([ex.text for ex in examples], progress=progress)
    ref = embedder.embed([ex.text for ex in reference], progress=progress) if reference is not None else None
    return diversity_report(emb, [ex.label for ex in examples], ref, block_size, model=embedder.model_id,
                            per_item=per_item)
