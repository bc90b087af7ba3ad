"""Annotation agreement: a_i, ties, single labels, duplicates, Fleiss' kappa, Krippendorff's alpha,
and Financial PhraseBank's shipped agreement levels on the real data."""

from __future__ import annotations

import json

from collections import Counter

import numpy as np
import pytest

from analysis.agreement import (
    AgreementAnalyzer,
    fleiss_kappa,
    item_agreement,
    krippendorff_alpha_nominal,
    phrasebank_agreement,
    phrasebank_agreements,
    to_agreements,
)
from analysis.plots import plot_agreement_hist
from subjlab.data import load_split
from subjlab.records import Agreement, Label
from subjlab.tasks import get_task


def labels_from_rows(rows: dict[str, list[str | None]]) -> list[Label]:
    """item -> one label per worker position (None = that worker did not label the item)."""
    return [
        Label(item=item, worker=f"w{k}", label=lab)
        for item, labs in rows.items()
        for k, lab in enumerate(labs)
        if lab is not None
    ]


def labels_from_counts(counts: list[list[int]], categories: list[str]) -> list[Label]:
    """Build labels from an items x categories count matrix (workers w0, w1, ... per item)."""
    out = []
    for i, row in enumerate(counts):
        labs = [c for c, n in zip(categories, row) for _ in range(n)]
        out += [Label(item=f"i{i}", worker=f"w{k}", label=lab) for k, lab in enumerate(labs)]
    return out


def test_item_agreement_is_the_share_of_the_majority_label():
    # 3 of 4 workers say "pos": a = 3/4, majority pos, no tie.
    it = item_agreement("x", ["pos", "neg", "pos", "pos"])
    assert it.agreement == 0.75 and it.majority == "pos" and it.n_labels == 4
    assert not it.tie and not it.single
    assert it.counts == {"neg": 1, "pos": 3}


def test_tie_takes_the_first_label_in_label_order_else_alphabetical_and_is_flagged():
    # 2 vs 2: a = 1/2 either way; the rule decides the majority label.
    alpha_order = item_agreement("x", ["pos", "neg", "pos", "neg"])
    assert alpha_order.tie and alpha_order.agreement == 0.5 and alpha_order.majority == "neg"
    task_order = item_agreement("x", ["pos", "neg", "pos", "neg"], label_order=["pos", "neutral", "neg"])
    assert task_order.tie and task_order.majority == "pos"
    # a label missing from label_order ranks after the listed ones
    partial = item_agreement("x", ["zz", "aa"], label_order=["zz"])
    assert partial.majority == "zz"


def test_single_label_items_are_reported_with_agreement_one_and_flagged():
    labels = labels_from_rows({"a": ["x", "x"], "b": ["y", None], "c": ["x", "y"]})
    rep = AgreementAnalyzer().fit(labels).report_
    by_item = {it.item: it for it in rep.items}
    assert set(by_item) == {"a", "b", "c"}
    assert by_item["b"].agreement == 1.0 and by_item["b"].n_labels == 1 and by_item["b"].single
    assert rep.n_single_label == 1
    # mean over all items (1 + 1 + 1/2)/3 = 5/6; over items with >= 2 labels (1 + 1/2)/2 = 3/4
    assert rep.mean_agreement == pytest.approx(5 / 6)
    assert rep.mean_agreement_multi == pytest.approx(0.75)
    # unequal label counts: Fleiss' kappa undefined, with the reason
    assert rep.fleiss_kappa is None and "same number of labels" in rep.fleiss_kappa_note


def test_duplicate_label_by_the_same_worker_keeps_the_last_or_errors():
    labels = [
        Label(item="a", worker="w1", label="x"),
        Label(item="a", worker="w2", label="y"),
        Label(item="a", worker="w1", label="y"),  # w1 changes their mind: only "y" counts
    ]
    rep = AgreementAnalyzer().fit(labels).report_
    assert rep.items[0].n_labels == 2 and rep.items[0].agreement == 1.0 and rep.items[0].majority == "y"
    assert rep.n_duplicates_replaced == 1 and rep.n_labels == 2
    with pytest.raises(ValueError, match="'w1' labeled item 'a' more than once"):
        AgreementAnalyzer(duplicates="error").fit(labels)


