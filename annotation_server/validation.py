"""Checks for values that arrive from the outside (JSON bodies, CLI options), raising ApiError(400/422).

Identifiers (study names, worker ids, item ids, task keys) are restricted to a safe alphabet, so quotes,
semicolons, comment markers, spaces and control characters are refused with a 400 naming the field.
Free texts (item texts, descriptions, examples) are kept verbatim: they are data, stored with bound
parameters and escaped by the pages.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from annotation_server.errors import ApiError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_IDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/+-]*$")


def is_study_name(value: str) -> bool:
    """Return True when `value` has the shape of a study name."""
    return bool(_NAME_RE.fullmatch(value))


_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def storable_strings(value: Any, field: str = "body") -> None:
    """Refuse (400, naming the field) any string, key or value, anywhere in a parsed JSON document that
    holds a NUL character or a lone surrogate (JSON's "\\ud800"): neither can be stored as text by
    PostgreSQL or encoded as UTF-8, so they are bad input wherever they appear."""
    stack = [(value, field)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE_RE.search(item):
                raise ApiError(400, f"{where} contains a NUL character or a lone surrogate (not valid text)", where[:100])
        elif isinstance(item, dict):
            for key, sub in item.items():
                if _UNSTORABLE_RE.search(key):
                    raise ApiError(400, f"a key in {where} contains a NUL character or a lone surrogate", where[:100])
                stack.append((sub, f"{where}.{key}" if where != "body" else key))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))


def is_data_name(value: Any) -> bool:
    """Whether `value` names a dataset folder inside the data directory: one path component, no `..`."""
    return isinstance(value, str) and bool(_NAME_RE.fullmatch(value)) and set(value) != {"."}


def study_name(value: Any, field: str = "name") -> str:
    """Return a valid study name (letters, digits, `_ . -`, at most 64, starting alphanumeric)."""
    if not isinstance(value, str):
        raise ApiError(400, f"{field} must be a string, got {_type(value)}", field)
    if not _NAME_RE.fullmatch(value):
        raise ApiError(400, f"{field} {value[:80]!r} is not a valid study name: use letters, digits, '_', '.', '-' (at most 64, starting with a letter or digit)", field)
    return value


def identifier(value: Any, field: str, max_len: int = 128) -> str:
    """Return a valid identifier (letters, digits and `_ . : @ / + -`, starting alphanumeric, up to max_len)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ApiError(400, f"{field} must be a string, got {_type(value)}", field)
    if not value or len(value) > max_len or not _IDENT_RE.fullmatch(value):
        raise ApiError(
            400,
            f"{field} {value[:80]!r} is not a valid identifier: 1-{max_len} characters of letters, digits and "
            "'_ . : @ / + -', starting with a letter or digit",
            field,
        )
    return value


def text(value: Any, field: str, max_len: int = 100_000, allow_empty: bool = False) -> str:
    """Return a free text (kept verbatim); refuse non-strings, empty (unless allowed), too long, NUL bytes."""
    if not isinstance(value, str):
        raise ApiError(400, f"{field} must be a string, got {_type(value)}", field)
    if not allow_empty and not value.strip():
        raise ApiError(400, f"{field} must not be empty", field)
    if len(value) > max_len:
        raise ApiError(400, f"{field} is too long ({len(value)} characters, limit {max_len})", field)
    if "\x00" in value:
        raise ApiError(400, f"{field} must not contain NUL characters", field)
    return value


def positive_int(value: Any, field: str, maximum: int = 1_000_000, allow_none: bool = False) -> int | None:
    """Return a positive int (bool refused); None when allowed and given."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{field} must be a positive integer, got {_type(value)}", field)
    if not 1 <= value <= maximum:
        raise ApiError(400, f"{field} must be between 1 and {maximum}, got {value}", field)
    return value


def choice(value: Any, field: str, options: tuple[str, ...]) -> str:
    """Return `value` if it is one of `options`; 400 otherwise."""
    if not isinstance(value, str) or value not in options:
        raise ApiError(400, f"{field} must be one of {list(options)}, got {value!r}"[:300], field)
    return value


def obj(value: Any, field: str = "body") -> Mapping[str, Any]:
    """Return `value` if it is a JSON object; 400 otherwise."""
    if not isinstance(value, Mapping):
        raise ApiError(400, f"{field} must be a JSON object, got {_type(value)}", field)
    return value


def array(value: Any, field: str, max_len: int = 100_000) -> list[Any]:
    """Return `value` if it is a non-empty JSON array of at most max_len entries; 400 otherwise."""
    if not isinstance(value, list):
        raise ApiError(400, f"{field} must be a JSON array, got {_type(value)}", field)
    if not value:
        raise ApiError(400, f"{field} must not be empty", field)
    if len(value) > max_len:
        raise ApiError(400, f"{field} has {len(value)} entries, limit {max_len}", field)
    return value


def no_unknown_keys(body: Mapping[str, Any], allowed: set[str], where: str = "body") -> None:
    """Raise 400 naming the first key of `body` outside `allowed`."""
    unknown = sorted(k for k in body if k not in allowed)
    if unknown:
        raise ApiError(400, f"unknown field(s) in {where}: {unknown[:5]}; allowed: {sorted(allowed)}", str(unknown[0])[:100])


def _type(value: Any) -> str:
    return "null" if value is None else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)
