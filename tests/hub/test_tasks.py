"""The task registry matches the real data, and user task files are validated with clear errors."""

from __future__ import annotations

import json

import pytest

from subjlab.data import count_split, load_split
from subjlab.tasks import REGISTRY, TaskSpecError, get_task, load_task_file

PAPER_KEYS = ["ag_news", "imdb", "sms_spam", "financial_phrasebank", "reddit_emotion", "fewrel",
              "tweet_irony", "tweet_emotion", "sarcasm_news", "humor"]


def test_registry_holds_the_ten_paper_tasks():
    assert sorted(REGISTRY) == sorted(PAPER_KEYS)


@pytest.mark.parametrize("key", PAPER_KEYS)
def test_every_registry_label_occurs_in_both_real_splits(key, shared_data):
    spec = REGISTRY[key]
    for split in ("train", "test"):
        counts = count_split(spec, split, shared_data)
        assert counts.total > 0
        assert all(counts.per_label[lab] > 0 for lab in spec.labels), (split, counts.per_label)


def test_reddit_emotion_maps_to_ekman_six_and_drops_neutral(shared_data):
    spec = REGISTRY["reddit_emotion"]
    examples = load_split(spec, "test", shared_data)
    labels = {ex.label for ex in examples}
    assert labels == set(spec.labels)
    raw_total = sum(1 for _ in open(shared_data / "reddit_emotion" / "test.jsonl"))
    neutral = sum(1 for line in open(shared_data / "reddit_emotion" / "test.jsonl")
                  if json.loads(line)["ekman_label"] == "neutral")
    assert len(examples) == raw_total - neutral
    caring = [ex for ex in examples if ex.extra.get("raw_label") == "caring"]
    assert caring and all(ex.label == "joy" for ex in caring)  # GoEmotions label kept as raw_label


def test_examples_without_id_get_stable_task_split_line_ids(shared_data):
    a = load_split(REGISTRY["sms_spam"], "train", shared_data)
    b = load_split(REGISTRY["sms_spam"], "train", shared_data)
    assert [e.id for e in a] == [e.id for e in b]
    assert a[0].id == "sms_spam:train:1"
    assert len({e.id for e in a}) == len(a)


def test_limit_per_label_samples_at_most_n_per_label(shared_data):
    ex = load_split(REGISTRY["ag_news"], "train", shared_data, limit_per_label=7, seed=3)
    assert len(ex) == 28
    assert ex == load_split(REGISTRY["ag_news"], "train", shared_data, limit_per_label=7, seed=3)


GOOD_TOML = """
name = "toxicity"
title = "Toxic comments"
description = "Decide whether a comment is toxic."
labels = ["ok", "toxic"]
context = "You are a forum user."
style = "a forum comment"
word_limit = 30
[label_descriptions]
ok = "a civil comment"
toxic = "an insulting or hateful comment"
"""


def test_user_task_loads_from_toml_and_yaml(tmp_path):
    p = tmp_path / "task.toml"
    p.write_text(GOOD_TOML)
    spec = get_task(str(p))
    assert spec.labels == ("ok", "toxic") and spec.data_name == "toxicity"
    y = tmp_path / "task.yaml"
    y.write_text(json.dumps(spec.to_dict()))  # JSON is valid YAML
    assert load_task_file(y)[0] == spec


@pytest.mark.parametrize(
    "mutation, field",
    [
        (lambda s: s.replace('labels = ["ok", "toxic"]', 'labels = ["ok"]'), "labels"),
        (lambda s: s.replace("word_limit = 30", "word_limit = -1"), "word_limit"),
        (lambda s: s.replace('toxic = "an insulting or hateful comment"\n', ""), "label_descriptions"),
        (lambda s: s.replace('context = "You are a forum user."\n', ""), "context"),
    ],
)
def test_bad_task_file_error_names_file_and_field(tmp_path, mutation, field):
    p = tmp_path / "bad.toml"
    p.write_text(mutation(GOOD_TOML))
    with pytest.raises(TaskSpecError) as err:
        load_task_file(p)
    assert str(p) in str(err.value) and f"'{field}'" in str(err.value)


def test_unknown_task_name_lists_known_tasks():
    with pytest.raises(TaskSpecError, match="ag_news"):
        get_task("no_such_task")
