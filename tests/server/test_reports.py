"""Admin reports: progress with position bias, Bradley-Terry ranking with intervals, agreement, workers."""

from __future__ import annotations

import itertools

from sqlalchemy import event

from annotation_server.state import get_state
from subjlab.data import load_split
from subjlab.tasks import REGISTRY

TASKS = ["sms_spam", "fewrel", "humor", "tweet_sarcasm"]
OBJECTIVITY = {t: i for i, t in enumerate(reversed(TASKS))}  # sms_spam most objective in this simulated crowd


def test_ranking_recovers_the_crowds_order_with_intervals_and_position_bias(api):
    # four consistent workers and one who always clicks the left task: every pair is won at least 4 to 1
    # by its more objective task, so the win counts (and the Bradley-Terry order) are strictly ordered
    # whichever sides the server shows (with 3 + 1 a tie of win counts was possible: a flaky order)
    api.create_study(name="rk", kind="pairwise", judgments_per_pair=5, examples_per_task=1)
    api.add_items("rk", tasks=TASKS)
    for w in range(5):
        token = api.session("rk", f"w{w}")
        while (r := api.next("rk", token)).status == 200:
            left, right = r.json["left"]["task"], r.json["right"]["task"]
            winner = left if w == 4 else max((left, right), key=OBJECTIVITY.get)
            assert api.answer(r.json["assignment"], token, winner=winner).status == 201
    ranking = api.admin_get("/studies/rk/ranking").json
    assert ranking["n_judgments"] == 30 and ranking["connected"] is True
    assert [row["task"] for row in ranking["tasks"]] == TASKS
    for row in ranking["tasks"]:
        assert row["ci_low"] <= row["score"] <= row["ci_high"]
    progress = api.admin_get("/studies/rk/progress").json
    assert progress["complete_units"] == 6 and progress["answered"] == 30 and progress["workers"] == 5
    pos = progress["position"]
    assert pos["left_wins"] + pos["right_wins"] == 30 and pos["left_wins"] >= 6  # w4's six left clicks
    assert progress["answers_per_worker"] == {"min": 6, "median": 6, "max": 6}


def test_agreement_report_matches_the_labels_given(api, task_data):
    api.create_study(name="ag", kind="labeling", task="sms_spam", labels_per_item=3)
    rows = load_split(REGISTRY["sms_spam"], "test", task_data, limit_per_label=2)
    api.add_items("ag", examples=[{"id": ex.id, "text": ex.text} for ex in rows])
    gold = {ex.text: ex.label for ex in rows}
    for w in range(3):
        token = api.session("ag", f"w{w}")
        while (r := api.next("ag", token)).status == 200:
            item = r.json["item"]["text"]
            # w2 disagrees on the first spam item; everyone else gives the dataset label
            label = gold[item]
            if w == 2 and item == next(i for i, lab in gold.items() if lab == "spam"):
                label = "ham"
            api.answer(r.json["assignment"], token, label=label)
    rep = api.admin_get("/studies/ag/agreement").json
    assert rep["n_items"] == 4 and rep["n_labels"] == 12
    by_item = {it["item"]: it for it in rep["items"]}
    assert sorted(round(it["agreement"], 3) for it in by_item.values()) == [0.667, 1.0, 1.0, 1.0]
    assert {h["agreement"]: h["count"] for h in rep["histogram"]} == {1.0: 3, 0.667: 1}
    assert rep["fleiss_kappa"] is not None and rep["fleiss_kappa"] < 1
    workers = api.admin_get("/studies/ag/workers").json["workers"]
    assert [w["answered"] for w in workers] == [4, 4, 4] and all(w["median_seconds"] >= 0 for w in workers)


def test_reports_of_an_empty_study_are_empty_not_errors(api):
    api.create_study(name="e1", kind="pairwise")
    api.create_study(name="e2", kind="labeling", task="humor")
    assert api.admin_get("/studies/e1/ranking").json["tasks"] == []
    assert api.admin_get("/studies/e2/agreement").json["n_items"] == 0
    assert api.admin_get("/studies/e1/agreement").status == 400  # wrong kind, with a message
    assert list(itertools.chain(api.admin_get("/studies/e2/workers").json["workers"])) == []


def test_worker_table_gives_each_workers_median_seconds_from_lease_to_answer(make_app, backend, clock, api_client):
    app = make_app(db=backend, CLOCK=clock)
    api = api_client(app)
    api.create_study(name="ms", kind="labeling", task="humor", labels_per_item=3)
    assert api.add_items("ms", examples=[{"id": f"t{i}", "text": f"joke {i}"} for i in range(5)]).status == 201
    waits = {"fast": [1.25, 2.5, 40.0], "slow": [7.5, 9.25, 11.0, 600.0]}  # medians 2.5 and 10.125
    for worker, seconds in waits.items():
        token = api.session("ms", worker)
        for s in seconds:
            r = api.next("ms", token)
            clock.advance(s)
            assert api.answer(r.json["assignment"], token, label=r.json["labels"][0]).status == 201
    rows = {w["worker_id"]: w for w in api.admin_get("/studies/ms/workers").json["workers"]}
    assert rows["fast"]["median_seconds"] == 2.5 and rows["slow"]["median_seconds"] == 10.125
    assert [w["worker_id"] for w in api.admin_get("/studies/ms/workers?limit=1").json["workers"]] == ["slow"]


def test_worker_table_medians_on_sqlite_read_only_the_answer_times_index(make_app, clock, api_client):
    """The medians of a page of workers come out of the covering index of migration 0006, a worker's
    answers side by side, with no lookup of a slot row per answer (257 ms at a million slots without it)."""
    app = make_app(db="sqlite", CLOCK=clock)
    api = api_client(app)
    api.create_study(name="ix", kind="labeling", task="humor", labels_per_item=2)
    assert api.add_items("ix", examples=[{"id": f"t{i}", "text": f"joke {i}"} for i in range(3)]).status == 201
    for worker in ("a", "b"):
        token = api.session("ix", worker)
        r = api.next("ix", token)
        clock.advance(3.0)
        assert api.answer(r.json["assignment"], token, label=r.json["labels"][0]).status == 201
    engine = get_state(app).engine
    statements = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if "julianday" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        rows = api.admin_get("/studies/ix/workers?limit=10").json["workers"]
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert [w["median_seconds"] for w in rows] == [3.0, 3.0]
    assert len(statements) == 1
    statement, parameters = statements[0]
    with engine.connect() as conn:
        plan = " | ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
    assert "USING COVERING INDEX ix_assignment_answer_times" in plan, plan
