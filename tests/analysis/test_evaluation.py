"""Stratified evaluation: accuracy / Macro-F1 on instances with agreement >= γ, checked by hand and on
Financial PhraseBank's real agreement levels."""

from __future__ import annotations

from collections import Counter

import pytest

from analysis.agreement import phrasebank_agreements
from analysis.evaluation import GammaScore, parse_gammas, score, stratified_scores
from analysis.plots import plot_gamma_curves
from subjlab.data import load_split
from subjlab.records import Agreement, Prediction
from subjlab.tasks import get_task


def preds(rows: list[tuple[str, str, str]]) -> list[Prediction]:
    return [Prediction(id=i, label=gold, prediction=p) for i, gold, p in rows]


# Six instances; agreement a_i and correctness:
#   id  gold  pred  a_i    correct
#   1   pos   pos   1.0    yes
#   2   neg   neg   1.0    yes
#   3   pos   neg   0.8    no
#   4   neg   neg   0.8    yes
#   5   pos   neg   0.6    no
#   6   neu   pos   0.5    no
SIX = preds([("1", "pos", "pos"), ("2", "neg", "neg"), ("3", "pos", "neg"), ("4", "neg", "neg"), ("5", "pos", "neg"), ("6", "neu", "pos")])
SIX_AGREEMENT = {"1": 1.0, "2": 1.0, "3": 0.8, "4": 0.8, "5": 0.6, "6": 0.5}


def test_score_is_accuracy_and_macro_f1_over_gold_labels():
    # ids 1-4: acc 3/4. pos: tp 1, fp 0, fn 1 -> P 1, R 1/2, F1 2/3; neg: tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 4/5.
    # Macro-F1 = (2/3 + 4/5)/2 = 11/15.
    s = score(SIX[:4])
    assert s.n == 4 and s.accuracy == pytest.approx(0.75) and s.macro_f1 == pytest.approx(11 / 15)
    with pytest.raises(ValueError, match="no predictions"):
        score([])


def test_stratified_scores_match_hand_counts_per_gamma():
    out = stratified_scores(SIX, SIX_AGREEMENT, [0.5, 0.6, 0.8, 1.0])
    assert [g.n for g in out] == [6, 5, 4, 2]
    # γ=0.5: all six, 3 correct -> acc 1/2. Gold labels pos, neg, neu:
    #   pos: tp 1, fp 1 (id 6), fn 2 -> P 1/2, R 1/3, F1 2/5; neg: tp 2, fp 2, fn 0 -> P 1/2, R 1, F1 2/3;
    #   neu: tp 0 -> F1 0.  Macro = (2/5 + 2/3 + 0)/3 = 16/45.
    assert out[0].accuracy == pytest.approx(0.5) and out[0].macro_f1 == pytest.approx(16 / 45)
    # γ=0.6: ids 1-5, 3 correct -> 3/5. pos: tp 1, fp 0, fn 2 -> F1 1/2; neg: tp 2, fp 2 -> F1 2/3.
    #   Macro = (1/2 + 2/3)/2 = 7/12 ("neu" is absent from the gold labels here and not averaged).
    assert out[1].accuracy == pytest.approx(0.6) and out[1].macro_f1 == pytest.approx(7 / 12)
    # γ=0.8: ids 1-4 (see test_score...): 3/4, 11/15.  γ=1.0: ids 1-2, both right: 1, 1.
    assert out[2].accuracy == pytest.approx(0.75) and out[2].macro_f1 == pytest.approx(11 / 15)
    assert out[3] == GammaScore(gamma=1.0, n=2, accuracy=1.0, macro_f1=1.0)


def test_agreement_records_work_like_a_mapping_and_gamma_order_is_kept():
    records = [Agreement(item=k, agreement=v) for k, v in SIX_AGREEMENT.items()]
    assert stratified_scores(SIX, records, [1.0, 0.5]) == stratified_scores(SIX, SIX_AGREEMENT, [1.0, 0.5])
    assert [g.gamma for g in stratified_scores(SIX, records, [1.0, 0.5])] == [1.0, 0.5]


def test_two_thirds_reaches_its_own_threshold_despite_rounding_but_not_0_7():
    p = preds([("a", "x", "x"), ("b", "x", "y")])
    # a: stored rounded to 6 digits (0.666667 from a file), b: computed 4/6
    agreements = {"a": 0.666666, "b": 4 / 6}
    out = stratified_scores(p, agreements, [2 / 3, 0.66, 0.7])
    assert [g.n for g in out] == [2, 2, 0]


def test_empty_subset_gives_n_zero_and_none_not_nan():
    out = stratified_scores(SIX, {k: min(v, 0.9) for k, v in SIX_AGREEMENT.items()}, [0.95])
    assert out == [GammaScore(gamma=0.95, n=0, accuracy=None, macro_f1=None)]


