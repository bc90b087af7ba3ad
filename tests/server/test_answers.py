"""Answers are recorded once, only by the lease holder, only while the lease holds; export shapes."""

from __future__ import annotations

import json

from annotation_server import answers
from subjlab.records import Judgment, Label


def _labeling(api, name="ans", k=2, n=3):
    api.create_study(name=name, kind="labeling", task="sms_spam", labels_per_item=k)
    api.add_items(name, examples=[{"id": f"i{i}", "text": f"message {i}"} for i in range(n)])


def test_posting_the_same_answer_again_is_idempotent(db_app, api_client):
    api = api_client(db_app)
    _labeling(api)
    token = api.session("ans", "w1")
    a = api.next("ans", token).json["assignment"]
    first = api.answer(a, token, label="spam")
    again = api.answer(a, token, label="spam")
    assert first.status == again.status == 201 and first.json == again.json
    assert first.json["label"] == "spam" and first.json["assignment"] == a
    assert api.admin_get("/studies/ans/progress").json["answered"] == 1


def test_a_different_answer_to_an_answered_assignment_is_a_conflict(db_app, api_client):
    api = api_client(db_app)
    _labeling(api)
    token = api.session("ans", "w1")
    a = api.next("ans", token).json["assignment"]
    api.answer(a, token, label="spam")
    r = api.answer(a, token, label="ham")
    assert r.status == 409 and "already answered" in r.json["error"]["message"]
    labels = api.admin_get("/studies/ans/export?what=labels").text.splitlines()
    assert [json.loads(x)["label"] for x in labels] == ["spam"]


def test_answering_someone_elses_assignment_is_a_conflict(db_app, api_client):
    api = api_client(db_app)
    _labeling(api)
    alice, bob = api.session("ans", "alice"), api.session("ans", "bob")
    a = api.next("ans", alice).json["assignment"]
    r = api.answer(a, bob, label="ham")
    assert r.status == 409 and "not leased to you" in r.json["error"]["message"]
    api.answer(a, alice, label="spam")
    r = api.answer(a, bob, label="spam")
    assert r.status == 409 and "not leased to you" in r.json["error"]["message"]
    assert api.admin_get("/studies/ans/progress").json["answered"] == 1


def test_another_session_of_the_same_worker_cannot_answer_a_lease_and_nothing_is_stored(db_app, api_client, db_rows):
    api = api_client(db_app)
    _labeling(api)
    first = api.session("ans", "w1")
    a = api.next("ans", first).json
    borrowed = api.session("ans", "w1")  # the same worker id, another session (a borrowed identity)
    before = db_rows(db_app)
    for query in ("", "?next=1"):
        r = api.request("POST", f"/assignments/{a['assignment']}{query}", borrowed, {"label": "ham"})
        assert r.status == 409 and r.json["error"]["message"] == answers.NOT_YOURS, r.text
    assert db_rows(db_app) == before  # not a row changed: no answer, no lease taken over, no new lease
    assert api.answer(a["assignment"], first, label="spam").status == 201  # the lease is still the first's


def test_a_worker_who_re_enters_gets_new_work_never_the_old_sessions_lease(db_app, api_client):
    api = api_client(db_app)
    _labeling(api, k=1, n=3)
    first = api.session("ans", "w1")
    held = api.next("ans", first).json
    again = api.session("ans", "w1")
    fresh = api.next("ans", again).json
    assert fresh["assignment"] != held["assignment"] and fresh["item"]["text"] != held["item"]["text"]
    assert api.next("ans", again).json["assignment"] == fresh["assignment"]  # a reload keeps this session's lease
    assert api.next("ans", first).json["assignment"] == held["assignment"]  # and the old session keeps its own