def test_hand_computed_kappa_and_alpha_on_three_items():
    # items [a,a], [b,b], [a,b]; n = 2 labels each, N = 3.
    # Fleiss: P_i = 1, 1, 0 -> P_bar = 2/3; p_a = p_b = 1/2 -> P_e = 1/2; kappa = (2/3 - 1/2)/(1/2) = 1/3.
    # Krippendorff: o_aa = 2, o_bb = 2, o_ab = o_ba = 1; n_a = n_b = 3, n = 6;
    # D_o = 2/6 = 1/3, D_e = 2*3*3/(6*5) = 0.6, alpha = 1 - (1/3)/0.6 = 4/9.
    labels = labels_from_rows({"1": ["a", "a"], "2": ["b", "b"], "3": ["a", "b"]})
    rep = AgreementAnalyzer().fit(labels).report_
    assert rep.fleiss_kappa == pytest.approx(1 / 3)
    assert rep.krippendorff_alpha == pytest.approx(4 / 9)
    assert rep.mean_agreement == pytest.approx((1 + 1 + 0.5) / 3)
    assert rep.categories == ["a", "b"] and rep.n_workers == 2 and rep.n_ties == 1


# Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa", worked example): 10 subjects, 14 raters,
# 5 categories; P_bar = 0.378, P_e = 0.213, kappa = 0.210.
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_matches_the_textbook_example():
    assert fleiss_kappa(np.array(FLEISS_EXAMPLE)) == pytest.approx(0.210, abs=5e-4)
    # the same through Label records and the analyzer
    rep = AgreementAnalyzer().fit(labels_from_counts(FLEISS_EXAMPLE, ["c1", "c2", "c3", "c4", "c5"])).report_
    assert rep.fleiss_kappa == pytest.approx(0.210, abs=5e-4)
    assert rep.items[0].agreement == 1.0  # 14 of 14
    assert rep.items[1].agreement == pytest.approx(6 / 14)


def test_fleiss_kappa_rejects_unequal_counts_and_a_single_category():
    with pytest.raises(ValueError, match="same number of labels"):
        fleiss_kappa(np.array([[2, 0], [1, 2]]))
    with pytest.raises(ValueError, match="P_e = 1"):
        fleiss_kappa(np.array([[3, 0], [3, 0]]))


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12 units
# with missing values; the paper reports alpha_nominal = 0.743. Unit 12 has one value (unpairable).
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def test_krippendorff_alpha_matches_krippendorffs_own_example_with_a_single_label_unit():
    labels = [
        Label(item=f"u{u + 1}", worker=obs, label=str(v))
        for obs, values in KRIPPENDORFF_2011.items()
        for u, v in enumerate(values)
        if v is not None
    ]
    analyzer = AgreementAnalyzer().fit(labels)
    rep = analyzer.report_
    assert rep.krippendorff_alpha == pytest.approx(0.743, abs=5e-4)
    u12 = next(it for it in rep.items if it.item == "u12")
    assert u12.single and u12.n_labels == 1 and u12.agreement == 1.0
    # unit 6: values 1, 2, 3, 4 -> four-way tie, a = 1/4, alphabetical majority "1"
    u6 = next(it for it in rep.items if it.item == "u6")
    assert u6.tie and u6.agreement == 0.25 and u6.majority == "1"
    assert rep.fleiss_kappa is None  # 3 or 4 (or 1) values per unit


def test_krippendorff_alpha_undefined_cases_are_none_with_a_reason():
    only_singles = AgreementAnalyzer().fit(labels_from_rows({"a": ["x"], "b": ["y"]})).report_
    assert only_singles.krippendorff_alpha is None and "at least 2 workers" in only_singles.krippendorff_alpha_note
    assert [it.agreement for it in only_singles.items] == [1.0, 1.0]
    one_category = AgreementAnalyzer().fit(labels_from_rows({"a": ["x", "x"], "b": ["x", "x"]})).report_
    assert one_category.krippendorff_alpha is None and "one category" in one_category.krippendorff_alpha_note
    assert one_category.fleiss_kappa is None
    with pytest.raises(ValueError, match="one category"):
        krippendorff_alpha_nominal(np.array([[2], [3]]))


