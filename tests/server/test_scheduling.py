"""Who gets what: pair balance and orders, K distinct workers per item, fewest first, caps, gold checks."""

from __future__ import annotations

import importlib.util
import itertools
import json
from collections import Counter

import pytest

from subjlab.data import load_split
from subjlab.tasks import REGISTRY

TASKS = ["sms_spam", "humor", "tweet_sarcasm", "reddit_emotion"]


def _work_until_done(api, study, token, choose):
    """Answer every assignment the worker is given; return the assignment JSONs in order."""
    seen = []
    while True:
        r = api.next(study, token)
        if r.status == 204:
            return seen
        assert r.status == 200, r.text
        seen.append(r.json)
        assert api.answer(r.json["assignment"], token, **choose(r.json)).status == 201


def test_balanced_pairs_cover_every_pair_in_both_orders_evenly_and_never_repeat_for_a_worker(db_app, api_client):
    api = api_client(db_app)
    api.create_study(name="bal", kind="pairwise", judgments_per_pair=2, examples_per_task=1)
    api.add_items("bal", tasks=TASKS)
    all_pairs = {frozenset(p) for p in itertools.combinations(TASKS, 2)}
    for w in range(2):
        token = api.session("bal", f"w{w}")
        got = _work_until_done(api, "bal", token, lambda a: {"winner": a["left"]["task"]})
        pairs = [frozenset((a["left"]["task"], a["right"]["task"])) for a in got]
        assert len(pairs) == len(set(pairs)) == 6 and set(pairs) == all_pairs  # each pair once per worker
    lines = [json.loads(x) for x in api.admin_get("/studies/bal/export?what=judgments").text.splitlines()]
    orders = Counter((j["left"], j["right"]) for j in lines)
    assert len(lines) == 12
    for a, b in itertools.combinations(TASKS, 2):
        assert orders[(a, b)] == orders[(b, a)] == 1  # both orders, evenly
    token = api.session("bal", "w-late")
    assert api.next("bal", token).status == 204  # quota full: nothing is over-filled


def test_pairs_with_fewest_judgments_are_served_first(api):
    api.create_study(name="few", kind="pairwise", judgments_per_pair=3, examples_per_task=1)
    api.add_items("few", tasks=TASKS[:3])
    first = []
    for w in range(3):
        token = api.session("few", f"w{w}")
        a = api.next("few", token).json
        first.append(frozenset((a["left"]["task"], a["right"]["task"])))
        api.answer(a["assignment"], token, winner=a["right"]["task"])
    assert len(set(first)) == 3  # three workers' first units went to three different pairs


def test_labeling_gives_each_item_to_k_distinct_workers_fewest_labels_first(db_app, api_client, task_data):
    api = api_client(db_app)
    api.create_study(name="lab", kind="labeling", task="sms_spam", labels_per_item=2)
    rows = load_split(REGISTRY["sms_spam"], "test", task_data, limit_per_label=2)
    api.add_items("lab", examples=[{"id": ex.id, "text": ex.text} for ex in rows])
    tokens = [api.session("lab", f"w{i}") for i in range(3)]
    # round-robin so that all three workers compete for the four items
    order = []
    done = set()
    while len(done) < 3:
        for i, t in enumerate(tokens):
            if i in done:
                continue
            r = api.next("lab", t)
            if r.status == 204:
                done.add(i)
                continue
            order.append(r.json["item"]["id"])
            assert api.answer(r.json["assignment"], t, label="ham").status == 201
    labels = [json.loads(x) for x in api.admin_get("/studies/lab/export?what=labels").text.splitlines()]
    per_item = Counter(lab["item"] for lab in labels)
    assert len(per_item) == 4 and set(per_item.values()) == {2}  # exactly K per item
    assert len({(lab["item"], lab["worker"]) for lab in labels}) == 8  # never the same item twice per worker
    assert len(set(order[:4])) == 4  # every item got its first label before any got a second