def test_an_assignment_not_leased_to_the_caller_answers_exactly_like_one_that_does_not_exist(db_app, api_client, db_rows):
    api = api_client(db_app)
    _labeling(api, k=2, n=3)
    api.create_study(name="pw", kind="pairwise", judgments_per_pair=2, examples_per_task=1)
    api.add_items("pw", tasks=["sms_spam", "humor"])
    alice, bob, carol = api.session("ans", "alice"), api.session("ans", "bob"), api.session("pw", "carol")
    leased = api.next("ans", alice).json["assignment"]
    answered = api.next("ans", bob).json["assignment"]
    assert api.answer(answered, bob, label="ham").status == 201
    pairwise = api.next("pw", carol).json["assignment"]
    mine = api.next("ans", api.session("ans", "dave")).json["assignment"]
    dave = api.session("ans", "dave")  # dave's second session: `mine` belongs to the first one
    before = db_rows(db_app)
    replies = {}
    for name, handle in {"another's lease": leased, "another's answer": answered, "another study's pairwise": pairwise,
                         "own worker, other session": mine, "never issued": "0123456789abcdef",
                         "not a handle": "attention-1", "beyond 64 bits": str(2**70), "negative": "-1"}.items():
        for body in ({"label": "ham"}, {"label": "spam"}, {"winner": "sms_spam"}):
            r = api.answer(handle, dave, **body)
            replies[name, json.dumps(body)] = (r.status, r.text)
    assert set(replies.values()) == {(409, json.dumps({"error": {"status": 409, "code": "conflict",
                                                                   "message": answers.NOT_YOURS,
                                                                   "field": "assignment"}}, separators=(",", ":")) + "\n")}, replies
    assert db_rows(db_app) == before


def test_an_answer_after_the_lease_expired_is_refused_and_the_work_is_reissued(make_app, backend, api_client, clock):
    app = make_app(db=backend, CLOCK=clock, LEASE_SECONDS=60)
    api = api_client(app)
    _labeling(api, k=1, n=1)
    alice, bob = api.session("ans", "alice"), api.session("ans", "bob")
    a = api.next("ans", alice).json
    assert api.next("ans", bob).status == 204  # the only slot is leased to alice
    clock.advance(61)
    b = api.next("ans", bob).json  # the abandoned slot goes back to the pool: bob gets it
    assert b["item"]["text"] == a["item"]["text"] and b["assignment"] == a["assignment"]
    r = api.answer(a["assignment"], alice, label="ham")
    assert r.status == 409
    assert api.answer(b["assignment"], bob, label="spam").status == 201
    labels = [json.loads(x) for x in api.admin_get("/studies/ans/export?what=labels").text.splitlines()]
    assert [(x["worker"], x["label"]) for x in labels] == [("bob", "spam")]


def test_an_expired_lease_nobody_took_is_renewed_for_its_worker(make_app, api_client, clock):
    api = api_client(make_app(CLOCK=clock, LEASE_SECONDS=30))
    _labeling(api, k=1, n=2)
    token = api.session("ans", "w1")
    a = api.next("ans", token).json
    clock.advance(31)
    assert api.answer(a["assignment"], token, label="ham").status == 409  # too late ...
    again = api.next("ans", token).json  # ... but asking again gives the same unit, fresh lease
    assert again["assignment"] == a["assignment"] and again["lease_expires"] > a["lease_expires"]
    assert api.answer(again["assignment"], token, label="ham").status == 201


def test_export_records_have_the_design_shapes(db_app, api_client):
    api = api_client(db_app)
    api.create_study(name="pw", kind="pairwise", judgments_per_pair=2, examples_per_task=1)
    api.add_items("pw", tasks=["sms_spam", "humor"])
    token = api.session("pw", "w1")
    a = api.next("pw", token).json
    api.answer(a["assignment"], token, winner=a["right"]["task"])
    line = json.loads(api.admin_get("/studies/pw/export?what=judgments").text)
    j = Judgment.from_dict(line)
    assert (j.left, j.right, j.winner) == (a["left"]["task"], a["right"]["task"], a["right"]["task"])
    assert j.study == "pw" and j.worker == "w1" and j.created_at.endswith("Z")
    _labeling(api, name="lb")
    t2 = api.session("lb", "w2")
    b = api.next("lb", t2).json
    api.answer(b["assignment"], t2, label="ham")
    reply = api.admin_get("/studies/lb/export?what=labels")
    assert reply.headers["Content-Type"].startswith("application/x-ndjson")
    lab = Label.from_dict(json.loads(reply.text))
    assert (lab.item, lab.worker, lab.label) == (b["item"]["text"].replace("message ", "i"), "w2", "ham")
    assert lab.extra["assignment"] == b["assignment"]  # the handle the worker saw
    assert api.admin_get("/studies/lb/export?what=judgments").status == 400  # wrong kind for the study
