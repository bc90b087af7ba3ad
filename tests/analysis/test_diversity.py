"""analysis.diversity: Remote Clique, Chamfer and top-5 similarity, by hand, against a full-matrix
reference (scipy's cdist), per label, within bounded memory, and on real texts."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from analysis.diversity import (
    DiversityScores,
    auto_block_size,
    chamfer,
    diversity_report,
    diversity_scores,
    example_diversity,
    remote_clique,
    remote_clique_per_item,
    top_k_similarity,
    top_k_similarity_per_reference,
)
from analysis.embeddings import embed_texts
from subjlab.data import load_split
from subjlab.records import Example
from subjlab.tasks import get_task


def _angles(*degrees: float) -> np.ndarray:
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


# --- hand-computed small cases ------------------------------------------------------------------

def test_three_orthogonal_unit_vectors_have_remote_clique_1_and_chamfer_1():
    eye = np.eye(3)
    assert remote_clique(eye) == pytest.approx(1.0, abs=1e-7)
    assert chamfer(eye) == pytest.approx(1.0, abs=1e-7)


def test_pairs_of_duplicates_have_chamfer_0_and_remote_clique_two_thirds():
    # each vector: one duplicate (distance 0) and two orthogonal others (distance 1) -> mean 2/3
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert chamfer(emb) == pytest.approx(0.0, abs=1e-7)
    assert remote_clique(emb) == pytest.approx(2 / 3, abs=1e-7)


def test_vectors_at_0_60_180_degrees_by_hand():
    # distances: (0,60) 1-cos60 = 0.5; (0,180) 2; (60,180) 1-cos120 = 1.5
    emb = _angles(0, 60, 180)
    assert remote_clique(emb) == pytest.approx((0.5 + 2.0 + 1.5) / 3, abs=1e-6)
    # nearest: 0 -> 60 (0.5), 60 -> 0 (0.5), 180 -> 60 (1.5)
    assert chamfer(emb) == pytest.approx((0.5 + 0.5 + 1.5) / 3, abs=1e-6)


def test_remote_clique_excludes_the_diagonal():
    # two orthogonal vectors: the mean over pairs i != j is 1; over all n^2 cells (zero self-distances
    # on the diagonal included) it would be 0.5
    assert remote_clique(np.eye(2)) == pytest.approx(1.0, abs=1e-7)


def test_metrics_do_not_depend_on_vector_length():
    emb = _angles(10, 80, 200, 300)
    scaled = emb * np.array([[1.0], [7.0], [0.2], [3.0]])
    assert remote_clique(scaled) == pytest.approx(remote_clique(emb), abs=1e-6)
    assert chamfer(scaled) == pytest.approx(chamfer(emb), abs=1e-6)


def test_top5_similarity_by_hand():
    # six candidates whose cosine with e1 is 0.9, 0.8, 0.7, 0.6, 0.5, 0.1
    cos = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    candidates = np.stack([cos, np.sqrt(1 - cos**2)], axis=1)
    e1 = np.array([[1.0, 0.0]])
    assert top_k_similarity(e1, candidates, k=5) == pytest.approx(0.7, abs=1e-6)  # mean of the top five
    # for -e1 the similarities flip sign; the five largest are -0.1, -0.5, -0.6, -0.7, -0.8
    assert top_k_similarity(-e1, candidates, k=5) == pytest.approx(-0.54, abs=1e-6)
    both = np.vstack([e1, -e1])
    assert top_k_similarity(both, candidates, k=5) == pytest.approx((0.7 - 0.54) / 2, abs=1e-6)
    assert top_k_similarity(e1, candidates, k=6) == pytest.approx(cos.mean(), abs=1e-6)  # k == m
    assert top_k_similarity(both, candidates, k=5, block_size=1) == pytest.approx((0.7 - 0.54) / 2, abs=1e-6)


# --- blocked == full matrix ---------------------------------------------------------------------

def _reference_metrics(emb: np.ndarray, ref: np.ndarray, k: int = 5) -> tuple[float, float, float]:
    """Remote Clique, Chamfer and top-k similarity from scipy's full cosine distance matrices."""
    dist = cdist(emb, emb, metric="cosine")
    n = len(emb)
    off = ~np.eye(n, dtype=bool)
    rc = dist[off].mean()
    ch = np.where(off, dist, np.inf).min(axis=1).mean()
    sims = 1.0 - cdist(ref, emb, metric="cosine")
    topk = np.sort(sims, axis=1)[:, -k:].mean()
    return rc, ch, topk


