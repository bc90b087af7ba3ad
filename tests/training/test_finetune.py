"""Fine-tuning the packaged MiniLM on a tiny real SMS-spam slice: learning, outputs, repeatability."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from subjlab.records import Example, read_predictions
from training import TrainConfig, train_classifier
from training.predict import predict

pytestmark = pytest.mark.slow


def test_a_few_steps_make_the_training_loss_fall(quick_run):
    losses = quick_run.result.loss_history
    assert len(losses) == quick_run.result.steps == 8
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.05, losses


def test_predictions_file_has_one_complete_line_per_eval_example(quick_run, sms, sms_task):
    preds = read_predictions(quick_run.out / "predictions.jsonl")
    assert [p.id for p in preds] == [ex.id for ex in sms.eval]
    assert [p.label for p in preds] == [ex.label for ex in sms.eval]
    for p in preds:
        assert set(p.probs) == set(sms_task.labels)
        assert sum(p.probs.values()) == pytest.approx(1.0, abs=1e-9)
        assert p.prediction == max(p.probs, key=p.probs.get)


def test_metrics_json_holds_the_documented_keys_and_agrees_with_the_predictions(quick_run, sms, sms_task):
    metrics = json.loads((quick_run.out / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "per_class", "confusion_matrix", "train_size", "val_size",
                "eval_size", "val", "seconds", "model", "seed", "best_step", "config"):
        assert key in metrics, key
    preds = read_predictions(quick_run.out / "predictions.jsonl")
    assert metrics["accuracy"] == pytest.approx(sum(p.label == p.prediction for p in preds) / len(preds))
    assert metrics["confusion_matrix"]["labels"] == list(sms_task.labels)
    matrix = metrics["confusion_matrix"]["matrix"]
    assert sum(map(sum, matrix)) == metrics["eval_size"] == len(sms.eval)
    assert sum(matrix[i][i] for i in range(len(matrix))) == sum(p.label == p.prediction for p in preds)
    assert set(metrics["per_class"]) == set(sms_task.labels)
    assert set(metrics["per_class"]["spam"]) == {"precision", "recall", "f1", "support"}
    assert metrics["train_size"] + metrics["val_size"] == len(sms.train)
    assert metrics["val_size"] == 8  # 20% of 40, stratified
    assert 0.0 <= metrics["val"]["macro_f1"] <= 1.0 and metrics["val"]["step"] == metrics["best_step"]
    assert metrics["seed"] == 7 and metrics["model"].endswith("model")
    history = json.loads((quick_run.out / "history.json").read_text())
    assert history["loss"] == pytest.approx(quick_run.result.loss_history)
    assert [v["step"] for v in history["val"]] == [4, 8]  # end of each epoch of 4 steps


def test_the_same_seed_repeats_the_run_exactly(quick_run, sms):
    again = train_classifier(replace(quick_run.config, out_dir=None), sms.train, sms.eval)
    assert again.loss_history == pytest.approx(quick_run.result.loss_history, abs=1e-6)
    assert [p.prediction for p in again.predictions] == [p.prediction for p in quick_run.result.predictions]
    for a, b in zip(again.predictions, quick_run.result.predictions):
        assert a.probs == pytest.approx(b.probs, abs=1e-6)


def test_the_saved_model_reloads_and_predicts_the_same(quick_run, sms):
    model_dir = quick_run.out / "model"
    assert (model_dir / "config.json").is_file() and (model_dir / "tokenizer.json").is_file()
    reloaded = predict(model_dir, sms.eval, device="cpu")
    assert [p.id for p in reloaded] == [ex.id for ex in sms.eval]
    assert [p.prediction for p in reloaded] == [p.prediction for p in quick_run.result.predictions]
    for a, b in zip(reloaded, quick_run.result.predictions):
        assert a.probs == pytest.approx(b.probs, abs=1e-5)


def test_a_label_outside_the_task_is_an_error_not_a_new_class(sms, sms_task):
    config = TrainConfig.for_task(sms_task, progress=False)
    odd = Example(id="odd-1", text="Call me maybe", label="maybe")
    with pytest.raises(ValueError, match=r"training data: example 'odd-1' has label 'maybe', which is not one of"):
        train_classifier(config, sms.train + [odd], sms.eval)
    with pytest.raises(ValueError, match=r"eval data: example 'odd-1' has label 'maybe'"):
        train_classifier(config, sms.train, sms.eval + [odd])


def test_duplicate_eval_ids_are_refused(sms, sms_task):
    config = TrainConfig.for_task(sms_task, progress=False)
    with pytest.raises(ValueError, match="duplicate example id"):
        train_classifier(config, sms.train, sms.eval + sms.eval[:1])
