"""Creating and filling studies through the admin API, with real task data."""

from __future__ import annotations

from subjlab.data import load_split
from subjlab.tasks import OBJECTIVITY_DEFINITION, REGISTRY


def test_pairwise_study_gets_every_pair_with_real_example_texts(db_app, api_client, task_data):
    api = api_client(db_app)
    r = api.create_study(name="obj", kind="pairwise", judgments_per_pair=4, examples_per_task=2)
    assert r.status == 201 and r.json["kind"] == "pairwise" and r.json["judgments_per_pair"] == 4
    r = api.add_items("obj", tasks=["sms_spam", "humor", "tweet_sarcasm"])
    assert r.status == 201 and r.json == {"study": "obj", "added": {"tasks": 3}, "units": 3}
    info = api.request("GET", "/studies/obj").json
    assert info["definition"] == OBJECTIVITY_DEFINITION and info["kind"] == "pairwise"
    token = api.session("obj", "w1")
    a = api.next("obj", token).json
    train_texts = {ex.text for t in ("sms_spam", "humor", "tweet_sarcasm") for ex in load_split(REGISTRY[t], "train", task_data)}
    for side in ("left", "right"):
        card = a[side]
        spec = REGISTRY[card["task"]]
        assert card["description"] == spec.description and card["labels"] == list(spec.labels)
        assert len(card["examples"]) == 2 and set(card["examples"]) <= train_texts
    assert a["left"]["task"] != a["right"]["task"]
    progress = api.admin_get("/studies/obj/progress").json
    assert progress["units"] == 3 and progress["slots"] == 12 and progress["active_leases"] == 1


def test_task_spec_with_its_own_examples_is_added_verbatim(api):
    spec = dict(REGISTRY["humor"].to_dict(), name="my_reviews", examples=["<b>Great</b> film", "Dull & slow"])
    assert api.create_study(name="custom", kind="pairwise", examples_per_task=2).status == 201
    assert api.add_items("custom", tasks=[spec, "sms_spam"]).status == 201
    token = api.session("custom", "w1")
    a = api.next("custom", token).json
    card = a["left"] if a["left"]["task"] == "my_reviews" else a["right"]
    assert card["examples"] == ["<b>Great</b> film", "Dull & slow"]  # data, unescaped: pages escape


def test_labeling_study_keeps_extra_fields_and_serves_items_with_labels(db_app, api_client, task_data):
    api = api_client(db_app)
    r = api.create_study(name="irony", kind="labeling", task="tweet_sarcasm", labels_per_item=3)
    assert r.status == 201 and r.json["task"] == "tweet_sarcasm" and r.json["labels_per_item"] == 3
    rows = load_split(REGISTRY["tweet_sarcasm"], "test", task_data, limit_per_label=2)
    examples = [dict(ex.extra, id=ex.id, text=ex.text) for ex in rows]
    r = api.add_items("irony", examples=examples)
    assert r.status == 201 and r.json["added"] == {"examples": 4} and r.json["units"] == 4
    token = api.session("irony", "w1")
    a = api.next("irony", token).json
    assert a["kind"] == "labeling" and a["labels"] == ["not_sarcastic", "sarcastic"]
    assert a["item"]["text"] in {ex.text for ex in rows}
    assert a["progress"] == {"answered": 0, "target": 4}


def test_adding_an_existing_item_id_again_is_a_conflict_and_adds_nothing(api):
    api.create_study(name="dup", kind="labeling", task="sms_spam")
    assert api.add_items("dup", examples=[{"id": "x1", "text": "a"}]).status == 201
    r = api.add_items("dup", examples=[{"id": "x2", "text": "b"}, {"id": "x1", "text": "again"}])
    assert r.status == 409 and "x1" in r.json["error"]["message"]
    assert api.admin_get("/studies").json["studies"][0]["units"] == 1


def test_list_and_close_study(api):
    api.create_study(name="s1", kind="labeling", task="humor")
    api.create_study(name="s2", kind="pairwise")
    names = [s["name"] for s in api.admin_get("/studies").json["studies"]]
    assert names == ["s1", "s2"]
    r = api.request("POST", "/studies/s1/close", api.admin_token)
    assert r.status == 200 and r.json["status"] == "closed"
    r = api.request("POST", "/studies/s1/sessions", json_body={"worker_id": "w"})
    assert r.status == 409 and "closed" in r.json["error"]["message"]


def test_closing_a_study_ends_work_for_workers_already_in_it(api):
    api.create_study(name="c", kind="labeling", task="humor")
    api.add_items("c", examples=[{"id": f"i{i}", "text": f"text {i}"} for i in range(3)])
    token = api.session("c", "w1")
    a = api.next("c", token).json["assignment"]
    assert api.answer(a, token, label="humor").status == 201
    api.request("POST", "/studies/c/close", api.admin_token)
    assert api.next("c", token).status == 204
    me = api.request("GET", "/studies/c/me", token).json
    assert me["finished"] is True and me["completion_code"]


def _at_once(app, n: int, send) -> list:
    """Send `n` requests at the same moment (one test client per thread); return their replies."""
    import threading

    barrier, replies = threading.Barrier(n), []

    def run() -> None:
        client = app.test_client()
        barrier.wait()
        replies.append(send(client))

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return replies


ADMIN_HEADERS = {"Authorization": "Bearer test-admin-token"}


def test_a_taken_study_name_is_409_and_changes_nothing_even_when_requests_race(db_app, api_client, db_rows):
    api = api_client(db_app)
    assert api.create_study(name="taken", kind="pairwise").status == 201
    before = db_rows(db_app)
    for body in ({"kind": "pairwise"}, {"kind": "labeling", "task": "sms_spam"}):
        r = api.create_study(name="taken", **body)
        assert r.status == 409 and r.json["error"]["field"] == "name" and "already exists" in r.json["error"]["message"]
    assert db_rows(db_app) == before
    replies = _at_once(db_app, 4, lambda c: c.post("/api/v1/studies", json={"name": "race", "kind": "pairwise"},
                                                   headers=ADMIN_HEADERS))
    assert sorted(r.status_code for r in replies) == [201, 409, 409, 409], [r.get_data(as_text=True) for r in replies]
    assert len(db_rows(db_app)["study"]) == len(before["study"]) + 1


def test_a_task_added_twice_to_a_pairwise_study_is_409_and_changes_nothing_even_when_requests_race(
        db_app, api_client, db_rows):
    api = api_client(db_app)
    api.create_study(name="pw2", kind="pairwise", judgments_per_pair=2, examples_per_task=1)
    assert api.add_items("pw2", tasks=["sms_spam", "humor"]).status == 201
    before = db_rows(db_app)
    for tasks, field in ((["humor"], "tasks[0]"), (["ag_news", "ag_news"], "tasks[1]"), (["imdb", "sms_spam"], "tasks[1]")):
        r = api.add_items("pw2", tasks=tasks)
        assert r.status == 409 and r.json["error"]["field"] == field, r.text
    assert db_rows(db_app) == before  # not even imdb, given before the repeated task
    replies = _at_once(db_app, 3, lambda c: c.post("/api/v1/studies/pw2/items", json={"tasks": ["tweet_sarcasm"]},
                                                   headers=ADMIN_HEADERS))
    assert sorted(r.status_code for r in replies) == [201, 409, 409], [r.get_data(as_text=True) for r in replies]
    assert api.admin_get("/studies").json["studies"][0]["units"] == 3  # one new task: two new pairs
