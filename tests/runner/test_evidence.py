"""From finished steps to report rows with intervals: Table-1 cells pooled over seeds, paired gaps,
the rise with γ and its steepness, diversity and closeness contrasts, γ bands.

The steps here are real `StepRunner` steps that write hand-made TEST predictions, agreement and
per-text diversity values (no model is trained); they stand for no real study.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.intervals import difference_estimate, rise_estimate, score_estimate
from subjlab.records import Agreement, Prediction, write_records
from subjlab.runner.evidence import MIN_RISE_ITEMS, TaskResults, rise_gammas, task_info, task_rows, task_seed
from subjlab.runner.report_model import Intervals
from subjlab.runner.steps import Step, StepRunner
from subjlab.tasks import get_task

TASK = get_task("tweet_sarcasm")
N = 120
#: agreement: 60 items at 1.0, 30 at 0.8, 30 at 0.6
LEVEL = [1.0] * 60 + [0.8] * 30 + [0.6] * 30
SETTINGS = Intervals(n_resamples=800, seed=5)
SEED = task_seed(5, TASK.name)  # the bootstrap seed task_rows uses for this task


def predictions(right) -> list[Prediction]:
    labels = TASK.labels
    return [Prediction(id=f"t{i}", label=labels[i % 2], prediction=labels[i % 2] if right(i) else labels[(i + 1) % 2])
            for i in range(N)]


#: TEST predictions per condition and seed: real is right on every high-agreement item and half the
#: others; zero-shot is right on 70% of items regardless of agreement; few-shot in between.
RIGHT = {
    ("real", 1): lambda i: LEVEL[i] == 1.0 or i % 2 == 0,
    ("real", 2): lambda i: LEVEL[i] == 1.0 or i % 4 != 1,
    ("zero_shot", 1): lambda i: i % 10 < 7,
    ("zero_shot", 2): lambda i: i % 10 < 6,
    ("few_shot", 1): lambda i: i % 10 < 8,
    ("few_shot", 2): lambda i: i % 10 < 8 or i % 10 == 9,
}


@pytest.fixture()
def results(tmp_path: Path) -> TaskResults:
    runner = StepRunner(tmp_path / "log.jsonl", echo=lambda _: None)

    def step(name: str, write) -> object:
        return runner.run(Step(name, tmp_path / name, params={"v": 1}), write)

    out = TaskResults(info=task_info(TASK, 200, N))
    for cond in ("real", "zero_shot", "few_shot"):
        out.trained[(cond, "minilm")] = [
            step(f"{cond}/s{seed}", lambda w, c=cond, s=seed: (write_records(w / "predictions.jsonl", predictions(RIGHT[(c, s)])),
                                                              {"train_size": 100, "val_size": 10})[1])
            for seed in (1, 2)
        ]
    out.agreement = step("agreement", lambda w: (write_records(w / "agreement.jsonl", [Agreement(f"t{i}", LEVEL[i]) for i in range(N)]),
                                                 {"source": "test ratings"})[1])
    per_text = {"real": [0.8 + 0.001 * (i % 9) for i in range(200)], "zero_shot": [0.5 + 0.002 * (i % 7) for i in range(40)],
                "few_shot": [0.6 + 0.002 * (i % 5) for i in range(40)]}
    similarity = {"zero_shot": [0.4 + 0.001 * (i % 3) for i in range(200)], "few_shot": [0.5 + 0.001 * (i % 4) for i in range(200)]}
    for cond, values in per_text.items():
        items = {"remote_clique": values} | ({"similarity_top5": similarity[cond]} if cond in similarity else {})
        meta = {"n": len(values), "remote_clique": sum(values) / len(values), "chamfer": 0.3,
                "similarity_top5": sum(similarity[cond]) / 200 if cond in similarity else None}
        out.diversity[cond] = step(f"{cond}/diversity", lambda w, i=items, m=meta: (
            (w / "diversity_items.json").write_text(json.dumps(i)), m)[1])
    return out


def seeds(cond: str) -> list[list[Prediction]]:
    return [predictions(RIGHT[(cond, s)]) for s in (1, 2)]


def test_cells_pool_two_seeds_and_match_the_interval_functions(results):
    rows = task_rows(TASK, results, ("real", "zero_shot", "few_shot"), ("minilm",), (0.5, 0.8, 1.0), SETTINGS)
    cell = next(c for c in rows.performance if c.condition == "zero_shot")
    expected = score_estimate(seeds("zero_shot"), "accuracy", SETTINGS.n_resamples, SEED)
    assert cell.accuracy == pytest.approx(0.65) and cell.n_seeds == 2 and cell.eval_size == N
    assert (cell.accuracy_interval.low, cell.accuracy_interval.high) == (expected.low, expected.high)
    assert cell.train_size == 110 and cell.macro_f1_interval.low < cell.macro_f1 < cell.macro_f1_interval.high


def test_gaps_and_order_are_paired_contrasts(results):
    rows = task_rows(TASK, results, ("real", "zero_shot", "few_shot"), ("minilm",), (0.5, 0.8, 1.0), SETTINGS)
    gaps = {(c.b, c.metric): c.estimate for c in rows.contrasts if c.kind == "gap"}
    assert set(gaps) == {(c, m) for c in ("zero_shot", "few_shot") for m in ("macro_f1", "accuracy")}
    assert gaps[("zero_shot", "accuracy")] == difference_estimate(seeds("real"), seeds("zero_shot"), "accuracy",
                                                                  SETTINGS.n_resamples, SEED)
    order = next(c for c in rows.contrasts if c.kind == "order")
    assert (order.a, order.b, order.metric) == ("few_shot", "zero_shot", "macro_f1") and order.estimate.value > 0
    assert set(rows.gap_bootstraps) == {("minilm", "zero_shot"), ("minilm", "few_shot")}
    assert rows.gap_bootstraps[("minilm", "zero_shot")].replicates.size == SETTINGS.n_resamples


def test_rise_with_gamma_and_its_steepness_for_synthetic_models(results):
    rows = task_rows(TASK, results, ("real", "zero_shot", "few_shot"), ("minilm",), (0.5, 0.8, 1.0), SETTINGS)
    rises = {c.a: c for c in rows.contrasts if c.kind == "rise"}
    assert set(rises) == {"real", "zero_shot", "few_shot"}
    amap = {f"t{i}": LEVEL[i] for i in range(N)}
    expected = rise_estimate(seeds("real"), amap, 0.5, 1.0, "accuracy", SETTINGS.n_resamples, SEED)
    assert rises["real"].estimate == expected.estimate and rises["real"].estimate.above(0)
    assert rises["real"].detail == "γ 0.5 (n=120) → γ 1 (n=60)"
    steeper = {c.a: c.estimate for c in rows.contrasts if c.kind == "steeper"}
    # real rises by design; zero-shot does not: the synthetic model's rise is the smaller one here
    assert set(steeper) == {"zero_shot", "few_shot"} and steeper["zero_shot"].below(0)


def test_tasks_get_their_own_stable_bootstrap_seeds():
    assert task_seed(5, "tweet_sarcasm") == task_seed(5, "tweet_sarcasm") != task_seed(5, "humor")
    assert task_seed(5, "humor") != task_seed(6, "humor") and 0 <= task_seed(2**40, "x") < 2**32


def test_rise_uses_the_highest_gamma_that_still_holds_enough_items():
    amap = {f"i{k}": (1.0 if k < MIN_RISE_ITEMS - 1 else 0.8 if k < 60 else 0.5) for k in range(100)}
    items = list(amap)
    assert rise_gammas(amap, items, [0.5, 0.8, 1.0]) == (0.5, 0.8)  # γ = 1 holds 19 items, too few
    assert rise_gammas({i: 1.0 for i in items}, items, [0.5, 0.8, 1.0]) is None  # every γ keeps every item


def test_diversity_rows_and_contrasts_come_from_the_per_text_values(results):
    rows = task_rows(TASK, results, ("real", "zero_shot", "few_shot"), ("minilm",), (0.5, 0.8, 1.0), SETTINGS)
    real = next(d for d in rows.diversity if d.condition == "real")
    assert real.remote_clique_interval.low < real.remote_clique < real.remote_clique_interval.high
    assert real.similarity_interval is None
    diverse = {c.b: c.estimate for c in rows.contrasts if c.kind == "diversity"}
    assert set(diverse) == {"zero_shot", "few_shot"} and all(e.above(0) for e in diverse.values())
    close = next(c for c in rows.contrasts if c.kind == "closeness")
    # few-shot values are 0.1 above zero-shot's on every real text: the paired interval is tight around 0.1
    assert close.estimate.value == pytest.approx(0.1, abs=0.002) and close.estimate.high - close.estimate.low < 0.002


def test_no_agreement_means_no_rise_and_missing_conditions_no_order(results):
    results.agreement = None
    del results.trained[("few_shot", "minilm")]
    rows = task_rows(TASK, results, ("real", "zero_shot"), ("minilm",), (0.5, 1.0), SETTINGS)
    kinds = {c.kind for c in rows.contrasts}
    assert "rise" not in kinds and "steeper" not in kinds and "order" not in kinds and "gap" in kinds
