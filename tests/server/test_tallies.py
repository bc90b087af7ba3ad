"""The counters a study keeps (`annotation_server.tallies`) equal a full recount of its rows after a mixed
workload (answers on both loops, abandoned and expired leases taken over, leases handed back, attention
checks right and wrong, repeated and refused answers, a closed study) on SQLite and PostgreSQL; the admin
views and the hot path read those counters and never every slot."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import event, func, select, text

from annotation_server import tallies, worker_state
from annotation_server.state import get_state
from annotation_server.cache import MetadataCache
from annotation_server.db import autocommit, session_scope
from annotation_server.leases import reclaim_expired
from annotation_server.models import Item, Study

LEASE = 30


def _studies(app) -> dict[str, int]:
    with session_scope(get_state(app).engine) as db:
        return dict(db.execute(select(Study.name, Study.id)).all())


def assert_counters_match_a_recount(app, clock) -> dict[str, tallies.Tallies]:
    """Every study's kept counters equal the recount of its rows; return the counters."""
    out = {}
    with get_state(app).engine.connect() as conn:
        for name, sid in _studies(app).items():
            kept, recounted = tallies.counted(conn, sid, clock()), tallies.recounted(conn, sid, clock())
            assert kept == recounted, name
            assert tallies.stored_worker_rows(conn, sid) == tallies.recounted_worker_rows(conn, sid), name
            out[name] = kept
    return out


def _work(api, clock, study, worker, n, choose, one_trip=False, seconds=4.0):
    """`worker` answers up to `n` units (the one-round-trip loop with `one_trip`); returns the token."""
    token = api.session(study, worker)
    pending = None
    for _ in range(n):
        a = pending or api.next(study, token).json
        if a is None:
            break
        clock.advance(seconds)
        r = api.request("POST", f"/assignments/{a['assignment']}" + ("?next=1" if one_trip else ""), token, choose(a))
        assert r.status == 201, r.text
        pending = r.json.get("next") if one_trip else None
    return token


@pytest.fixture
def mixed(make_app, backend, clock, api_client):
    """A labeling and a pairwise study (with attention checks) part-way through a mixed workload."""
    app = make_app(db=backend, CLOCK=clock, LEASE_SECONDS=LEASE)
    api = api_client(app)
    assert api.create_study(name="mix-l", kind="labeling", task="sms_spam", labels_per_item=3, gold_every=3).status == 201
    assert api.add_items("mix-l", examples=[{"id": f"m{i}", "text": f"message number {i}"} for i in range(8)],
                         gold=[{"id": "attention-1", "text": "WIN A PRIZE NOW", "answer": "spam"},
                               {"id": "gold-2", "text": "see you at six", "answer": "ham"}]).status == 201
    assert api.create_study(name="mix-p", kind="pairwise", judgments_per_pair=2, gold_every=3,
                            examples_per_task=1).status == 201
    assert api.add_items("mix-p", tasks=["sms_spam", "humor", "tweet_sarcasm", "fewrel"],
                         gold=[{"left": "fewrel", "right": "humor", "answer": "fewrel"}]).status == 201
    return app, api


def test_kept_counters_equal_a_full_recount_after_a_mixed_workload(mixed, clock):
    app, api = mixed
    spam = lambda a: {"label": "spam"}  # noqa: E731
    left = lambda a: {"winner": a["left"]["task"]}  # noqa: E731
    right = lambda a: {"winner": a["right"]["task"]}  # noqa: E731
    _work(api, clock, "mix-l", "w1", 5, spam)
    _work(api, clock, "mix-p", "w1", 4, left, one_trip=True)
    assert_counters_match_a_recount(app, clock)

    # w2 takes a unit of each study and walks away; the leases expire and others take them over
    abandoned = api.session("mix-l", "w2")
    assert api.next("mix-l", abandoned).status == 200
    assert api.next("mix-p", api.session("mix-p", "w2")).status == 200
    counts = assert_counters_match_a_recount(app, clock)
    assert counts["mix-l"].active_leases == 1 and counts["mix-p"].active_leases >= 1
    clock.advance(LEASE + 1)
    counts = assert_counters_match_a_recount(app, clock)
    assert counts["mix-l"].expired_leases == 1 and counts["mix-l"].active_leases == 0
    _work(api, clock, "mix-l", "w3", 6, lambda a: {"label": "ham"}, one_trip=True)
    _work(api, clock, "mix-p", "w3", 6, right)
    late = api.next("mix-l", abandoned)  # w2 comes back: a new unit (the old one went to someone else)
    assert late.status == 200
    assert_counters_match_a_recount(app, clock)

    # a repeated answer changes nothing; an answer to an expired lease is refused
    token = api.session("mix-l", "w4")
    a = api.next("mix-l", token).json
    assert api.answer(a["assignment"], token, label="ham").status == 201
    assert api.answer(a["assignment"], token, label="ham").status == 201
    b = api.next("mix-l", token).json
    clock.advance(LEASE + 1)
    assert api.answer(b["assignment"], token, label="ham").status == 409
    assert_counters_match_a_recount(app, clock)

    # expired leases handed back explicitly, then the labeling study is closed and the pairwise one finished
    assert reclaim_expired(get_state(app).engine, clock()) >= 1
    assert api.request("POST", "/studies/mix-l/close", api.admin_token).status == 200
    for worker in ("w5", "w6", "w7", "w8"):
        _work(api, clock, "mix-p", worker, 12, left if worker != "w6" else right, one_trip=worker == "w7")
    counts = assert_counters_match_a_recount(app, clock)
    pw, lab = counts["mix-p"], counts["mix-l"]
    assert lab.gold_answered >= 2 and 0 < pw.gold_answered and pw.left_wins > 0
    assert pw.full_units > 0 and lab.answered > 0 and lab.open_slots > 0

    progress = api.admin_get("/studies/mix-p/progress").json
    assert progress["answered"] == pw.answered and progress["complete_units"] == pw.full_units
    assert progress["position"]["left_wins"] == pw.left_wins
    assert progress["gold"] == {"answered": pw.gold_answered, "correct": pw.gold_correct,
                                "accuracy": pw.gold_correct / pw.gold_answered}


