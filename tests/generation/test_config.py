"""`GenerationConfig`: validation and `to_dict`, the settings a run's summary records and the study
runner keys its generation step on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from generation.config import GenerationConfig, task_digest
from subjlab.tasks import REGISTRY, get_task
from subjlab.typed_settings import SettingsError, settings_from_mapping


def _task_file(path, **changes):
    spec = {**REGISTRY["sms_spam"].to_dict(), "name": "my_spam", **changes}
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path


def test_to_dict_is_json_ready_and_the_same_for_the_same_settings():
    a = GenerationConfig(task="sms_spam", per_label=5, api_key="sk-secret", labels=("spam",)).to_dict()
    b = GenerationConfig(task="sms_spam", per_label=5, api_key="sk-other", labels=("spam",)).to_dict()
    assert a == b and json.loads(json.dumps(a)) == a
    assert a["task"] == "sms_spam" and a["api_key"] is None and a["labels"] == ["spam"]
    assert a["task_digest"] == task_digest(REGISTRY["sms_spam"]) and len(a["task_digest"]) == 16
    assert a["stall_turns"] == 2


def test_a_changed_task_file_changes_the_dict_under_the_same_name(tmp_path):
    path = _task_file(tmp_path / "my_spam.yaml")
    before = GenerationConfig(task=str(path)).to_dict()
    assert before == GenerationConfig(task=get_task(str(path))).to_dict()  # loading again: the same dict
    _task_file(path, context="You are a phone user who writes very short messages.")
    after = GenerationConfig(task=str(path)).to_dict()
    assert before["task"] == after["task"] == "my_spam"
    assert before["task_digest"] != after["task_digest"]
    assert {k for k in before if before[k] != after[k]} == {"task_digest"}


def test_a_task_file_copying_a_registry_task_has_the_registry_digest_only_when_identical(tmp_path):
    same = GenerationConfig(task=str(_task_file(tmp_path / "a.yaml", name="sms_spam"))).to_dict()
    assert same["task_digest"] == GenerationConfig(task="sms_spam").to_dict()["task_digest"]
    other = GenerationConfig(task=str(_task_file(tmp_path / "b.yaml", name="sms_spam", word_limit=12))).to_dict()
    assert other["task_digest"] != same["task_digest"]


@pytest.mark.parametrize("field, value", [("stall_turns", -1), ("per_label", 0), ("concurrency", 0), ("mode", "two-shot")])
def test_bad_settings_are_refused_with_the_field_named(field, value):
    with pytest.raises(ValueError, match=field):
        GenerationConfig(task="sms_spam", **{field: value})


def test_unknown_keys_are_refused_by_name_and_nothing_is_built():
    with pytest.raises(SettingsError) as info:
        GenerationConfig(task="sms_spam", temprature=0.2)
    assert info.value.problems == [("temprature", "not a setting of GenerationConfig")]
    assert str(info.value) == "temprature: not a setting of GenerationConfig"


def test_values_are_checked_against_their_types_and_every_bad_key_is_named():
    with pytest.raises(SettingsError) as info:
        GenerationConfig(task="sms_spam", temperature="hot", per_label=0, top_p=1.5)
    keys = [key for key, _ in info.value.problems]
    assert keys == ["per_label", "temperature", "top_p"]
    assert "per_label: must be >= 1, got 0" in str(info.value) and "top_p: must be <= 1.0, got 1.5" in str(info.value)


def test_values_that_only_need_converting_are_converted_and_paths_kept():
    config = GenerationConfig(task="sms_spam", labels=["spam"], per_label="3", cache_path=Path("/tmp/c.sqlite"))
    assert config.labels == ("spam",) and config.per_label == 3 and config.cache_path == Path("/tmp/c.sqlite")
    assert config.to_dict()["cache_path"] == "/tmp/c.sqlite"


def test_settings_read_from_a_file_name_the_file_and_the_key_path(tmp_path):
    source = tmp_path / "study.toml"
    with pytest.raises(SettingsError) as info:
        settings_from_mapping(GenerationConfig, {"max_turns": 0}, source, "generation.options", task="sms_spam")
    assert str(info.value) == f"{source}: generation.options.max_turns: must be >= 1, got 0"
    built = settings_from_mapping(GenerationConfig, {"max_turns": 3}, source, "generation.options", task="sms_spam")
    assert built == GenerationConfig(task="sms_spam", max_turns=3)
