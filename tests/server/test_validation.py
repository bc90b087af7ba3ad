"""Request checks through the API's pydantic models: what is refused, and errors that name the field and say
what it must be (`annotation_server.validation` over `annotation_server.api_models`)."""

from __future__ import annotations

import pytest

from annotation_server import api_models as m
from annotation_server.errors import ApiError
from annotation_server.validation import identifier, is_data_name, is_study_name, study_name, validate

SPEC = {"name": "mine", "title": "T", "description": "d", "labels": ["a", "b"], "label_descriptions": {},
        "context": "c", "style": "s"}


def _refused(schema, value) -> ApiError:
    with pytest.raises(ApiError) as caught:
        validate(schema, value)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize("schema, body, field, words", [
    (m.ItemsAdd, {"examples": [{"id": "a", "text": "t"}, {"id": "b c", "text": "t"}]}, "examples[1].id",
     "'b c' is not a valid identifier: 1-200 characters"),
    (m.ItemsAdd, {"examples": [{"id": "a"}]}, "examples[0].text", "is required and must be a string"),
    (m.ItemsAdd, {"examples": [{"id": "a", "text": "  "}]}, "examples[0].text", "must not be empty"),
    (m.ItemsAdd, {"gold": [{"left": "a", "right": "b"}]}, "gold[0].answer", "is required and must be a string"),
    (m.ItemsAdd, {"tasks": [dict(SPEC, data_name="../x")]}, "tasks[0].data_name", "not a path"),
    (m.ItemsAdd, {"tasks": [5]}, "tasks[0]", "must be a registry key (string) or a task spec (object)"),
    (m.ItemsAdd, {"tasks": []}, "tasks", "must not be empty"),
    (m.ItemsAdd, {}, "body", "give 'tasks' (pairwise), 'examples' (labeling) and/or 'gold'"),
    (m.StudyCreate, {"name": "s", "kind": "labeling", "task": {"name": "x", "title": "t"}}, "task.description",
     "is required and must be a string"),
    (m.StudyCreate, {"name": "s"}, "kind", "kind is required and must be one of ['pairwise', 'labeling']"),
    (m.StudyCreate, {"name": "s", "kind": "survey"}, "kind", "must be one of ['pairwise', 'labeling'], got 'survey'"),
    (m.StudyCreate, {"name": "s", "kind": "pairwise", "gold_every": 1}, "gold_every", "between 2 and 1000, got 1"),
    (m.StudyCreate, {"name": "s", "kind": "pairwise", "title": "x" * 201}, "title", "too long (201 characters, limit 200)"),
    (m.StudyCreate, {"name": "a b", "kind": "pairwise"}, "name", "'a b' is not a valid study name"),
    (m.SessionCreate, {"worker_id": -5}, "worker_id", "'-5' is not a valid identifier"),
    (m.SessionCreate, {"worker_id": "w", "signature": 5}, "signature", "must be a string, got int"),
    (m.Answer, {"label": ""}, "label", "must not be empty"),
    (m.Answer, {"label": 1}, "label", "must be a non-empty string, got int"),
    (m.Answer, {}, "body", "send exactly one of 'winner' (pairwise) or 'label' (labeling)"),
    (m.Answer, ["ham"], "body", "must be a JSON object, got array"),
])
def test_errors_name_the_offending_field_and_say_what_it_must_be(schema, body, field, words):
    error = _refused(schema, body)
    assert error.field == field and words in error.message, (error.field, error.message)


def test_unknown_fields_are_listed_with_the_allowed_ones_at_their_own_level():
    error = _refused(m.ItemsAdd, {"gold": [{"left": "a", "right": "b", "answer": "a", "size": 1, "colour": 2}]})
    assert error.field == "colour"
    assert error.message == ("unknown field(s) in gold[0]: ['colour', 'size']; "
                             "allowed: ['answer', 'id', 'left', 'right']")
    error = _refused(m.StudyCreate, {"name": "s", "kind": "pairwise", "colour": "red"})
    assert error.message.startswith("unknown field(s) in body: ['colour']; allowed: ['examples_per_task', 'gold_every',")


@pytest.mark.parametrize("value", ["4", True, 1.0, None])
def test_counts_take_json_integers_only(value):
    body = {"name": "s", "kind": "pairwise", "judgments_per_pair": value}
    if value is None:  # null is "not given": the default applies
        assert validate(m.StudyCreate, body).judgments_per_pair is None
        return
    error = _refused(m.StudyCreate, body)
    assert error.field == "judgments_per_pair" and "must be a positive integer" in error.message


def test_integers_where_identifiers_go_are_taken_as_their_digits():
    assert validate(m.SessionCreate, {"worker_id": 2**70}).worker_id == str(2**70)
    items = validate(m.ItemsAdd, {"examples": [{"id": 7, "text": "t", "note": {"kept": True}}]})
    assert items.examples[0].id == "7" and items.examples[0].model_extra == {"note": {"kept": True}}
    assert identifier(12, "x") == "12"
    with pytest.raises(ApiError, match="must be a string, got boolean"):
        identifier(True, "x")


def test_gold_checks_are_told_apart_by_their_fields():
    items = validate(m.ItemsAdd, {"gold": [{"id": "g", "text": "t", "answer": "ham"},
                                           {"left": "a", "right": "b", "answer": "b"}]})
    assert [type(c) for c in items.gold] == [m.LabelCheck, m.PairCheck]
    assert validate(m.GoldCheck, items.gold[1], "gold[1]") is items.gold[1]  # a checked one passes as it is


def test_the_helpers_the_cli_uses_refuse_like_the_api():
    assert study_name("ok-1") == "ok-1" and is_study_name("ok-1") and not is_study_name("-x")
    with pytest.raises(ApiError, match="'x y' is not a valid study name"):
        study_name("x y")
    with pytest.raises(ApiError, match=r"example id 'a;b' 'a;b' is not a valid identifier: 1-200 characters"):
        identifier("a;b", "example id 'a;b'", max_len=200)
    assert is_data_name("sms_spam") and not any(is_data_name(x) for x in ("..", ".", "a/b", "/etc", 5))