def test_a_recount_rebuilds_counters_that_were_lost(mixed, clock):
    app, api = mixed
    _work(api, clock, "mix-l", "w1", 6, lambda a: {"label": "spam"})
    _work(api, clock, "mix-p", "w1", 6, lambda a: {"winner": a["left"]["task"]})
    engine = get_state(app).engine
    before = assert_counters_match_a_recount(app, clock)
    with engine.begin() as conn:  # as after a bulk load that went around the triggers
        conn.execute(text("DELETE FROM worker_stats"))
        conn.execute(text("DELETE FROM study_tally"))
        conn.execute(text("UPDATE study SET n_units = 0, n_slots = 0"))
    with engine.connect() as conn:
        assert tallies.counted(conn, _studies(app)["mix-l"], clock()) != before["mix-l"]
    with engine.begin() as conn:
        for sid in _studies(app).values():
            tallies.recount(conn, sid)
    assert assert_counters_match_a_recount(app, clock) == before


def _below_by_counting(app, study_id: int, quota: int) -> int:
    with session_scope(get_state(app).engine) as db:
        return db.scalar(select(func.count()).select_from(Item).where(Item.study_id == study_id, Item.n_answers < quota))


def test_the_hot_path_knows_the_units_below_quota_without_counting_them(make_app, backend, clock, api_client):
    app = make_app(db=backend, CLOCK=clock)
    api = api_client(app)
    api.create_study(name="big", kind="labeling", task="sms_spam", labels_per_item=2)  # no cap: every unit counts
    api.add_items("big", examples=[{"id": f"x{i}", "text": f"text {i}"} for i in range(6)])
    sid = _studies(app)["big"]
    state = get_state(app)
    with state.engine.connect() as conn:
        meta = MetadataCache().study_by_name(conn, "big")
    for worker in ("a", "b", "c"):
        token = _work(api, clock, "big", worker, 4, lambda a: {"label": "ham"})
        with autocommit(state.hot_engine) as conn:
            got = worker_state.read_state(conn, meta, hashlib.sha256(token.encode()).hexdigest())
        assert got.below == _below_by_counting(app, sid, 2)
    assert _below_by_counting(app, sid, 2) == 0  # 6 items x 2 labels, 12 answers: all at quota
    me = api.request("GET", "/studies/big/me", token).json
    assert me["finished"] is True and me["target"] == me["answered"] == 4


#: Tables whose size grows with a study: the admin views must never read them from end to end.
BIG_TABLES = ("assignment", "item", "task_pair", "label_record", "judgment", "gold_answer")


def test_admin_views_search_indexes_and_never_scan_a_big_table(make_app, clock, api_client):
    """SQLite's plan of every statement the progress, workers and agreement views send: no full scan."""
    app = make_app(CLOCK=clock)
    api = api_client(app)
    for name, kind in (("vl", "labeling"), ("vp", "pairwise")):
        body = {"task": "sms_spam", "labels_per_item": 3} if kind == "labeling" else {"judgments_per_pair": 2,
                                                                                      "examples_per_task": 1}
        api.create_study(name=name, kind=kind, gold_every=3, **body)
    api.add_items("vl", examples=[{"id": f"i{i}", "text": f"text {i}"} for i in range(5)],
                  gold=[{"id": "g", "text": "gold text", "answer": "ham"}])
    api.add_items("vp", tasks=["sms_spam", "humor", "fewrel"])
    _work(api, clock, "vl", "w1", 4, lambda a: {"label": "ham"})
    _work(api, clock, "vp", "w1", 2, lambda a: {"winner": a["left"]["task"]})
    engine = get_state(app).engine
    sent: list[tuple[str, tuple]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        for path in ("/studies/vl/progress", "/studies/vl/workers", "/studies/vl/agreement",
                     "/studies/vp/progress", "/studies/vp/workers"):
            assert api.admin_get(path).status == 200, path
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert sent
    with engine.connect() as conn:
        for statement, parameters in sent:
            plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            scans = [step for step in plan if re.match(rf"SCAN ({'|'.join(BIG_TABLES)})\b", step)]
            assert not scans, (statement, plan)


@pytest.mark.parametrize("seed", range(5))
def test_answers_per_worker_from_the_count_histogram_equal_those_of_every_worker(seed):
    import random
    import statistics
    from collections import Counter

    rng = random.Random(seed)
    for _ in range(200):
        answers = [rng.randint(1, 30) for _ in range(rng.randint(1, 12))]
        t = tallies.Tallies(units=1, slots=1, full_units=0, answered=sum(answers), active_leases=0, expired_leases=0,
                            gold_answered=0, gold_correct=0, left_wins=0,
                            answer_counts=tuple(sorted(Counter(answers).items())))
        got = t.to_json()
        median = statistics.median(answers)
        assert got["workers"] == len(answers)
        assert got["answers_per_worker"] == {"min": min(answers), "median": median, "max": max(answers)}
        assert type(got["answers_per_worker"]["median"]) is type(median)
