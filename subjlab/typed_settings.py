"""Typed settings on pydantic: `settings_dataclass` and `SettingsError`.

`@settings_dataclass` makes a pydantic dataclass of a settings class: values are validated and
converted by their annotations and `Field` constraints, unknown keys are refused, and every
problem is raised as one `SettingsError` (a ValueError) whose message names each bad key by its
path: `per_label: must be >= 1, got 0`. It stays a dataclass (`dataclasses.fields`, `asdict`,
the same keyword constructor), so callers that build or inspect settings need not change.

A settings table read from a file is checked with `settings_from_mapping(cls, table, source,
prefix)`: its errors name the file and the key's full path in it,
`study.toml: generation.options.temperature: must be >= 0, got -1`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

T = TypeVar("T")

#: pydantic's error types worded as the rest of subjlab words them.
_WORDING = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "unexpected_keyword_argument": "not a setting of {owner}",
    "missing_argument": "is required",
    "missing": "is required",
}


class SettingsError(ValueError):
    """Bad settings: `problems` is a list of (key path, what is wrong); `source` the file, if any."""

    def __init__(self, problems: list[tuple[str, str]], source: str | Path | None = None):
        self.problems = problems
        self.source = None if source is None else Path(source)
        lines = [f"{key}: {why}" if key else why for key, why in problems]
        text = "; ".join(lines)
        super().__init__(f"{self.source}: {text}" if self.source is not None else text)

    def in_file(self, source: str | Path, prefix: str = "") -> "SettingsError":
        """The same problems, named by their path in `source` under the table `prefix`."""
        return SettingsError([(_join(prefix, key), why) for key, why in self.problems], source)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix and key else prefix or key


def _key_path(loc: tuple[Any, ...]) -> str:
    """A pydantic location as a key path: the field, then list positions ("labels[1]"); the tags
    a union adds for its alternatives ("str", "is-instance[...]") are left out."""
    if not loc:
        return ""
    return str(loc[0]) + "".join(f"[{part}]" for part in loc[1:] if isinstance(part, int))


def _problems(error: Mapping[str, Any], owner: str) -> list[tuple[str, str]]:
    kind = error.get("type", "")
    ctx = dict(error.get("ctx") or {})
    if kind == "value_error":  # raised by the class's own checks
        cause = ctx.get("error")
        if isinstance(cause, SettingsError):
            return list(cause.problems)
        return [(_key_path(tuple(error.get("loc", ()))), str(cause) if cause is not None else str(error.get("msg")))]
    template = _WORDING.get(kind)
    why = template.format(owner=owner, **ctx) if template else str(error.get("msg", kind))
    why = why[:1].lower() + why[1:]
    if kind not in ("unexpected_keyword_argument", "missing_argument", "missing"):
        why += f", got {error.get('input')!r}"
    return [(_key_path(tuple(error.get("loc", ()))), why)]


def settings_error(exc: ValidationError, owner: str) -> SettingsError:
    """A pydantic ValidationError as a SettingsError (the first problem of each key, in order)."""
    seen: dict[str, str] = {}
    for error in exc.errors():
        for key, why in _problems(error, owner):
            seen.setdefault(key, why)
    return SettingsError(list(seen.items()))


def settings_dataclass(cls: type[T]) -> type[T]:
    """Make `cls` a pydantic dataclass that refuses unknown keys and raises `SettingsError`."""
    model = pydantic_dataclass(cls, config=ConfigDict(extra="forbid"))
    validating_init = model.__init__

    @functools.wraps(validating_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            validating_init(self, *args, **kwargs)
        except ValidationError as exc:
            raise settings_error(exc, model.__name__) from None

    model.__init__ = __init__  # type: ignore[method-assign]
    return model


def settings_from_mapping(cls: type[T], table: Mapping[str, Any], source: str | Path, prefix: str = "",
                          **fixed: Any) -> T:
    """Build `cls` from a table read from `source` (plus `fixed` settings the caller owns); errors
    name the file and each key's path under `prefix`."""
    try:
        return cls(**{**dict(table), **fixed})
    except SettingsError as exc:
        raise exc.in_file(source, prefix) from None
