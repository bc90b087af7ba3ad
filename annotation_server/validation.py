"""Checking values that arrive from the outside (JSON bodies, links, CLI options) against the API's pydantic
models (`api_models`), with pydantic's errors turned into the API's error reply: ApiError 400 naming the
field (`examples[3].id`) with a message for people.

Identifiers (study names, worker ids, item ids, task keys) are restricted to a safe alphabet, so quotes,
semicolons, comment markers, spaces and control characters are refused. Free texts (item texts,
descriptions, examples) are kept verbatim: they are data, stored with bound parameters and escaped by the
pages. A NUL character or a lone surrogate is refused anywhere in a JSON body (`storable_strings`).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from annotation_server import api_models as m
from annotation_server.errors import ApiError

T = TypeVar("T")

# Compiled once: `is_study_name` is on the worker hot path, where a regex match costs less than pydantic's
# validate-and-raise (the pattern is the one the models use).
_NAME_RE = re.compile(m.STUDY_NAME_PATTERN)
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def is_study_name(value: str) -> bool:
    """Return True when `value` has the shape of a study name."""
    return bool(_NAME_RE.fullmatch(value))


def is_data_name(value: Any) -> bool:
    """Whether `value` names a dataset folder inside the data directory: one path component, no `..`."""
    return isinstance(value, str) and bool(_NAME_RE.fullmatch(value))


def storable_strings(value: Any, field: str = "body") -> None:
    """Refuse (400, naming the field) any string, key or value, anywhere in a parsed JSON document that
    holds a NUL character or a lone surrogate (JSON's "\\ud800"): neither can be stored as text by
    PostgreSQL or encoded as UTF-8, so they are bad input wherever they appear (extra fields included)."""
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


def validate(schema: type[T] | Any, value: Any, where: str = "body") -> T:
    """Return `value` validated by `schema` (a pydantic model or an annotated type of `api_models`);
    ApiError 400 naming the first offending field (under `where`) otherwise."""
    try:
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return schema.model_validate(value)
        return _adapter(schema).validate_python(value)
    except ValidationError as exc:
        raise api_error(exc, schema, where) from None


def study_name(value: Any, field: str = "name") -> str:
    """Return a valid study name (letters, digits, `_ . -`, at most 64, starting alphanumeric)."""
    return validate(m.StudyName, value, field)


def identifier(value: Any, field: str, max_len: int = 128) -> str:
    """Return a valid identifier (letters, digits and `_ . : @ / + -`, starting alphanumeric, up to max_len);
    an integer is taken as its digits."""
    return validate(m.identifier(max_len), value, field)


_ADAPTERS: dict[int, tuple[Any, TypeAdapter]] = {}


def _adapter(schema: Any) -> TypeAdapter:
    """The TypeAdapter of a type of `api_models`, made once. Keyed by identity: hashing an Annotated type
    costs more than validating a short string (the types are module constants or cached by `m.identifier`)."""
    found = _ADAPTERS.get(id(schema))
    if found is None:
        found = _ADAPTERS[id(schema)] = (schema, TypeAdapter(schema))  # holds `schema`, so its id stays its own
    return found[1]


_JSON_SCHEMAS: dict[int, tuple[Any, dict[str, Any]]] = {}


def _json_schema(schema: Any) -> dict[str, Any]:
    """The JSON Schema of `schema`, made once (on the first error it explains)."""
    found = _JSON_SCHEMAS.get(id(schema))
    if found is None:
        made = schema.model_json_schema() if isinstance(schema, type) and issubclass(schema, BaseModel) \
            else _adapter(schema).json_schema()
        found = _JSON_SCHEMAS[id(schema)] = (schema, made)
    return found[1]


# ------------------------------------------------------------------------- pydantic errors -> ApiError
#: The union branches (tag -> schema title) that appear in pydantic's error locations: not fields.
_TAGS = {"task key": None, "task spec": "TaskSpecBody", "label check": "LabelCheck", "pair check": "PairCheck"}

_PATTERN_TEXT = {
    m.STUDY_NAME_PATTERN: "is not a valid study name: use letters, digits, '_', '.', '-' (at most 64, starting with "
                          "a letter or digit)",
    m.IDENTIFIER_PATTERN: "is not a valid identifier: {max_len} characters of letters, digits and '_ . : @ / + -', "
                          "starting with a letter or digit",
    m.DATA_NAME_PATTERN: "must be the name of a dataset folder (letters, digits, '_ . -'), not a path",
    m.NOT_BLANK_PATTERN: "must not be empty",
}


def api_error(exc: ValidationError, schema: Any, where: str = "body") -> ApiError:
    """The ApiError (400) for the first error pydantic found validating against `schema`: the field's path and
    a message saying what the field must be (unknown fields are listed together, as the allowed ones)."""
    errors = exc.errors(include_url=False)
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    error = unknown[0] if unknown else errors[0]
    field = _path(where, error["loc"])
    node = _schema_at(_json_schema(schema), error["loc"])
    if unknown:
        parent = error["loc"][:-1]
        names = sorted(str(e["loc"][-1]) for e in unknown if e["loc"][:-1] == parent)
        allowed = sorted(_prop(_schema_at(_json_schema(schema), parent), "properties", {}))
        return ApiError(400, f"unknown field(s) in {_path(where, parent)}: {names[:5]}; allowed: {allowed}", names[0][:100])
    return ApiError(400, _message(error, field, node)[:300], field[:100])


def _message(error: dict[str, Any], field: str, node: dict[str, Any]) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    got = _type(value)
    if kind == "missing":
        expects = _expects(node)
        return f"{field} is required" + (f" and {expects}" if expects else "")
    if kind in ("string_type", "int_type", "bool_type", "list_type", "model_type", "dict_type", "model_attributes_type"):
        return f"{field} {_expects(node) or 'has the wrong type'}, got {got}"
    if kind in ("string_pattern_mismatch",):
        text = _PATTERN_TEXT.get(ctx.get("pattern"), "has the wrong form")
        shown = f" {value[:80]!r}" if ctx.get("pattern") in (m.STUDY_NAME_PATTERN, m.IDENTIFIER_PATTERN) else ""
        return f"{field}{shown} " + text.format(max_len=f"1-{_prop(node, 'maxLength')}")
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"{field} must be between {_prop(node, 'minimum')} and {_prop(node, 'maximum')}, got {value}"
    if kind == "string_too_long":
        return f"{field} is too long ({len(value)} characters, limit {ctx.get('max_length')})"
    if kind == "string_too_short":
        if _prop(node, "pattern") == m.IDENTIFIER_PATTERN:
            return f"{field} '' " + _PATTERN_TEXT[m.IDENTIFIER_PATTERN].format(max_len=f"1-{_prop(node, 'maxLength')}")
        return f"{field} must not be empty"
    if kind == "too_short":
        return f"{field} must not be empty" if ctx.get("min_length") == 1 else \
            f"{field} needs at least {ctx.get('min_length')} entries, got {ctx.get('actual_length')}"
    if kind == "too_long":
        return f"{field} has {ctx.get('actual_length')} entries, limit {ctx.get('max_length')}"
    if kind in ("literal_error", "enum"):
        return f"{field} must be one of {_prop(node, 'enum')}, got {value!r}"
    if kind == "task_ref":
        return f"{field} must be a registry key (string) or a task spec (object)"
    if kind in ("int_from_float", "finite_number"):
        return f"{field} must be a whole number, got {value!r}"
    return f"{field}: {error['msg']}" if field != "body" else error["msg"]


def _prop(node: dict[str, Any], key: str, default: Any = None) -> Any:
    """A keyword of a JSON Schema node, or of the first of its alternatives (anyOf/oneOf) that has it."""
    for option in [node] + node.get("anyOf", []) + node.get("oneOf", []):
        if key in option:
            return option[key]
    return default


def _expects(node: dict[str, Any]) -> str:
    """What a JSON Schema node asks for, in words ("must be a string")."""
    if _prop(node, "enum"):
        return f"must be one of {_prop(node, 'enum')}"
    types = [node.get("type")] + [alt.get("type") for alt in node.get("anyOf", []) + node.get("oneOf", [])]
    if "string" in types and "integer" in types:
        return "must be a string"
    if "string" in types:
        return "must be a non-empty string" if node.get("minLength") == 1 and "pattern" not in node else "must be a string"
    if "integer" in types:
        return "must be a positive integer" if (_prop(node, "minimum") or 0) >= 1 else "must be an integer"
    if "boolean" in types:
        return "must be true or false"
    if "array" in types:
        return "must be a JSON array"
    if "object" in types or "properties" in node:
        return "must be a JSON object"
    return ""


def _schema_at(root: dict[str, Any], loc: tuple) -> dict[str, Any]:
    """The JSON Schema node of `root` at a pydantic error location (refs followed; {} where unknown)."""
    defs = root.get("$defs", {})

    def deref(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = {**defs[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
        alternatives = [deref(alt) for alt in node.get("anyOf", []) if alt.get("type") != "null"]
        if len(alternatives) == 1 and "type" not in node:  # Optional[X] is X here
            return alternatives[0]
        return {**node, "oneOf": [deref(alt) for alt in node["oneOf"]]} if "oneOf" in node else node

    node = deref(root)
    for part in loc:
        if isinstance(part, int):
            node = deref(node.get("items", {}))
        elif part in _TAGS:
            node = next((alt for alt in node.get("oneOf", []) if alt.get("title") == _TAGS[part]), node)
        else:
            node = deref(_prop(node, "properties", {}).get(part, {}))
    return node


def _path(where: str, loc: tuple) -> str:
    out = where
    for part in loc:
        if part in _TAGS:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = str(part) if out == "body" else f"{out}.{part}"
    return out


def _type(value: Any) -> str:
    return "null" if value is None else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)
