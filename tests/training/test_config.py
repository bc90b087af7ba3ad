"""`TrainConfig` as typed settings: unknown keys refused, values checked by type and bound, every
bad key named, paths kept as text so `to_dict()` stays JSON-safe."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from subjlab.typed_settings import SettingsError, settings_from_mapping
from training.config import TrainConfig

BASE = {"task": "sms_spam", "labels": ("ham", "spam")}


def test_unknown_keys_are_refused_by_name():
    with pytest.raises(SettingsError) as info:
        TrainConfig(**BASE, warmup=0.1)
    assert info.value.problems == [("warmup", "not a setting of TrainConfig")]


def test_every_bad_value_is_named_with_its_bound():
    with pytest.raises(SettingsError) as info:
        TrainConfig(**BASE, batch_size=0, warmup_ratio=1.0, max_length="long")
    assert info.value.problems == [
        ("batch_size", "must be >= 1, got 0"),
        ("warmup_ratio", "must be < 1.0, got 1.0"),
        ("max_length", "input should be a valid integer, unable to parse string as an integer, got 'long'"),
    ]


def test_an_out_dir_path_is_kept_as_text_and_the_dict_is_json_safe(tmp_path):
    config = TrainConfig(task="sms_spam", labels=["ham", "spam"], out_dir=tmp_path / "run")
    assert config.out_dir == str(tmp_path / "run") and config.labels == ("ham", "spam")
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()
    assert [f.name for f in dataclasses.fields(TrainConfig)][:3] == ["task", "labels", "model"]  # still a dataclass


def test_settings_from_a_file_name_the_file_and_the_key_path():
    with pytest.raises(SettingsError, match=r"^study.toml: training.options.patience: must be >= 1, got 0$"):
        settings_from_mapping(TrainConfig, {"patience": 0}, Path("study.toml"), "training.options", **BASE)