def test_missing_agreement_is_an_error_listing_ids_unless_dropped():
    partial = {"1": 1.0, "2": 1.0}
    with pytest.raises(ValueError, match=r"4 of 6 predictions have no agreement value, e.g. '3', '4', '5', '6'"):
        stratified_scores(SIX, partial, [0.5])
    out = stratified_scores(SIX, partial, [0.5], missing="drop")
    assert out == [GammaScore(gamma=0.5, n=2, accuracy=1.0, macro_f1=1.0)]


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="duplicate prediction id"):
        stratified_scores(SIX + SIX[:1], SIX_AGREEMENT, [0.5])
    with pytest.raises(ValueError, match="two agreement values"):
        stratified_scores(SIX, [Agreement(item="1", agreement=1.0), Agreement(item="1", agreement=0.5)], [0.5])
    with pytest.raises(ValueError, match="gamma must be in"):
        stratified_scores(SIX, SIX_AGREEMENT, [1.5])
    with pytest.raises(ValueError, match="missing must be"):
        stratified_scores(SIX, SIX_AGREEMENT, [0.5], missing="ignore")  # type: ignore[arg-type]


def test_parse_gammas():
    assert parse_gammas("0.5, 0.6,1") == [0.5, 0.6, 1.0]
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse_gammas("0.5,x")
    with pytest.raises(ValueError, match="not in"):
        parse_gammas("1.2")
    with pytest.raises(ValueError, match="no thresholds"):
        parse_gammas(" , ")


def test_stratified_scores_on_real_phrasebank_levels(task_data):
    """A real (cheap) classifier on Financial PhraseBank: the subsets are exactly the shipped levels."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    task = get_task("financial_phrasebank")
    train = load_split(task, "train", task_data, limit_per_label=200, seed=0)
    test = load_split(task, "test", task_data)
    vec = TfidfVectorizer()
    clf = LogisticRegression(max_iter=500).fit(vec.fit_transform([e.text for e in train]), [e.label for e in train])
    predicted = clf.predict(vec.transform([e.text for e in test]))
    predictions = [Prediction(id=e.id, label=e.label, prediction=str(p)) for e, p in zip(test, predicted)]
    out = stratified_scores(predictions, phrasebank_agreements(test), [0.5, 0.66, 0.7, 0.75, 1.0])
    # level counts of the bundled test slice (its raw `agreement` field): 74 at '50', 101 at '66',
    # 139 at '75', 286 at '100'
    level = Counter(e.extra["agreement"] for e in test)
    assert level == {"50": 74, "66": 101, "75": 139, "100": 286}
    assert [g.n for g in out] == [600, 600 - 74, 139 + 286, 139 + 286, 286]
    # cross-check γ=1.0 against the raw `agreement` field
    full = [p for p, e in zip(predictions, test) if e.extra["agreement"] == "100"]
    assert out[-1].accuracy == pytest.approx(sum(p.label == p.prediction for p in full) / len(full))
    assert out[0].accuracy == pytest.approx(score(predictions).accuracy)
    # the paper's instance-level finding holds here too: high-agreement sentences are easier
    assert out[-1].accuracy > out[0].accuracy


def test_gamma_curve_plot_is_a_real_png(tmp_path):
    curves = {
        "real": stratified_scores(SIX, SIX_AGREEMENT, [0.5, 0.6, 0.8, 1.0]),
        "synthetic": stratified_scores(SIX, SIX_AGREEMENT, [0.5, 0.8, 0.95]),
    }
    data = plot_gamma_curves(curves, tmp_path / "gamma.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
    with pytest.raises(ValueError, match="no scores to plot"):
        plot_gamma_curves({"empty": [GammaScore(0.9, 0, None, None)]}, tmp_path / "x.png")


def test_macro_f1_on_a_gamma_subset_leaves_out_a_predicted_label_absent_from_its_gold_labels():
    # at gamma = 0.75 the subset is a, b, c, d with gold labels {pos, neg}; b is predicted "neu", a label
    # no gold instance of the subset has. By hand: pos P = 1/1, R = 1/2, F1 = 2/3; neg F1 = 1;
    # Macro-F1 = (2/3 + 1) / 2 = 5/6 (averaging "neu"'s F1 of 0 too would give 5/9); accuracy = 3/4.
    # At gamma = 0 (all six): pos P = R = 1/2, neg 1, neu P = R = 1/2: Macro-F1 = 2/3, accuracy = 4/6.
    rows = [("a", "pos", "pos", 1.0), ("b", "pos", "neu", 1.0), ("c", "neg", "neg", 0.8), ("d", "neg", "neg", 0.8),
            ("e", "neu", "neu", 0.5), ("f", "neu", "pos", 0.6)]
    predictions = [Prediction(id=i, label=gold, prediction=pred) for i, gold, pred, _ in rows]
    agreements = {i: a for i, _, _, a in rows}
    high, everything = stratified_scores(predictions, agreements, [0.75, 0.0])
    assert (high.n, high.accuracy, high.macro_f1) == (4, pytest.approx(3 / 4), pytest.approx(5 / 6))
    assert (everything.n, everything.accuracy, everything.macro_f1) == (6, pytest.approx(4 / 6), pytest.approx(2 / 3))
