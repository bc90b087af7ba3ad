"""Quality control: gold and attention checks, agreement, speed, exclusion, and the worker models."""

from __future__ import annotations

import math
import random

import pytest

from annotation_server import quality
from annotation_server.state import get_state
from annotation_server.db import session_scope
from subjlab.data import load_split
from subjlab.records import Judgment, Label
from subjlab.tasks import PAPER_TASKS, REGISTRY


def test_agreement_with_the_majority_of_others_skips_ties_and_units_nobody_else_answered():
    labels = [Label("i1", "a", "x"), Label("i1", "b", "x"), Label("i1", "c", "x"), Label("i1", "d", "y"),
              Label("i2", "a", "x"), Label("i2", "b", "y"),                      # one other each: both disagree
              Label("i3", "a", "x"), Label("i3", "b", "y"), Label("i3", "c", "z"),  # others tied: not comparable
              Label("i4", "a", "x")]                                             # nobody else: not comparable
    got = quality.majority_agreement(labels)
    assert got == {"a": (1, 2), "b": (1, 2), "c": (1, 1), "d": (0, 1)}
    pairs = [Judgment("t1", "t2", "t1", worker="a"), Judgment("t2", "t1", "t1", worker="b"),
             Judgment("t1", "t2", "t2", worker="c"), Judgment("t2", "t1", "t1", worker="d")]
    # a pair is unordered: (t1, t2) and (t2, t1) are the same unit
    assert quality.majority_agreement(pairs) == {"a": (1, 1), "b": (1, 1), "c": (0, 1), "d": (1, 1)}


def answer(client, clock, study, worker: str, seconds: float, correct: bool) -> int:
    """Work through `study` as `worker`, taking `seconds` per unit, answering truly or falsely."""
    r = client.post(f"/api/v1/studies/{study.name}/sessions", json={"worker_id": worker})
    headers = {"Authorization": f"Bearer {r.json['token']}"}
    n = 0
    while (r := client.get(f"/api/v1/studies/{study.name}/next", headers=headers)).status_code == 200:
        truth = study.answer_for(r.json["item"]["text"])
        label = truth if correct else {"ham": "spam", "spam": "ham"}[truth]
        clock.advance(seconds)
        assert client.post(f"/api/v1/assignments/{r.json['assignment']}", json={"label": label}, headers=headers).status_code == 201
        n += 1
    return n


def test_gold_attention_and_speed_flag_workers_and_analysis_drops_their_records(make_app, clock, make_spam_study):
    app = make_app(CLOCK=clock)
    study = make_spam_study(app, name="qc", max_per_worker=4, gold_every=2)  # 4 items + 3 checks per worker
    client = app.test_client()
    assert answer(client, clock, study, "careful", 6.0, correct=True) == 7
    assert answer(client, clock, study, "careless", 6.0, correct=False) == 7
    assert answer(client, clock, study, "hasty", 0.5, correct=True) == 7
    engine = get_state(app).engine
    with session_scope(engine) as db:
        q = {w.worker: w for w in quality.worker_quality(db, "qc")}
    assert (q["careful"].units, q["careful"].gold_answered, q["careful"].gold_accuracy) == (4, 3, 1.0)
    assert (q["careless"].gold_accuracy, q["careless"].attention_answered, q["careless"].attention_failed) == (0.0, 1, 1)
    assert q["hasty"].median_seconds == pytest.approx(0.5) and q["careful"].median_seconds == pytest.approx(6.0)
    flagged = {f.worker: [r.code for r in f.reasons] for f in quality.flag_workers(q.values())}
    assert flagged == {"careless": ["attention", "gold"], "hasty": ["too_fast"]}
    assert "failed 1 of 1 attention checks" in quality.flag_workers([q["careless"]])[0].reasons[0].message

    url = get_state(app).settings.database_url
    kept, report = quality.load_study_data(url, "qc")
    assert {r.worker for r in kept} == {"careful"} and len(kept) == 4
    assert (report.n_records, report.n_excluded, report.n_kept) == (12, 8, 4)
    assert report.excluded_by_reason == {"attention": 4, "gold": 4, "too_fast": 4}
    assert report.lines() == ["excluded 8 of 12 labels from 2 flagged worker(s) (attention: 4, gold: 4, too_fast: 4)"]
    everything, report = quality.load_study_data(url, "qc", exclude_flagged=False)
    assert len(everything) == 12 and not report.applied and len(report.flagged) == 2
    lenient = quality.ExclusionRules(max_failed_attention=1, min_gold_accuracy=None, min_median_seconds=None)
    assert len(quality.load_study_data(url, "qc", rules=lenient)[0]) == 12
    with pytest.raises(ValueError, match="unknown study"):
        quality.load_study_data(url, "nope")
    with session_scope(engine) as db:
        report = quality.quality_report(db, "qc", mace_restarts=1, mace_iterations=10)
    assert [f["worker"] for f in report["flagged"]] == ["careless", "hasty"]
    assert report["exclusion"]["n_excluded"] == 8 and len(report["workers"]) == 3
    assert report["models"]["methods"] == ["majority_vote", "dawid_skene", "mace"] and report["models"]["n_items"] == 6


