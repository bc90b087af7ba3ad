"""One round trip per unit: `POST /assignments/{id}?next=1` records the answer and replies with the
worker's next assignment too (`"next"`: the same JSON as `GET /studies/{name}/next`, or null when nothing
is left), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from annotation_server.app import get_state
from annotation_server.db import session_scope
from annotation_server.models import LabelRecord


def _labeling(api, name="an", k=2, n=3):
    assert api.create_study(name=name, kind="labeling", task="sms_spam", labels_per_item=k).status == 201
    assert api.add_items(name, examples=[{"id": f"i{i}", "text": f"message {i}"} for i in range(n)]).status == 201


def _answer_next(api, assignment, token, **body):
    return api.request("POST", f"/assignments/{assignment}?next=1", token, body)


def test_an_answer_with_next_replies_with_the_answer_and_the_next_leased_assignment(db_app, api_client):
    api = api_client(db_app)
    _labeling(api)
    token = api.session("an", "w1")
    first = api.next("an", token).json
    r = _answer_next(api, first["assignment"], token, label="spam")
    assert r.status == 201, r.text
    assert {k: r.json[k] for k in ("assignment", "kind", "label")} == {
        "assignment": first["assignment"], "kind": "labeling", "label": "spam"}
    assert r.json["recorded_at"].endswith("Z")
    nxt = r.json["next"]
    assert set(nxt) == set(first)  # the Assignment shape of GET /next
    assert nxt["assignment"] != first["assignment"] and nxt["item"]["text"] != first["item"]["text"]
    assert nxt["progress"] == {"answered": 1, "target": 3}
    # it is leased to the worker: GET /next hands the same one back, and it can be answered
    assert api.next("an", token).json["assignment"] == nxt["assignment"]
    assert api.answer(nxt["assignment"], token, label="ham").status == 201
    labels = [json.loads(x) for x in api.admin_get("/studies/an/export?what=labels").text.splitlines()]
    assert sorted((x["item"], x["label"]) for x in labels) == sorted(
        [(_item_id(first), "spam"), (_item_id(nxt), "ham")])


def test_repeating_an_answer_with_next_is_idempotent_and_returns_the_same_next(db_app, api_client):
    api = api_client(db_app)
    _labeling(api)
    token = api.session("an", "w1")
    a = api.next("an", token).json["assignment"]
    first = _answer_next(api, a, token, label="spam")
    again = _answer_next(api, a, token, label="spam")  # e.g. the reply was lost and the page sent it again
    assert first.status == again.status == 201
    assert first.json == again.json  # same recorded answer, same (held) next assignment
    with session_scope(get_state(db_app).engine) as db:
        assert db.scalar(select(func.count()).select_from(LabelRecord)) == 1
    assert api.admin_get("/studies/an/progress").json["active_leases"] == 1  # no second unit was leased


def test_next_is_null_when_the_answer_was_the_workers_last_unit(db_app, api_client):
    api = api_client(db_app)
    _labeling(api, k=1, n=1)
    token = api.session("an", "w1")
    a = api.next("an", token).json["assignment"]
    r = _answer_next(api, a, token, label="ham")
    assert r.status == 201 and r.json["next"] is None and r.json["label"] == "ham"
    assert api.next("an", token).status == 204
    again = _answer_next(api, a, token, label="ham")
    assert again.status == 201 and again.json == r.json


def test_a_pairwise_answer_with_next_carries_the_next_pair(db_app, api_client):
    api = api_client(db_app)
    assert api.create_study(name="pw", kind="pairwise", judgments_per_pair=1, examples_per_task=1).status == 201
    assert api.add_items("pw", tasks=["sms_spam", "humor", "tweet_sarcasm"]).status == 201
    token = api.session("pw", "w1")
    first = api.next("pw", token).json
    r = _answer_next(api, first["assignment"], token, winner=first["left"]["task"])
    assert r.status == 201 and r.json["winner"] == first["left"]["task"]
    nxt = r.json["next"]
    assert nxt["kind"] == "pairwise" and set(nxt) == set(first)
    pair = {first["left"]["task"], first["right"]["task"]}
    assert {nxt["left"]["task"], nxt["right"]["task"]} != pair


def test_without_next_or_with_next_0_the_reply_has_no_next_field(db_app, api_client):
    api = api_client(db_app)
    _labeling(api)
    token = api.session("an", "w1")
    a = api.next("an", token).json["assignment"]
    r = api.request("POST", f"/assignments/{a}?next=0", token, {"label": "spam"})
    assert r.status == 201 and "next" not in r.json
    assert api.next("an", token).json["assignment"] != a  # and nothing was leased by the answer


def test_a_bad_next_value_is_refused_and_records_nothing(db_app, api_client):
    api = api_client(db_app)
    _labeling(api)
    token = api.session("an", "w1")
    a = api.next("an", token).json["assignment"]
    r = api.request("POST", f"/assignments/{a}?next=yes", token, {"label": "spam"})
    assert r.status == 400 and r.json["error"]["field"] == "next"
    assert api.admin_get("/studies/an/progress").json["answered"] == 0


def test_a_refused_answer_with_next_leases_nothing(db_app, api_client):
    api = api_client(db_app)
    _labeling(api)
    alice, bob = api.session("an", "alice"), api.session("an", "bob")
    a = api.next("an", alice).json["assignment"]
    r = _answer_next(api, a, bob, label="ham")  # not bob's assignment
    assert r.status == 409 and "next" not in r.json
    assert api.admin_get("/studies/an/progress").json["active_leases"] == 1  # only alice's


GOLD_TEXTS = {"WIN NOW", "hi mum"}


def _item_id(assignment) -> str:
    """The researcher's id of the item shown (the tests' items are "message N" with id "iN")."""
    return assignment["item"]["text"].replace("message ", "i")


def _walk(api, study, worker, one_trip):
    """Work through `study` as one worker; return [(unit id, is a check, progress)] of every unit shown."""
    token = api.session(study, worker)
    shown, current = [], api.next(study, token).json
    while current is not None:
        text = current["item"]["text"]
        shown.append((text, text in GOLD_TEXTS, current["progress"]))
        if one_trip:
            r = _answer_next(api, current["assignment"], token, label="spam")
            assert r.status == 201, r.text
            current = r.json["next"]
        else:
            assert api.answer(current["assignment"], token, label="spam").status == 201
            r = api.next(study, token)
            current = r.json if r.status == 200 else None
    return shown


def test_the_one_trip_loop_shows_the_same_checks_caps_and_progress_as_next_then_answer(db_app, api_client):
    # on PostgreSQL the one-trip answer is one statement that reads the state before its own answer:
    # attention checks, the cap and the progress figures must come out exactly as in the two-request loop
    api = api_client(db_app)
    for name in ("strict", "trip"):
        assert api.create_study(name=name, kind="labeling", task="sms_spam", labels_per_item=2, gold_every=3,
                                max_per_worker=6).status == 201
        assert api.add_items(name, examples=[{"id": f"i{i}", "text": f"message {i}"} for i in range(9)],
                             gold=[{"id": "g1", "text": "WIN NOW", "answer": "spam"},
                                   {"id": "g2", "text": "hi mum", "answer": "ham"}]).status == 201
    for worker in ("w1", "w2"):
        strict, trip = _walk(api, "strict", worker, False), _walk(api, "trip", worker, True)
        assert [(gold, p) for _, gold, p in trip] == [(gold, p) for _, gold, p in strict]
        assert [gold for _, gold, _ in trip] == [False, False, True, False, False, True, False, False]
        assert trip[-1][2] == {"answered": 7, "target": 8}  # 6 units (the cap) and 2 checks
        assert len({unit for unit, _, _ in trip}) == len(trip)  # never the same unit twice
    for name in ("strict", "trip"):
        progress = api.admin_get(f"/studies/{name}/progress").json
        assert progress["active_leases"] == 0 and progress["answered"] == 12, progress
