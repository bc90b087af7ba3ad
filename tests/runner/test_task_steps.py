"""The per-task steps that need no model: real data slices, agreement from a test split's own human
annotations (tweet_sarcasm's ratings, Financial PhraseBank's levels), and γ scores with bands over
hand-made TEST predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from subjlab.records import Prediction, read_agreements, read_examples, write_records
from subjlab.runner.config import load_config
from subjlab.runner.steps import Step, StepRunner
from subjlab.runner.task_steps import agreement_kind, agreement_step, data_step, make_agreement, make_real_data, stratified_step

CONFIG = """
[study]
name = "steps"
tasks = ["tweet_sarcasm", "financial_phrasebank", "sms_spam"]
seed = 4

[data]
train_per_label = 5
test_per_label = 40
small_real_per_label = 2

[evaluation]
gammas = [0.5, 0.8, 1.0]
bootstrap = 400
"""


@pytest.fixture()
def config(tmp_path: Path):
    path = tmp_path / "steps.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return load_config(path)


def real_and_agreement(config, task, tmp_path: Path):
    runner = StepRunner(tmp_path / "log.jsonl", echo=lambda _: None)
    base = tmp_path / task.name
    real = runner.run(data_step(config, task, base), lambda w: make_real_data(config, task, w))
    kind = agreement_kind(config, task)
    agreement = runner.run(agreement_step(config, task, base, real, kind), lambda w: make_agreement(config, task, real, kind, w))
    return runner, real, agreement


def test_agreement_comes_from_the_test_splits_own_annotations_where_they_exist(config):
    kinds = {t.name: agreement_kind(config, t) for t in config.tasks}
    assert kinds == {"tweet_sarcasm": ("data", None), "financial_phrasebank": ("data", None), "sms_spam": None}


def test_tweet_sarcasm_agreement_is_the_majority_share_of_its_ratings_as_the_file_says(config, tmp_path, task_data):
    task = config.tasks[0]
    _, real, agreement = real_and_agreement(config, task, tmp_path)
    test = read_examples(real.path("test.jsonl"))
    shipped = {row["id"]: row["agreement"] for row in map(json.loads, (task_data / "tweet_sarcasm" / "test.jsonl").open())}
    records = read_agreements(agreement.path("agreement.jsonl"))
    assert [r.item for r in records] == [ex.id for ex in test] and len(records) == 80
    assert [r.agreement for r in records] == pytest.approx([shipped[ex.id] for ex in test])
    source = agreement.meta["source"]
    assert source.startswith("the dataset's own human ratings (5 per item") and "Krippendorff's α = " in source
    assert "the raters' majority label is the gold label for" in source


def test_phrasebank_levels_keep_their_description(config, tmp_path):
    _, _, agreement = real_and_agreement(config, config.tasks[1], tmp_path)
    assert agreement.meta["source"] == "Financial PhraseBank's per-sentence agreement levels (50/66/75/100% of annotators)"
    assert agreement.meta["covered"] == agreement.meta["test_size"] == 120


def test_stratified_step_writes_points_with_bands(config, tmp_path):
    task = config.tasks[0]
    runner, real, agreement = real_and_agreement(config, task, tmp_path)
    test = read_examples(real.path("test.jsonl"))
    # TEST predictions: right on every other item
    preds = [Prediction(id=ex.id, label=ex.label, prediction=ex.label if k % 2 == 0 else
                        next(lab for lab in task.labels if lab != ex.label)) for k, ex in enumerate(test)]
    trained = [runner.run(Step("model", tmp_path / "model", params={"v": 1}),
                          lambda w: (write_records(w / "predictions.jsonl", preds), None)[1])]
    res = runner.run(*stratified_step(config, task, tmp_path / task.name, "real", "minilm", trained, agreement))
    points = res.meta["points"]
    assert [p["gamma"] for p in points] == [0.5, 0.8, 1.0] and points[0]["n"] == 80
    for p in points:
        assert p["accuracy_low"] <= p["accuracy"] <= p["accuracy_high"] and p["macro_f1_low"] <= p["macro_f1"] <= p["macro_f1_high"]
    assert points[0]["accuracy"] == pytest.approx(0.5) and points[0]["accuracy_high"] - points[0]["accuracy_low"] > 0.1
    assert json.loads(res.path("gamma.json").read_text()) == points