def simulated_crowd(seed: int) -> tuple[list[Label], dict[str, str]]:
    """Real SMS-spam test items (ids, true labels) labeled by 3 good workers and 3 spammers, 5 labels each."""
    rows = load_split(REGISTRY["sms_spam"], "test", None, limit_per_label=20, seed=1)
    truth = {r.id: r.label for r in rows}
    rng = random.Random(seed)
    accuracy = {"good-1": 0.9, "good-2": 0.85, "good-3": 0.8}
    spammers = {"always-ham-1", "always-ham-2", "coin-flipper"}
    labels = []
    for item, true in truth.items():
        for w in rng.sample(sorted(set(accuracy) | spammers), 5):
            if w in accuracy:
                label = true if rng.random() < accuracy[w] else {"ham": "spam", "spam": "ham"}[true]
            elif w.startswith("always"):
                label = "ham"
            else:
                label = rng.choice(["ham", "spam"])
            labels.append(Label(item=item, worker=w, label=label))
    return labels, truth


def test_dawid_skene_and_mace_recover_the_truth_at_least_as_well_as_majority_vote():
    labels, truth = simulated_crowd(seed=3)
    agg = quality.compare_label_models(labels, truth, mace_restarts=2, mace_iterations=20)
    acc = agg.accuracy
    assert acc["dawid_skene"] >= acc["majority_vote"] and acc["mace"] >= acc["majority_vote"]
    assert acc["dawid_skene"] > acc["majority_vote"]  # the two always-ham spammers sink majority vote here
    for method in ("dawid_skene", "mace"):
        skills = agg.skills[method]
        assert min(skills[w] for w in ("good-1", "good-2", "good-3")) > max(
            skills[w] for w in ("always-ham-1", "always-ham-2", "coin-flipper")), method
    assert agg.agreement_with_mv["majority_vote"] == 1.0
    assert set(agg.labels["mace"]) == set(truth)


def test_pair_models_recover_the_objectivity_order_and_bradley_terry_converges():
    import choix
    from scipy.stats import spearmanr

    tasks = list(PAPER_TASKS)
    strength = {t: 2.0 - 0.4 * i for i, t in enumerate(tasks)}
    rng = random.Random(3)
    judgments = []
    for i, a in enumerate(tasks):
        for b in tasks[i + 1:]:
            for w in rng.sample([f"good-{k}" for k in range(6)] + ["left-clicker", "coin"], 4):
                left, right = (a, b) if rng.random() < 0.5 else (b, a)
                if w.startswith("good"):
                    p_left = 1 / (1 + math.exp(strength[right] - strength[left]))
                    winner = left if rng.random() < p_left else right
                else:
                    winner = left if w == "left-clicker" else rng.choice([left, right])
                judgments.append(Judgment(left=left, right=right, winner=winner, worker=w))
    agg = quality.compare_pair_models(judgments)
    truth = [strength[t] for t in tasks]
    for method in ("win_rate", "bradley_terry", "noisy_bradley_terry"):
        assert spearmanr(truth, [agg.scores[method][t] for t in tasks]).statistic > 0.9, method
    index = {t: i for i, t in enumerate(tasks)}
    ml = choix.ilsr_pairwise(len(tasks), [(index[j.winner], index[j.right if j.winner == j.left else j.left])
                                          for j in judgments], alpha=0.01)
    # with tol=0 crowd-kit's Bradley-Terry runs to convergence: the same order as choix's ML estimate
    assert spearmanr(ml, [agg.scores["bradley_terry"][t] for t in tasks]).statistic > 0.98
    assert agg.ranking("noisy_bradley_terry")[0] == tasks[0]
    assert set(agg.skills) == {f"good-{k}" for k in range(6)} | {"left-clicker", "coin"}
