"""Correlation of task scores with real-minus-synthetic gaps (Spearman, Kendall) and its inputs."""

from __future__ import annotations

import json

import pytest

from analysis.correlation import correlate, read_task_values
from analysis.plots import plot_gap_vs_subjectivity, plot_ranking
from subjlab.records import RecordError


def test_perfectly_monotone_data_gives_rho_and_tau_one():
    res = correlate({"a": 1.0, "b": 2.0, "c": 3.0, "d": 10.0}, {"a": 0.1, "b": 0.2, "c": 0.5, "d": 0.9})
    assert res.n == 4 and res.tasks == ["a", "b", "c", "d"]
    assert res.spearman_rho == pytest.approx(1.0) and res.kendall_tau == pytest.approx(1.0)
    # exact Kendall p for n = 4, tau = 1: 2 of 24 orderings are as extreme -> 1/12
    assert res.kendall_p == pytest.approx(1 / 12)


def test_objectivity_scores_with_a_gap_that_grows_with_subjectivity_correlate_negatively():
    objectivity = {"ag_news": 2.0, "imdb": 1.0, "tweet_irony": -1.0, "humor": -2.0}
    gaps = {"ag_news": 0.01, "imdb": 0.05, "tweet_irony": 0.20, "humor": 0.30}
    res = correlate(objectivity, gaps)
    assert res.spearman_rho == pytest.approx(-1.0) and res.kendall_tau == pytest.approx(-1.0)
    assert res.orientation == "objectivity" and res.expected_sign == "negative"
    flipped = correlate({t: -v for t, v in objectivity.items()}, gaps, orientation="subjectivity")
    assert flipped.spearman_rho == pytest.approx(1.0) and flipped.expected_sign == "positive"


def test_one_swap_hand_computed():
    # x = 1,2,3,4; y = 1,3,2,4 (ranks 2 and 3 swapped).
    # Spearman: sum d^2 = 2 -> rho = 1 - 6*2/(4*15) = 0.8; t = 0.8*sqrt(2/0.36), df = 2 ->
    #   two-sided p = 1 - t/sqrt(t^2 + 2) = 1 - 0.8 = 0.2.
    # Kendall: 5 concordant, 1 discordant -> tau = 4/6 = 2/3; exact p: orderings of 4 with <= 1
    #   inversion (1 + 3) or >= 5 inversions (3 + 1) -> 8/24 = 1/3.
    res = correlate({"a": 1, "b": 2, "c": 3, "d": 4}, {"a": 1, "b": 3, "c": 2, "d": 4})
    assert res.spearman_rho == pytest.approx(0.8) and res.spearman_p == pytest.approx(0.2)
    assert res.kendall_tau == pytest.approx(2 / 3) and res.kendall_p == pytest.approx(1 / 3)


def test_only_common_tasks_count_and_the_others_are_listed():
    res = correlate({"a": 1, "b": 2, "c": 3, "x": 9}, {"a": 3, "b": 2, "c": 1, "y": 0})
    assert res.tasks == ["a", "b", "c"] and res.only_in_scores == ["x"] and res.only_in_gaps == ["y"]
    assert res.spearman_rho == pytest.approx(-1.0)


def test_too_few_tasks_constant_or_non_finite_input_is_a_value_error_not_nan():
    with pytest.raises(ValueError, match="at least 3 tasks .* got 2"):
        correlate({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2})
    with pytest.raises(ValueError, match="all gaps are equal"):
        correlate({"a": 1, "b": 2, "c": 3}, {"a": 0.1, "b": 0.1, "c": 0.1})
    with pytest.raises(ValueError, match="all scores are equal"):
        correlate({"a": 1, "b": 1, "c": 1}, {"a": 0.1, "b": 0.2, "c": 0.3})
    with pytest.raises(ValueError, match="finite number"):
        correlate({"a": 1, "b": float("nan"), "c": 3}, {"a": 0.1, "b": 0.2, "c": 0.3})
    with pytest.raises(ValueError, match="orientation"):
        correlate({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3}, orientation="up")  # type: ignore[arg-type]


def test_read_task_values_accepts_rank_json_mapping_and_jsonl(tmp_path):
    rank = tmp_path / "rank.json"
    rank.write_text(json.dumps([
        {"task": "ag_news", "score": 1.5, "ci_low": 1.0, "ci_high": 2.0, "rank": 1, "n": 100},
        {"task": "humor", "score": -1.5, "ci_low": -2.0, "ci_high": -1.0, "rank": 2, "n": 100},
    ], indent=2))
    assert read_task_values(rank, "score") == {"ag_news": 1.5, "humor": -1.5}
    mapping = tmp_path / "gaps.json"
    mapping.write_text('{"ag_news": 0.02, "humor": 0.3}')
    assert read_task_values(mapping, "gap") == {"ag_news": 0.02, "humor": 0.3}
    lines = tmp_path / "gaps.jsonl"
    lines.write_text('{"task": "ag_news", "gap": 0.02}\n\n{"task": "humor", "gap": "0.3", "metric": "macro_f1"}\n')
    assert read_task_values(lines, "gap") == {"ag_news": 0.02, "humor": 0.3}
    single = tmp_path / "one.jsonl"
    single.write_text('{"task": "imdb", "gap": 0.1}\n')
    assert read_task_values(single, "gap") == {"imdb": 0.1}


def test_read_task_values_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "gaps.jsonl"
    bad.write_text('{"task": "a", "gap": 0.1}\n{"task": "b", "gapp": 0.2}\n')
    with pytest.raises(RecordError) as err:
        read_task_values(bad, "gap")
    assert err.value.line == 2 and err.value.field == "gap" and "gaps.jsonl:2" in str(err.value)
    dup = tmp_path / "dup.json"
    dup.write_text('[{"task": "a", "score": 1}, {"task": "a", "score": 2}]')
    with pytest.raises(RecordError, match="entry 2: task 'a' is listed twice"):
        read_task_values(dup, "score")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"task": "a", "gap": 0.1}\n{"task": \n')
    with pytest.raises(RecordError, match="broken.jsonl:2"):
        read_task_values(broken, "gap")
    with pytest.raises(RecordError, match="no such file"):
        read_task_values(tmp_path / "absent.json", "gap")


def test_gap_plot_is_a_real_png(tmp_path):
    res = correlate({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 0.3, "b": 0.2, "c": 0.25})
    data = plot_gap_vs_subjectivity(res, tmp_path / "gap.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_ranking_plot_with_intervals_is_a_real_png(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class Row:  # the shape of `subjlab rank --format json` rows
        task: str
        score: float
        ci_low: float
        ci_high: float

    rows = [Row("ag_news", 1.2, 0.8, 1.6), Row("humor", -0.9, -1.4, -0.5), Row("imdb", 0.4, 0.0, 0.9)]
    data = plot_ranking(rows, tmp_path / "rank.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError, match="no ranked tasks"):
        plot_ranking([], tmp_path / "none.png")