@pytest.mark.parametrize("block_size", [1, 7, 64, 150, 151, 1000, None])
def test_blocked_metrics_equal_the_full_matrix_for_any_block_size(block_size):
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((5, 32))
    emb = centres[rng.integers(0, 5, 151)] + 0.7 * rng.standard_normal((151, 32))
    ref = centres[rng.integers(0, 5, 40)] + 0.7 * rng.standard_normal((40, 32))
    rc, ch, topk = _reference_metrics(emb, ref)
    assert remote_clique(emb) == pytest.approx(rc, abs=1e-5)
    assert chamfer(emb, block_size) == pytest.approx(ch, abs=1e-5)
    assert top_k_similarity(ref, emb, 5, block_size) == pytest.approx(topk, abs=1e-5)


def test_per_item_values_are_the_rows_of_the_full_matrix_and_average_to_the_metrics():
    rng = np.random.default_rng(5)
    emb = rng.standard_normal((60, 16))
    ref = rng.standard_normal((25, 16))
    dist = cdist(emb, emb, metric="cosine")
    per_item = remote_clique_per_item(emb)
    assert per_item == pytest.approx((dist.sum(axis=1) - np.diag(dist)) / 59, abs=1e-6)
    assert per_item.mean() == pytest.approx(remote_clique(emb), abs=1e-7)
    per_ref = top_k_similarity_per_reference(ref, emb, 5, block_size=4)
    assert per_ref == pytest.approx(np.sort(1.0 - cdist(ref, emb, metric="cosine"), axis=1)[:, -5:].mean(axis=1), abs=1e-6)
    report = diversity_report(emb, reference=ref, per_item=True)
    assert report.remote_clique_items == pytest.approx(tuple(per_item), abs=1e-9)
    assert report.similarity_top5_items == pytest.approx(tuple(per_ref), abs=1e-6)
    assert "remote_clique_items" not in json.dumps(report.to_dict())  # the CLI's JSON stays as it was
    assert diversity_report(emb).remote_clique_items is None


def test_auto_block_keeps_one_block_near_64_mib():
    assert auto_block_size(50_000, 50_000) * 50_000 * 4 <= 64 * 2**20
    assert auto_block_size(10, 10) == 10 and auto_block_size(5, 10**9) == 1


def test_memory_stays_within_one_block_not_the_full_matrix():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((4000, 64)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    full_matrix = 4000 * 4000 * 4  # 61 MiB
    block = 200 * 4000 * 4  # 3 MiB
    tracemalloc.start()
    try:
        for fn in (lambda: chamfer(emb, 200), lambda: top_k_similarity(emb[:1000], emb, 5, 200), lambda: remote_clique(emb)):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            fn()
            peak = tracemalloc.get_traced_memory()[1] - before
            assert peak < 1.5 * block < full_matrix / 10, peak
    finally:
        tracemalloc.stop()


# --- fewer than two, bad input --------------------------------------------------------------------

def test_fewer_than_two_instances_is_an_error_for_the_metrics_and_null_in_scores():
    one = np.array([[1.0, 0.0]])
    with pytest.raises(ValueError, match="at least 2"):
        remote_clique(one)
    with pytest.raises(ValueError, match="at least 2"):
        chamfer(one)
    assert diversity_scores(one) == DiversityScores(1, None, None)
    with pytest.raises(ValueError, match="at least 2 texts"):
        diversity_report(one, ["a"])


def test_bad_inputs_are_rejected_with_the_reason():
    with pytest.raises(ValueError, match="all zeros"):
        chamfer(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="at least 5 candidate"):
        top_k_similarity(np.eye(3), np.eye(3), k=5)
    with pytest.raises(ValueError, match="differ in dimension"):
        top_k_similarity(np.eye(2), np.eye(6), k=5)
    with pytest.raises(ValueError, match="3 labels for 2"):
        diversity_report(np.eye(2), ["a", "b", "c"])


# --- per label ----------------------------------------------------------------------------------

def test_report_per_label_and_overall_by_hand():
    # label "x": three orthogonal vectors; label "y": two copies of one vector; "z": a single vector
    emb = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [1, 1, 0, 0]], dtype=float)
    labels = ["x", "x", "x", "y", "y", "z"]
    report = diversity_report(emb, labels, reference=np.eye(4)[:1])
    assert list(report.per_label) == ["x", "y", "z"]
    assert report.per_label["x"] == DiversityScores(3, pytest.approx(1.0), pytest.approx(1.0))
    assert report.per_label["y"].remote_clique == pytest.approx(0.0, abs=1e-7)
    assert report.per_label["y"].chamfer == pytest.approx(0.0, abs=1e-7)
    assert report.per_label["z"] == DiversityScores(1, None, None)
    rc, ch, top5 = _reference_metrics(emb, np.eye(4)[:1])
    assert report.overall.n == 6
    assert report.overall.remote_clique == pytest.approx(rc, abs=1e-6)
    assert report.overall.chamfer == pytest.approx(ch, abs=1e-6)
    assert report.similarity_top5 == pytest.approx(top5, abs=1e-6)
    out = report.to_dict()
    assert out["distance"] == "cosine" and out["per_label"]["z"] == {"n": 1, "remote_clique": None, "chamfer": None}
    json.dumps(out, allow_nan=False)  # strictly valid JSON: nulls, never NaN


