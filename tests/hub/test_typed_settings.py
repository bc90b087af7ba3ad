"""`subjlab.typed_settings`: pydantic-checked settings dataclasses and errors that name key paths."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import pytest
from pydantic import Field

from subjlab.typed_settings import SettingsError, settings_dataclass, settings_from_mapping


@settings_dataclass
class Sizes:
    name: str
    sizes: tuple[int, ...] = ()
    limit: Annotated[int, Field(ge=0)] = 1

    def __post_init__(self) -> None:
        if self.name == "":
            raise SettingsError([("name", "must not be empty")])


def test_list_positions_are_part_of_the_key_path():
    with pytest.raises(SettingsError) as info:
        Sizes(name="a", sizes=[1, "two"])
    assert info.value.problems[0][0] == "sizes[1]"


def test_own_checks_keep_their_key_and_a_file_prefix_is_added_once(tmp_path):
    with pytest.raises(SettingsError) as info:
        settings_from_mapping(Sizes, {"name": ""}, tmp_path / "x.toml", "table")
    assert info.value.problems == [("table.name", "must not be empty")] and info.value.source == tmp_path / "x.toml"
    assert str(info.value) == f"{tmp_path / 'x.toml'}: table.name: must not be empty"


def test_a_missing_required_key_and_an_unknown_one_are_both_reported():
    with pytest.raises(SettingsError) as info:
        Sizes(limits=2)
    assert dict(info.value.problems) == {"name": "is required", "limits": "not a setting of Sizes"}


def test_it_stays_a_dataclass_with_the_same_constructor():
    s = Sizes("a", [3], limit=0)
    assert dataclasses.asdict(s) == {"name": "a", "sizes": (3,), "limit": 0}
    assert isinstance(SettingsError([]), ValueError)
