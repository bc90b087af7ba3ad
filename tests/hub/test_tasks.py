"""The task registry matches the real data, and user task files are validated with clear errors."""

from __future__ import annotations

import json

import pytest

from subjlab.data import bundled_tasks, count_split, load_split
from subjlab.tasks import EXTRA_TASKS, PAPER_TASKS, REGISTRY, TaskSpecError, get_task, load_task_file

PAPER_KEYS = ["ag_news", "imdb", "sms_spam", "financial_phrasebank", "reddit_emotion", "fewrel",
              "tweet_irony", "tweet_emotion", "sarcasm_news", "humor"]


def test_registry_holds_the_ten_paper_tasks_and_tweet_sarcasm_as_an_extra():
    assert sorted(PAPER_TASKS) == sorted(PAPER_KEYS)
    assert EXTRA_TASKS == ("tweet_sarcasm",)
    assert list(REGISTRY) == PAPER_KEYS + ["tweet_sarcasm"]


def _labels_occur_in_both_splits(spec, data_dir):
    for split in ("train", "test"):
        counts = count_split(spec, split, data_dir)
        assert counts.total > 0
        assert all(counts.per_label[lab] > 0 for lab in spec.labels), (split, counts.per_label)


@pytest.mark.parametrize("key", bundled_tasks())
def test_every_label_of_a_bundled_task_occurs_in_both_bundled_splits(key, task_data):
    _labels_occur_in_both_splits(REGISTRY[key], task_data)


@pytest.mark.devdata
@pytest.mark.parametrize("key", PAPER_KEYS + ["tweet_sarcasm"])
def test_every_registry_label_occurs_in_both_splits_of_the_development_data(key, dev_data):
    _labels_occur_in_both_splits(REGISTRY[key], dev_data)


def test_reddit_emotion_maps_to_ekman_six_and_drops_neutral(task_data):
    spec = REGISTRY["reddit_emotion"]
    examples = load_split(spec, "test", task_data)
    labels = {ex.label for ex in examples}
    assert labels == set(spec.labels)
    raw_total = sum(1 for _ in open(task_data / "reddit_emotion" / "test.jsonl"))
    neutral = sum(1 for line in open(task_data / "reddit_emotion" / "test.jsonl")
                  if json.loads(line)["ekman_label"] == "neutral")
    assert len(examples) == raw_total - neutral
    caring = [ex for ex in examples if ex.extra.get("raw_label") == "caring"]
    assert caring and all(ex.label == "joy" for ex in caring)  # GoEmotions label kept as raw_label


def test_examples_without_id_get_stable_task_split_line_ids(tmp_path, task_data):
    rows = (task_data / "sms_spam" / "train.jsonl").read_text(encoding="utf-8").splitlines()[:5]
    (tmp_path / "sms_spam").mkdir()
    (tmp_path / "sms_spam" / "train.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in json.loads(r).items() if k != "id"}) + "\n" for r in rows), encoding="utf-8")
    a = load_split(REGISTRY["sms_spam"], "train", tmp_path)
    b = load_split(REGISTRY["sms_spam"], "train", tmp_path)
    assert [e.id for e in a] == [e.id for e in b] == [f"sms_spam:train:{i}" for i in range(1, 6)]


def test_limit_per_label_samples_at_most_n_per_label(task_data):
    ex = load_split(REGISTRY["fewrel"], "train", task_data, limit_per_label=7, seed=3)
    assert len(ex) == 28 and {e.label for e in ex} == set(REGISTRY["fewrel"].labels)
    assert ex == load_split(REGISTRY["fewrel"], "train", task_data, limit_per_label=7, seed=3)
    assert ex != load_split(REGISTRY["fewrel"], "train", task_data, limit_per_label=7, seed=4)


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
