"""Against a real server process: `subjlab serve` (gunicorn) on 127.0.0.1, over SQLite and PostgreSQL."""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest


def test_a_pairwise_study_end_to_end_over_http(live_server, api_client):
    api = api_client(live_server.url)
    assert api.create_study(name="live-pw", kind="pairwise", judgments_per_pair=2, examples_per_task=1).status == 201
    assert api.add_items("live-pw", tasks=["sms_spam", "humor", "tweet_sarcasm"]).status == 201
    token = api.session("live-pw", "w1")
    answered = []
    while (r := api.next("live-pw", token)).status == 200:
        assert r.headers["Server"].startswith("gunicorn")
        reply = api.answer(r.json["assignment"], token, winner=r.json["right"]["task"])
        assert reply.status == 201
        answered.append((r.json["left"]["task"], r.json["right"]["task"]))
    assert r.status == 204 and len(answered) == 3
    lines = [json.loads(x) for x in api.admin_get("/studies/live-pw/export?what=judgments").text.splitlines()]
    assert [(j["left"], j["right"], j["winner"]) for j in lines] == [(a, b, b) for a, b in answered]
    me = api.request("GET", "/studies/live-pw/me", token).json
    assert me["finished"] and me["completion_code"]


def test_parallel_workers_across_gunicorn_processes_never_overfill(live_server, api_client):
    admin = api_client(live_server.url)
    admin.create_study(name="live-lab", kind="labeling", task="sms_spam", labels_per_item=3)
    admin.add_items("live-lab", examples=[{"id": f"i{i}", "text": f"message {i}"} for i in range(8)])
    tokens = [admin.session("live-lab", f"w{i}") for i in range(10)]
    barrier = threading.Barrier(10)

    def work(i):
        api, got = api_client(live_server.url), []
        barrier.wait()
        while (r := api.next("live-lab", tokens[i])).status == 200:
            got.append(r.json["assignment"])
            assert api.answer(r.json["assignment"], tokens[i], label="spam").status == 201
        assert r.status == 204
        return got

    with ThreadPoolExecutor(10) as pool:
        handed = [a for got in pool.map(work, range(10)) for a in got]
    assert len(handed) == len(set(handed)) == 24
    labels = [json.loads(x) for x in admin.admin_get("/studies/live-lab/export?what=labels").text.splitlines()]
    per_item = {}
    for lab in labels:
        per_item.setdefault(lab["item"], set()).add(lab["worker"])
    assert len(labels) == 24 and all(len(w) == 3 for w in per_item.values()) and len(per_item) == 8


@pytest.mark.postgres
def test_postgres_server_reissues_expired_leases_and_keeps_acknowledged_answers_through_kill_9(
        start_live_server, pg_server, api_client):
    db_url = pg_server.create_database("live_crash")
    server = start_live_server(db_url, lease_seconds=1)
    api = api_client(server.url)
    api.create_study(name="crash", kind="labeling", task="sms_spam", labels_per_item=2)
    api.add_items("crash", examples=[{"id": f"i{i}", "text": f"message {i}"} for i in range(40)])
    # an abandoned lease comes back after its expiry, to another worker
    api.create_study(name="solo", kind="labeling", task="sms_spam", labels_per_item=1)
    api.add_items("solo", examples=[{"id": "only", "text": "one item"}])
    quitter, other = api.session("solo", "quitter"), api.session("solo", "other")
    held = api.next("solo", quitter).json
    assert api.next("solo", other).status == 204
    time.sleep(1.3)
    assert api.next("solo", other).json["assignment"] == held["assignment"]
    assert api.answer(held["assignment"], quitter, label="ham").status == 409
    # workers answer in parallel while the server is killed with SIGKILL
    tokens = [api.session("crash", f"w{i}") for i in range(4)]
    acked, stop = [], threading.Event()

    def work(i):
        client = api_client(server.url)
        while not stop.is_set():
            try:
                r = client.next("crash", tokens[i])
                if r.status != 200:
                    return
                if client.answer(r.json["assignment"], tokens[i], label="spam").status == 201:
                    acked.append((r.json["assignment"], f"w{i}"))
            except Exception:  # the connection dies with the server
                return

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(work, i) for i in range(4)]
        time.sleep(1.5)
        server.stop(signal.SIGKILL)
        stop.set()
        for f in futures:
            f.result()
    assert acked, "no answer was acknowledged before the kill"
    # what the killed server acknowledged is in the database, and its cut-off leases expire
    from annotation_server.clock import utcnow
    from annotation_server.db import make_engine, session_scope
    from annotation_server.export import export_records
    from annotation_server.progress import study_progress

    engine = make_engine(db_url)
    try:
        with session_scope(engine) as db:
            persisted = {(x.extra["assignment"], x.worker) for x in export_records(db, "crash", "labels")}
            assert set(acked) <= persisted  # no acknowledged answer is missing
            later = utcnow() + timedelta(seconds=1.1)
            assert study_progress(db, "crash", later)["active_leases"] == 0  # nothing stays stuck
    finally:
        engine.dispose()
