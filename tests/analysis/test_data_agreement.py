"""Agreement from a dataset's own annotations: tweet_sarcasm's five ratings per test tweet through the
crowd-label path (checked against the file's own `agreement` field and independent κ / α), Financial
PhraseBank's documented levels, and the errors for data that carries neither or only partly."""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pytest

from analysis.agreement import phrasebank_agreements
from analysis.data_agreement import data_agreement, data_agreement_kind, ratings_as_labels
from subjlab.data import load_split
from subjlab.records import Example
from subjlab.tasks import TaskSpec, get_task


def test_tweet_sarcasm_agreement_is_the_majority_share_of_the_five_ratings_as_the_file_says(task_data):
    task = get_task("tweet_sarcasm")
    raw = [json.loads(line) for line in (task_data / "tweet_sarcasm" / "test.jsonl").open(encoding="utf-8")]
    examples = load_split(task, "test", task_data)
    result = data_agreement(examples, task)
    assert result.kind == "ratings" and result.levels is None
    assert [a.item for a in result.agreements] == [row["id"] for row in raw]
    assert [a.agreement for a in result.agreements] == pytest.approx([row["agreement"] for row in raw])
    assert {round(a.agreement, 6) for a in result.agreements} == {1.0, 0.8, 0.6}
    report = result.report
    assert report.n_items == 400 and report.n_labels == 2000 and report.n_ties == 0 and report.n_single_label == 0
    # the readers' majority (the file's perceived_majority) against the author's own label
    assert result.majority_matches_gold == pytest.approx(sum(r["perceived_majority"] == r["label"] for r in raw) / 400)
    # Fleiss' kappa by hand from the file's vote counts, Krippendorff's alpha from krippendorff's
    # reliability-data form (raters x items): independent of the count-matrix code
    votes = np.array([[5 - r["votes_sarcastic"], r["votes_sarcastic"]] for r in raw], dtype=float)
    p_i = ((votes**2).sum(axis=1) - 5) / 20
    p_j = votes.sum(axis=0) / 2000
    kappa = (p_i.mean() - (p_j**2).sum()) / (1 - (p_j**2).sum())
    assert report.fleiss_kappa == pytest.approx(kappa)
    codes = np.array([[1.0 if v == "sarcastic" else 0.0 for v in r["ratings"]] for r in raw]).T
    assert report.krippendorff_alpha == pytest.approx(krippendorff.alpha(reliability_data=codes, level_of_measurement="nominal"))
    assert "5 per item" in result.description and f"Fleiss' κ = {kappa:.3f}" in result.description


def test_phrasebank_levels_go_through_the_same_entry_point(task_data):
    task = get_task("financial_phrasebank")
    examples = load_split(task, "test", task_data, limit_per_label=20, seed=1)
    result = data_agreement(examples, task)
    assert result.kind == "levels" and result.report is None and result.majority_matches_gold is None
    assert result.agreements == phrasebank_agreements(examples)
    assert result.description == "Financial PhraseBank's per-sentence agreement levels (50/66/75/100% of annotators)"


def test_data_without_ratings_or_levels_is_refused_and_train_splits_have_none(task_data):
    sms = get_task("sms_spam")
    examples = load_split(sms, "test", task_data, limit_per_label=3)
    assert data_agreement_kind(examples, sms) is None
    with pytest.raises(ValueError, match="no per-item 'ratings'"):
        data_agreement(examples, sms)
    sarcasm = get_task("tweet_sarcasm")
    assert data_agreement_kind(load_split(sarcasm, "train", task_data, limit_per_label=3), sarcasm) is None
    with pytest.raises(ValueError, match="no examples"):
        data_agreement([], sarcasm)


def test_ratings_on_some_rows_only_or_outside_the_labels_are_errors_naming_the_example():
    task = get_task("tweet_sarcasm")
    rows = [Example(id="t1", text="a", label="sarcastic", extra={"ratings": ["sarcastic", "not_sarcastic"]}),
            Example(id="t2", text="b", label="sarcastic", extra={})]
    with pytest.raises(ValueError, match="example 't2' has no 'ratings' field"):
        data_agreement(rows, task)
    foreign = [Example(id="t3", text="c", label="sarcastic", extra={"ratings": ["sarcastic", "ironic"]})]
    with pytest.raises(ValueError, match="example 't3': rating 'ironic' is not a label"):
        data_agreement(foreign, task)
    empty = [Example(id="t4", text="d", label="sarcastic", extra={"ratings": []})]
    with pytest.raises(ValueError, match="example 't4'"):
        ratings_as_labels(empty, task)


def test_ratings_are_mapped_with_the_tasks_label_map_like_gold_labels():
    task = TaskSpec(name="coded", title="Coded", description="d", labels=("no", "yes"),
                    label_descriptions={"no": "n", "yes": "y"}, context="c", style="s", label_map={"0": "no", "1": "yes"})
    rows = [Example(id="x", text="t", label="yes", extra={"ratings": [1, 1, 0]}),
            Example(id="y", text="u", label="no", extra={"ratings": ["0", "0", "0"]})]
    result = data_agreement(rows, task)
    assert [(a.item, round(a.agreement, 6)) for a in result.agreements] == [("x", round(2 / 3, 6)), ("y", 1.0)]
    assert result.majority_matches_gold == 1.0
    assert [lab.worker for lab in ratings_as_labels(rows, task)[:3]] == ["rating1", "rating2", "rating3"]
