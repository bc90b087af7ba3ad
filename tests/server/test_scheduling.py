"""Who gets what: pair balance and orders, K distinct workers per item, fewest first, caps, gold checks."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
from collections import Counter

import pytest
from sqlalchemy import select

from annotation_server.app import get_state
from annotation_server.db import session_scope
from annotation_server.models import Assignment

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
            order.append(r.json["item"]["text"])
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
    texts = [a["item"]["text"] for a in got]
    # every 3rd unit is a check, each check once
    assert len(texts) == 7 and {texts[2], texts[5]} == {"WIN a FREE prize, text now", "see you at dinner mum"}
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


def _walk_with_checks(api, study: str, worker: str, gold_texts: set[str]):
    """Work through a labeling study; return [(assignment JSON, is a check)] in the order served."""
    token = api.session(study, worker)
    shown = []
    while (r := api.next(study, token)).status == 200:
        shown.append((r.json, r.json["item"]["text"] in gold_texts))
        assert api.answer(r.json["assignment"], token, label="ham").status == 201
    return shown


def _shape(value, key: str = ""):
    """The keys of a JSON value, recursively (what fields a reply has, not their values)."""
    if key == "label_descriptions":  # keyed by the task's own labels
        return "mapping"
    if isinstance(value, dict):
        return {k: _shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


def test_attention_checks_look_exactly_like_regular_units(db_app, api_client):
    api = api_client(db_app)
    api.create_study(name="hide", kind="labeling", task="sms_spam", labels_per_item=1, gold_every=4)
    gold = [{"id": f"attention-{i}", "text": f"check {i}: please answer ham", "answer": "ham"} for i in range(10)]
    api.add_items("hide", examples=[{"id": f"item-{i}", "text": f"message {i}"} for i in range(30)], gold=gold)
    shown = _walk_with_checks(api, "hide", "w1", {g["text"] for g in gold})
    checks = [a for a, is_check in shown if is_check]
    regular = [a for a, is_check in shown if not is_check]
    assert (len(checks), len(regular)) == (9, 30)  # every 4th unit, while real units remain
    # the same fields, and nothing that names the researcher's items or checks
    assert {json.dumps(_shape(a), sort_keys=True) for a, _ in shown} == {json.dumps(_shape(regular[0]), sort_keys=True)}
    assert not any(word in json.dumps(a) for a, _ in shown for word in ("attention", "item-", "gold"))
    # handles are opaque: the same shape, and their order does not set checks apart (in the database every
    # check's slot id comes after every pre-made slot; a check's handle is as likely as any to sort first)
    handles = [a["assignment"] for a, _ in shown]
    assert all(re.fullmatch(r"[0-9a-f]{16}", h) for h in handles) and len(set(handles)) == 39
    ranks = {h: i for i, h in enumerate(sorted(handles))}
    check_ranks = sorted(ranks[a["assignment"]] for a in checks)
    assert 60 < sum(check_ranks) < 280  # far from all-last (306) or all-first (36)
    with session_scope(get_state(db_app).engine) as db:
        ids = {bool(g): sorted(i for i, in db.execute(select(Assignment.id).where(
            Assignment.worker_id.is_not(None), Assignment.gold_id.is_not(None) if g else Assignment.gold_id.is_(None))))
            for g in (True, False)}
    assert min(ids[True]) > max(ids[False])  # what the handles hide
    # the admin side still knows exactly which answers were checks and how the worker did
    row = api.admin_get("/studies/hide/workers").json["workers"][0]
    assert (row["answered"], row["gold_answered"], row["gold_correct"]) == (30, 9, 9)
    exported = [json.loads(x) for x in api.admin_get("/studies/hide/export?what=labels").text.splitlines()]
    assert sorted(x["assignment"] for x in exported) == sorted(a["assignment"] for a in regular)


def test_pairwise_attention_checks_carry_the_same_fields_as_regular_pairs(db_app, api_client):
    api = api_client(db_app)
    api.create_study(name="hide-pw", kind="pairwise", judgments_per_pair=1, gold_every=3, examples_per_task=1)
    api.add_items("hide-pw", tasks=["sms_spam", "humor", "tweet_sarcasm", "reddit_emotion"],
                  gold=[{"id": "attention-pair", "left": "sms_spam", "right": "humor", "answer": "sms_spam"}])
    token = api.session("hide-pw", "w1")
    shown = []
    while (r := api.next("hide-pw", token)).status == 200:
        shown.append(r.json)
        assert api.answer(r.json["assignment"], token, winner=r.json["left"]["task"]).status == 201
    assert len(shown) == 7 and len({json.dumps(_shape(a), sort_keys=True) for a in shown}) == 1
    assert not any("attention" in json.dumps(a) for a in shown)
    assert api.admin_get("/studies/hide-pw/progress").json["gold"] == {"answered": 1, "correct": 1, "accuracy": 1.0}