def test_per_worker_cap_ends_the_work(api):
    api.create_study(name="cap", kind="labeling", task="humor", labels_per_item=1, max_per_worker=2)
    api.add_items("cap", examples=[{"id": f"i{i}", "text": f"joke {i}"} for i in range(5)])
    token = api.session("cap", "w1")
    got = _work_until_done(api, "cap", token, lambda a: {"label": "humor"})
    assert len(got) == 2 and got[0]["progress"]["target"] == 2
    me = api.request("GET", "/studies/cap/me", token).json
    assert me["answered"] == 2 and me["finished"] and len(me["completion_code"]) == 12
    assert api.session("cap", "w2") and api.next("cap", api.session("cap", "w2")).status == 200


def test_gold_checks_are_interleaved_and_scored_but_not_exported(api):
    api.create_study(name="gold", kind="labeling", task="sms_spam", labels_per_item=1, gold_every=3)
    api.add_items("gold", examples=[{"id": f"i{i}", "text": f"message {i}"} for i in range(5)],
                  gold=[{"id": "g1", "text": "WIN a FREE prize, text now", "answer": "spam"},
                        {"id": "g2", "text": "see you at dinner mum", "answer": "ham"}])
    token = api.session("gold", "w1")
    got = _work_until_done(api, "gold", token, lambda a: {"label": "spam"})
    ids = [a["item"]["id"] for a in got]
    assert len(ids) == 7 and {ids[2], ids[5]} == {"g1", "g2"}  # every 3rd unit is a check, each check once
    workers = api.admin_get("/studies/gold/workers").json["workers"]
    assert workers[0]["gold_answered"] == 2 and workers[0]["gold_correct"] == 1 and workers[0]["gold_accuracy"] == 0.5
    exported = [json.loads(x)["item"] for x in api.admin_get("/studies/gold/export?what=labels").text.splitlines()]
    assert sorted(exported) == ["i0", "i1", "i2", "i3", "i4"]


def test_pairwise_gold_check_with_known_more_objective_task(api):
    api.create_study(name="pgold", kind="pairwise", judgments_per_pair=1, gold_every=2, examples_per_task=1)
    api.add_items("pgold", tasks=TASKS[:3], gold=[{"left": "sms_spam", "right": "humor", "answer": "sms_spam"}])
    token = api.session("pgold", "w1")
    got = _work_until_done(api, "pgold", token, lambda a: {"winner": a["left"]["task"]})
    assert len(got) == 4  # 3 pairs + 1 check
    assert api.admin_get("/studies/pgold/progress").json["gold"] == {"answered": 1, "correct": 1, "accuracy": 1.0}


def test_a_reload_returns_the_same_assignment_instead_of_a_second_one(api):
    api.create_study(name="reload", kind="labeling", task="humor", labels_per_item=1)
    api.add_items("reload", examples=[{"id": f"i{i}", "text": f"t{i}"} for i in range(3)])
    token = api.session("reload", "w1")
    first = api.next("reload", token).json
    again = api.next("reload", token).json
    assert again["assignment"] == first["assignment"]
    assert api.admin_get("/studies/reload/progress").json["active_leases"] == 1


@pytest.mark.skipif(importlib.util.find_spec("analysis.pair_selection") is None,
                    reason="analysis.pair_selection (active pair selection) is not part of this checkout yet")
def test_active_scheduler_serves_every_pair_once_per_worker(api):
    api.create_study(name="act", kind="pairwise", scheduler="active", judgments_per_pair=2, examples_per_task=1)
    api.add_items("act", tasks=TASKS)
    token = api.session("act", "w1")
    got = _work_until_done(api, "act", token, lambda a: {"winner": min(a["left"]["task"], a["right"]["task"])})
    pairs = [frozenset((a["left"]["task"], a["right"]["task"])) for a in got]
    assert len(pairs) == len(set(pairs)) == 6