def test_fit_on_no_labels_is_an_error_and_records_round_trip():
    with pytest.raises(ValueError, match="no labels"):
        AgreementAnalyzer().fit([])
    with pytest.raises(ValueError, match="not fitted"):
        AgreementAnalyzer().agreements()
    analyzer = AgreementAnalyzer().fit(labels_from_rows({"a": ["x", "y", "x"], "b": ["y", "y", "y"]}))
    recs = analyzer.agreements()
    assert recs == [Agreement(item="a", agreement=2 / 3), Agreement(item="b", agreement=1.0)]
    assert to_agreements(analyzer.items_) == recs
    assert analyzer.report_.distribution() == [(1.0, 1), (0.667, 1)]


def test_phrasebank_levels_map_to_their_lower_bounds():
    assert phrasebank_agreement("100") == 1.0
    assert phrasebank_agreement("75") == 0.75
    assert phrasebank_agreement("66") == pytest.approx(2 / 3)
    assert phrasebank_agreement(50) == 0.5
    with pytest.raises(ValueError, match="unknown Financial PhraseBank agreement level"):
        phrasebank_agreement("90")


def test_phrasebank_agreement_on_the_bundled_slice_follows_each_rows_shipped_level(task_data):
    task = get_task("financial_phrasebank")
    value = {"100": 1.0, "75": 0.75, "66": round(2 / 3, 6), "50": 0.5}
    for split in ("train", "test"):
        raw = [json.loads(line) for line in (task_data / "financial_phrasebank" / f"{split}.jsonl").open(encoding="utf-8")]
        examples = load_split(task, split, task_data)
        recs = phrasebank_agreements(examples)
        assert [r.item for r in recs] == [e.id for e in examples] == [row["id"] for row in raw]
        assert [round(r.agreement, 6) for r in recs] == [value[row["agreement"]] for row in raw]
        assert set(Counter(row["agreement"] for row in raw)) == set(value)  # every level occurs


@pytest.mark.devdata
def test_phrasebank_agreement_on_the_development_data_matches_the_documented_level_counts(dev_data):
    # datasets README, "Agreement levels per split and label", summed over the three labels:
    # test:  100: 107+242+184 = 533, 75: 35+139+103 = 277, 66: 29+71+102 = 202, 50: 30+48+64 = 142
    # train: 100: 196+473+386 = 1055, 75: 82+267+214 = 563, 66: 65+134+177 = 376, 50: 60+126+131 = 317
    task = get_task("financial_phrasebank")
    expected = {
        "test": {1.0: 533, 0.75: 277, round(2 / 3, 6): 202, 0.5: 142},
        "train": {1.0: 1055, 0.75: 563, round(2 / 3, 6): 376, 0.5: 317},
    }
    for split, counts in expected.items():
        examples = load_split(task, split, dev_data)
        recs = phrasebank_agreements(examples)
        assert [r.item for r in recs] == [e.id for e in examples]
        assert Counter(round(r.agreement, 6) for r in recs) == counts
    # negative test sentences at level 100: 107
    test = load_split(task, "test", dev_data)
    neg_full = [r for r, e in zip(phrasebank_agreements(test), test) if e.label == "negative" and r.agreement == 1.0]
    assert len(neg_full) == 107


def test_phrasebank_agreements_reject_data_without_the_field(task_data):
    examples = load_split(get_task("sms_spam"), "test", task_data, limit_per_label=2)
    with pytest.raises(ValueError, match="has no 'agreement' field"):
        phrasebank_agreements(examples)


def test_agreement_histogram_is_a_real_png(tmp_path):
    path = plot_agreement_hist([1.0, 1.0, 0.75, 2 / 3, 0.5, 1.0], tmp_path / "hist.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    many = plot_agreement_hist(list(np.linspace(0, 1, 60)), tmp_path / "many.png")
    assert many.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no agreement values"):
        plot_agreement_hist([], tmp_path / "none.png")
