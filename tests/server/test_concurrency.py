"""Many workers at once: quotas are never over-filled and no assignment is handed out twice."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from annotation_server.state import get_state
from annotation_server.db import session_scope
from annotation_server.models import Assignment, LabelRecord


def _parallel(n: int, fn):
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_simultaneous_next_requests_never_overfill_an_item(db_app, api_client):
    api = api_client(db_app)
    api.create_study(name="race", kind="labeling", task="sms_spam", labels_per_item=3)
    api.add_items("race", examples=[{"id": "only", "text": "the one item everybody wants"}])
    tokens = [api.session("race", f"w{i}") for i in range(12)]
    replies = _parallel(12, lambda i: api_client(db_app).next("race", tokens[i]))
    statuses = Counter(r.status for r in replies)
    assert statuses == {200: 3, 204: 9}
    ids = [r.json["assignment"] for r in replies if r.status == 200]
    assert len(set(ids)) == 3  # three distinct slots, each to one worker


def test_many_workers_labeling_at_once_fill_each_item_exactly_k_times(db_app, api_client):
    api = api_client(db_app)
    api.create_study(name="crowd", kind="labeling", task="sms_spam", labels_per_item=2)
    api.add_items("crowd", examples=[{"id": f"i{i}", "text": f"message {i}"} for i in range(10)])
    tokens = [api.session("crowd", f"w{i}") for i in range(16)]
    handed: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work(i):
        client, statuses = api_client(db_app), []
        while True:
            r = client.next("crowd", tokens[i])
            statuses.append(r.status)
            if r.status != 200:
                return statuses
            with lock:
                handed.append((i, r.json["assignment"]))
            statuses.append(client.answer(r.json["assignment"], tokens[i], label="ham").status)

    results = _parallel(16, work)
    assert set(s for statuses in results for s in statuses) <= {200, 201, 204}
    assert len(handed) == len({a for _, a in handed}) == 20  # no slot handed out twice
    with session_scope(get_state(db_app).engine) as db:
        per_item = db.execute(select(LabelRecord.item_id, func.count()).group_by(LabelRecord.item_id)).all()
        pairs = db.execute(select(LabelRecord.item_id, LabelRecord.worker_id)).all()
        answered = db.scalar(select(func.count()).select_from(Assignment).where(Assignment.status == "answered"))
    assert len(per_item) == 10 and {n for _, n in per_item} == {2}
    assert len(pairs) == len(set(pairs)) == 20 and answered == 20


def test_the_same_answer_posted_many_times_at_once_is_stored_once(db_app, api_client):
    api = api_client(db_app)
    api.create_study(name="dup", kind="pairwise", judgments_per_pair=1, examples_per_task=1)
    api.add_items("dup", tasks=["sms_spam", "humor"])
    token = api.session("dup", "w1")
    a = api.next("dup", token).json
    replies = _parallel(8, lambda i: api_client(db_app).answer(a["assignment"], token, winner=a["left"]["task"]))
    assert {r.status for r in replies} == {201} and len({r.text for r in replies}) == 1
    assert api.admin_get("/studies/dup/progress").json["answered"] == 1