def test_unlabelled_rows_count_overall_only():
    report = diversity_report(np.eye(3), ["a", None, "a"])
    assert list(report.per_label) == ["a"] and report.per_label["a"].n == 2 and report.overall.n == 3
    assert "similarity_top5" not in report.to_dict()


# --- real data (all-MiniLM-L6-v2) -----------------------------------------------------------------

@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "subjlab-cache" / "embeddings"


def test_real_fewrel_texts_are_more_diverse_than_near_duplicates(task_data, cache_root):
    real = [ex.text for ex in load_split(get_task("fewrel"), "train", task_data, limit_per_label=4, seed=2)]
    words = real[0].split()
    near_dups = [" ".join(words[:i] + words[i + 1 :]) for i in range(16)]  # drop one word each
    real_scores = diversity_scores(embed_texts(real, cache=cache_root))
    dup_scores = diversity_scores(embed_texts(near_dups, cache=cache_root))
    assert real_scores.n == dup_scores.n == 16
    assert real_scores.remote_clique > 3 * dup_scores.remote_clique
    assert real_scores.chamfer > 3 * dup_scores.chamfer
    assert 0.0 < dup_scores.chamfer < 0.1 < real_scores.chamfer


def test_real_test_slice_is_more_similar_to_its_own_task_than_to_another(task_data, cache_root):
    sms = get_task("sms_spam")
    # the same slices as the CLI tests use (5 per label of train, 3 per label of test), so the cache serves them
    reference = [ex.text for ex in load_split(sms, "test", task_data, limit_per_label=3, seed=0)]
    same_task = [ex.text for ex in load_split(sms, "train", task_data, limit_per_label=5, seed=0)]
    other_task = [ex.text for ex in load_split(get_task("fewrel"), "train", task_data, limit_per_label=5, seed=0)]
    ref = embed_texts(reference, cache=cache_root)
    own = top_k_similarity(ref, embed_texts(same_task, cache=cache_root))
    other = top_k_similarity(ref, embed_texts(other_task, cache=cache_root))
    assert own > other + 0.1, (own, other)


def test_example_diversity_embeds_and_reports_per_label(task_data, cache_root):
    examples = load_split(get_task("sms_spam"), "train", task_data, limit_per_label=5, seed=0)
    report = example_diversity(examples, reference=examples[:5], cache=cache_root)
    assert set(report.per_label) == {"ham", "spam"} and report.overall.n == 10
    assert report.model is not None and report.model.startswith("all-MiniLM-L6-v2@")
    emb = embed_texts([ex.text for ex in examples], cache=cache_root)
    assert report.overall.remote_clique == pytest.approx(remote_clique(emb), abs=1e-9)
    spam = [i for i, ex in enumerate(examples) if ex.label == "spam"]
    assert report.per_label["spam"].chamfer == pytest.approx(chamfer(emb[spam]), abs=1e-9)
    # the 5 reference texts are in the set itself, so each one's best match is itself (similarity 1)
    assert 0.2 < report.similarity_top5 < 1.0


def test_example_diversity_needs_two_texts():
    with pytest.raises(ValueError, match="at least 2 texts"):
        example_diversity([Example(id="1", text="only one")], cache=False)
