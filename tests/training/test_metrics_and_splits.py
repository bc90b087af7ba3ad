"""Metrics over a fixed label order, the validation split, label checks and config validation."""

from __future__ import annotations

from collections import Counter

import pytest

from subjlab.records import Example
from training import TrainConfig, classification_metrics
from training.examples import read_labeled_file, split_validation


def test_metrics_count_every_label_in_macro_f1_and_order_the_confusion_matrix():
    m = classification_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"], labels=["b", "a", "c"])
    assert m.accuracy == pytest.approx(0.75)
    assert m.confusion == [[2, 0, 0], [1, 1, 0], [0, 0, 0]]  # rows gold, columns predicted, labels order
    assert m.per_class["a"].precision == 1.0 and m.per_class["a"].recall == 0.5
    assert m.per_class["b"].f1 == pytest.approx(0.8)
    assert m.per_class["c"].support == 0
    assert m.macro_f1 == pytest.approx((0.8 + 2 / 3 + 0.0) / 3)  # the absent label "c" counts as 0


def test_metrics_refuse_unknown_labels_and_empty_input():
    with pytest.raises(ValueError, match=r"predicted labels \['x'\] are not in the label set"):
        classification_metrics(["a"], ["x"], labels=["a", "b"])
    with pytest.raises(ValueError, match="no examples"):
        classification_metrics([], [], labels=["a", "b"])


def test_validation_split_is_stratified_and_repeatable(sms):
    train, val = split_validation(sms.train, 0.2, seed=3)
    assert len(train) == 32 and len(val) == 8
    assert Counter(ex.label for ex in val) == {"ham": 4, "spam": 4}
    assert {ex.id for ex in train}.isdisjoint(ex.id for ex in val)
    again = split_validation(sms.train, 0.2, seed=3)
    assert [ex.id for ex in again[1]] == [ex.id for ex in val]
    other = split_validation(sms.train, 0.2, seed=4)
    assert [ex.id for ex in other[1]] != [ex.id for ex in val]
    assert split_validation(sms.train, 0.0, seed=3) == (sms.train, [])


def test_validation_split_too_small_says_what_to_do():
    tiny = [Example(id="1", text="hi", label="ham"), Example(id="2", text="hey", label="ham"),
            Example(id="3", text="WIN", label="spam")]
    with pytest.raises(ValueError, match=r"cannot hold out .*per label: \{'ham': 2, 'spam': 1\}.*validation fraction to 0"):
        split_validation(tiny, 0.3, seed=0)


def test_reading_a_file_with_a_foreign_label_names_file_line_and_example(tmp_path):
    path = tmp_path / "gen.jsonl"
    path.write_text('{"id": "g1", "text": "See you at 5", "label": "ham"}\n\n'
                    '{"id": "g2", "text": "Free prize!!", "label": "scam"}\n')
    with pytest.raises(ValueError, match=rf"{path}:3: example 'g2' has label 'scam', which is not one of"):
        read_labeled_file(path, ["ham", "spam"])
    path.write_text('{"id": "g1", "text": "See you at 5"}\n')
    with pytest.raises(ValueError, match=rf"{path}:1: example 'g1' has no label"):
        read_labeled_file(path, ["ham", "spam"])


@pytest.mark.parametrize(
    "setting, message",
    [({"val_fraction": 1.0}, "val_fraction"), ({"lr": 0}, "lr"), ({"labels": ("a",)}, "at least 2 labels"),
     ({"max_steps": 0}, "max_steps"), ({"labels": ("a", "a")}, "duplicate")],
)
def test_config_refuses_impossible_settings(setting, message):
    base = {"task": "t", "labels": ("a", "b")}
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{**base, **setting})
