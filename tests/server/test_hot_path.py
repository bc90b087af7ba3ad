"""The worker hot path stays cheap: a bounded number of SQL statements per next + answer (and per
answer?next=1), planner statistics right after a bulk add, the single-statement paths (claim, answer,
attention checks) correct on both databases, and `db.FastStatement` (the driver-level execution of the hot
statements) returns what SQLAlchemy returns and raises SQLAlchemy's errors."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Integer, String, bindparam, cast, event, func, select, text
from sqlalchemy.exc import DataError

from annotation_server.app import get_state
from annotation_server.db import FastStatement, autocommit, session_scope
from annotation_server.models import Assignment, GoldAnswer, GoldItem, Item, Study, TaskPair
from subjlab.data import load_split
from subjlab.tasks import REGISTRY

#: The regression guard: statements for one `next` + one answer (SQLite counts its BEGIN/COMMIT too).
MAX_STATEMENTS_PER_CYCLE = 8


class StatementCounter:
    """Counts the SQL statements an app's engines send (every cursor execute: queries, BEGIN, COMMIT)."""

    def __init__(self, app):
        state = get_state(app)
        self.engines, self.statements = {state.engine, state.hot_engine}, []
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append(statement)

    def take(self) -> list[str]:
        out, self.statements = self.statements, []
        return out

    def close(self) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._seen)


@pytest.fixture
def counted(db_app):
    counter = StatementCounter(db_app)
    yield db_app, counter
    counter.close()


def _cycles(api, counter, study, token, choose, n):
    """Run `n` next+answer cycles; return the statements each cycle took."""
    per_cycle = []
    for _ in range(n):
        counter.take()
        r = api.next(study, token)
        assert r.status == 200, r.text
        reply = api.answer(r.json["assignment"], token, **choose(r.json))
        assert reply.status == 201, reply.text
        per_cycle.append(counter.take())
    return per_cycle


def test_a_labeling_next_and_answer_cycle_takes_at_most_eight_statements(counted, api_client, task_data):
    app, counter = counted
    api = api_client(app)
    api.create_study(name="cheap", kind="labeling", task="sms_spam", labels_per_item=3, max_per_worker=10)
    rows = load_split(REGISTRY["sms_spam"], "test", task_data, limit_per_label=10)
    api.add_items("cheap", examples=[{"id": ex.id, "text": ex.text} for ex in rows])
    token = api.session("cheap", "w1")
    api.next("cheap", token)  # the first request of a token may read the study's metadata into the cache
    api.answer(api.next("cheap", token).json["assignment"], token, label="ham")
    cycles = _cycles(api, counter, "cheap", token, lambda a: {"label": "spam"}, 5)
    sizes = [len(c) for c in cycles]
    assert all(0 < n <= MAX_STATEMENTS_PER_CYCLE for n in sizes), (sizes, cycles[0])
    # the statements worth counting: nothing reads the study or the item row separately any more
    assert not any(s.lstrip().upper().startswith("SELECT STUDY.") for c in cycles for s in c)


def test_a_pairwise_next_and_answer_cycle_takes_at_most_eight_statements(counted, api_client):
    app, counter = counted
    api = api_client(app)
    api.create_study(name="cheap-pw", kind="pairwise", judgments_per_pair=2, examples_per_task=1)
    api.add_items("cheap-pw", tasks=["sms_spam", "humor", "tweet_sarcasm", "reddit_emotion"])
    token = api.session("cheap-pw", "w1")
    first = api.next("cheap-pw", token).json
    api.answer(first["assignment"], token, winner=first["left"]["task"])
    cycles = _cycles(api, counter, "cheap-pw", token, lambda a: {"winner": a["right"]["task"]}, 4)
    sizes = [len(c) for c in cycles]
    assert all(0 < n <= MAX_STATEMENTS_PER_CYCLE for n in sizes), (sizes, cycles[0])
    judged = [json.loads(x) for x in api.admin_get("/studies/cheap-pw/export?what=judgments").text.splitlines()]
    assert len(judged) == 5 and all(j["winner"] in (j["left"], j["right"]) for j in judged)
    with session_scope(get_state(app).engine) as db:
        assert db.scalar(select(func.sum(TaskPair.n_answers))) == 5  # the unit counters moved with the answers


def test_a_bulk_add_leaves_postgres_with_fresh_planner_statistics(make_app, api_client, task_data):
    app = make_app(db="postgres")
    api = api_client(app)
    api.create_study(name="stats", kind="labeling", task="financial_phrasebank", labels_per_item=3)
    rows = load_split(REGISTRY["financial_phrasebank"], "train", task_data)[:400]
    assert api.add_items("stats", examples=[{"id": ex.id, "text": ex.text} for ex in rows]).status == 201
    with session_scope(get_state(app).engine) as db:
        tuples = dict(db.execute(text("SELECT relname, reltuples FROM pg_class WHERE relname IN ('item', 'assignment')")).all())
        n_stats = db.scalar(text("SELECT count(*) FROM pg_stats WHERE tablename = 'assignment'"))
    # ANALYZE ran inside the add's transaction: the planner already knows the real sizes
    assert tuples == {"item": 400, "assignment": 1200} and n_stats > 0


def test_labeling_attention_checks_are_scored_by_the_single_statement_answer(db_app, api_client):
    api = api_client(db_app)
    api.create_study(name="g", kind="labeling", task="sms_spam", labels_per_item=1, gold_every=2)
    api.add_items("g", examples=[{"id": f"i{i}", "text": f"message {i}"} for i in range(3)],
                  gold=[{"id": "g1", "text": "WIN a FREE prize, text now", "answer": "spam"},
                        {"id": "g2", "text": "see you at dinner mum", "answer": "ham"}])
    token = api.session("g", "w1")
    seen = []
    while (r := api.next("g", token)).status == 200:
        seen.append(r.json["item"])
        assert api.answer(r.json["assignment"], token, label="spam").status == 201
    texts = [x["text"] for x in seen]
    # every 2nd unit is a check, each once
    assert len(texts) == 5 and {texts[1], texts[3]} == {"WIN a FREE prize, text now", "see you at dinner mum"}
    with session_scope(get_state(db_app).engine) as db:
        scored = dict(db.execute(select(GoldItem.key, GoldAnswer.correct).join(GoldItem, GoldItem.id == GoldAnswer.gold_id)).all())
        counters = sorted(db.scalars(select(Item.n_answers)))
    assert scored == {"g1": True, "g2": False}
    assert counters == [1, 1, 1]  # checks do not count as answers of real items
    workers = api.admin_get("/studies/g/workers").json["workers"]
    assert (workers[0]["gold_answered"], workers[0]["gold_correct"]) == (2, 1)


def test_pairwise_attention_check_answers_are_scored_on_both_databases(db_app, api_client):
    api = api_client(db_app)
    api.create_study(name="pg", kind="pairwise", judgments_per_pair=1, gold_every=2, examples_per_task=1)
    api.add_items("pg", tasks=["sms_spam", "humor", "tweet_sarcasm"],
                  gold=[{"left": "sms_spam", "right": "humor", "answer": "sms_spam"}])
    token = api.session("pg", "w1")
    n = 0
    while (r := api.next("pg", token)).status == 200:
        a = r.json
        assert api.answer(a["assignment"], token, winner=a["left"]["task"]).status == 201
        n += 1
    assert n == 4  # three pairs and one check
    assert api.admin_get("/studies/pg/progress").json["gold"] == {"answered": 1, "correct": 1, "accuracy": 1.0}
    with session_scope(get_state(db_app).engine) as db:
        assert db.scalar(select(func.count()).select_from(Assignment).where(Assignment.status == "answered")) == 4


def test_a_winner_from_another_pair_is_refused_and_changes_nothing(db_app, api_client):
    api = api_client(db_app)
    api.create_study(name="other", kind="pairwise", judgments_per_pair=1, examples_per_task=1)
    api.add_items("other", tasks=["sms_spam", "humor", "tweet_sarcasm"])
    token = api.session("other", "w1")
    a = api.next("other", token).json
    outsider = ({"sms_spam", "humor", "tweet_sarcasm"} - {a["left"]["task"], a["right"]["task"]}).pop()
    r = api.answer(a["assignment"], token, winner=outsider)
    assert r.status == 422 and r.json["error"]["field"] == "winner"
    assert api.admin_get("/studies/other/progress").json["answered"] == 0
    assert api.answer(a["assignment"], token, winner=a["left"]["task"]).status == 201


def test_an_answer_with_next_takes_at_most_eight_statements(counted, api_client):
    app, counter = counted
    api = api_client(app)
    api.create_study(name="one-trip", kind="labeling", task="sms_spam", labels_per_item=2, max_per_worker=10)
    api.add_items("one-trip", examples=[{"id": f"m{i}", "text": f"message {i}"} for i in range(12)])
    token = api.session("one-trip", "w1")
    current = api.next("one-trip", token).json
    sizes = []
    for _ in range(5):
        counter.take()
        r = api.request("POST", f"/assignments/{current['assignment']}?next=1", token, {"label": "ham"})
        assert r.status == 201, r.text
        sizes.append(len(counter.take()))
        current = r.json["next"]
    assert all(0 < n <= MAX_STATEMENTS_PER_CYCLE for n in sizes), sizes


def test_fast_statements_return_what_sqlalchemy_returns(db_app):
    S = Study.__table__.c
    stmt = select(S.id, S.name, S.created_at).where(S.name == bindparam("n"))
    engine = get_state(db_app).engine
    with session_scope(engine, write=True) as db:
        db.execute(Study.__table__.insert().values(name="fast", kind="labeling", completion_secret="x",
                                                   created_at=func.now()))
    with autocommit(engine) as conn:
        fast = FastStatement(stmt)
        row = fast.first(conn, {"n": "fast"})
        assert tuple(row) == tuple(conn.execute(stmt, {"n": "fast"}).first())
        assert row[2].utcoffset().total_seconds() == 0  # UTCDateTime's result processing was applied
        assert [tuple(r) for r in fast.all(conn, {"n": "fast"})] == [tuple(row)]
        assert fast.first(conn, {"n": "nope"}) is None and fast.all(conn, {"n": "nope"}) == []


def test_a_fast_statement_that_fails_raises_sqlalchemys_error_and_leaves_the_connection_usable(make_app):
    app = make_app(db="postgres")
    bad = FastStatement(select(cast(bindparam("x", type_=String), Integer)))
    with autocommit(get_state(app).engine) as conn:
        with pytest.raises(DataError, match="invalid input syntax for type integer"):
            bad.first(conn, {"x": "not a number"})
        assert tuple(bad.first(conn, {"x": "42"})) == (42,)


def test_on_postgres_next_and_an_answer_with_next_are_one_statement_each(make_app, api_client):
    app = make_app(db="postgres")
    counter = StatementCounter(app)
    try:
        api = api_client(app)
        api.create_study(name="one", kind="labeling", task="sms_spam", labels_per_item=2, max_per_worker=10)
        api.add_items("one", examples=[{"id": f"m{i}", "text": f"message {i}"} for i in range(12)])
        token = api.session("one", "w1")
        api.next("one", token)  # the first request of a token may read the study's metadata into the cache
        counter.take()
        current = api.next("one", token).json  # the held lease, handed back: not the one-statement case
        counter.take()
        r = api.request("POST", f"/assignments/{current['assignment']}", token, {"label": "ham"})
        assert r.status == 201 and len(counter.take()) == 1  # the answer alone
        r = api.next("one", token)
        assert r.status == 200 and len(counter.take()) == 1  # state + claim
        sizes, current = [], r.json
        for _ in range(4):
            r = api.request("POST", f"/assignments/{current['assignment']}?next=1", token, {"label": "spam"})
            assert r.status == 201 and r.json["next"] is not None, r.text
            sizes.append(len(counter.take()))
            current = r.json["next"]
        assert sizes == [1, 1, 1, 1]  # answer + state + claim
    finally:
        counter.close()
    progress = api.admin_get("/studies/one/progress").json
    assert (progress["answered"], progress["active_leases"]) == (5, 1)


def test_on_postgres_a_session_is_one_statement_and_bad_ones_write_nothing(make_app, api_client):
    app = make_app(db="postgres")
    api = api_client(app)
    api.create_study(name="open", kind="labeling", task="sms_spam", labels_per_item=1)
    api.add_items("open", examples=[{"id": "m1", "text": "message"}])
    api.create_study(name="shut", kind="labeling", task="sms_spam", labels_per_item=1)
    assert api.request("POST", "/studies/shut/close", api.admin_token, {}).status == 200
    counter = StatementCounter(app)
    try:
        token = api.session("open", "new-worker")
        assert len(counter.take()) == 1  # worker upsert + session insert in one
        assert api.next("open", token).status == 200  # the token works
        counter.take()
        again = api.session("open", "new-worker")  # an existing worker: a second session, same worker row
        assert again != token and len(counter.take()) == 1
        closed = api.request("POST", "/studies/shut/sessions", None, {"worker_id": "other-worker"})
        unknown = api.request("POST", "/studies/nope/sessions", None, {"worker_id": "other-worker"})
        assert (closed.status, unknown.status) == (409, 404), (closed.text, unknown.text)
    finally:
        counter.close()
    with session_scope(get_state(app).engine) as db:
        workers = list(db.scalars(text("SELECT external_id FROM worker ORDER BY external_id")))
        sessions = db.scalar(text("SELECT count(*) FROM worker_session"))
    assert workers == ["new-worker"] and sessions == 2  # the refused sessions left nothing behind



def test_on_postgres_a_session_racing_the_creation_of_its_worker_uses_that_worker_or_writes_nothing(make_app, api_client):
    # another request is creating worker "racer" (not yet committed): the one-statement session waits on
    # it, then either opens the session for the row it committed or gives up having written nothing (and
    # the general path takes over), never a second worker row or a session without a worker
    import threading

    from annotation_server import sessions
    from annotation_server.clock import utcnow
    from annotation_server.db import autocommit

    app = make_app(db="postgres")
    api = api_client(app)
    api.create_study(name="race", kind="labeling", task="sms_spam", labels_per_item=1)
    api.add_items("race", examples=[{"id": "m1", "text": "message"}])
    state = get_state(app)
    other = state.engine.connect()
    other.execute(text("INSERT INTO worker (external_id, created_at) VALUES ('racer', now())"))  # open transaction
    outcome: list = []

    def fast() -> None:
        with autocommit(state.hot_engine) as conn:
            outcome.append(sessions.start_session_fast(conn, "race", "racer", utcnow()))

    t = threading.Thread(target=fast)
    t.start()
    t.join(1.0)
    assert t.is_alive()  # waiting on the uncommitted worker row
    other.commit()
    other.close()
    t.join(30)
    with session_scope(state.engine) as db:
        owners = list(db.scalars(text("SELECT w.external_id FROM worker_session s JOIN worker w ON w.id = s.worker_id")))
        workers = db.scalar(text("SELECT count(*) FROM worker"))
    # either it saw the committed row and opened the session for it, or it gave up having written nothing
    assert (outcome, owners) in (([None], []), ([outcome[0]], ["racer"])) and workers == 1, (outcome, owners)
    token = outcome[0] or api.session("race", "racer")  # None: the API's general way takes over
    assert api.next("race", token).status == 200


def test_an_attention_check_is_served_with_as_many_statements_as_a_regular_unit(counted, api_client):
    # no timing tell: a check costs what a regular unit costs (PostgreSQL: one statement, for `next` and for
    # an answer with ?next=1; SQLite: the state read and one INSERT, as the state read and one claim)
    app, counter = counted
    api = api_client(app)
    api.create_study(name="tell", kind="labeling", task="sms_spam", labels_per_item=1, gold_every=3)
    gold = {f"check {i}" for i in range(4)}
    api.add_items("tell", examples=[{"id": f"m{i}", "text": f"message {i}"} for i in range(12)],
                  gold=[{"id": f"attention-{i}", "text": f"check {i}", "answer": "ham"} for i in range(4)])
    token = api.session("tell", "w1")
    current = api.next("tell", token).json  # the first request of a token may read the study's metadata
    by_kind: dict[tuple, set[int]] = {}  # (request, the unit answered is a check, the unit served is a check)
    first_check = True  # the first check a process serves reads the study's check texts into its cache, once
    while current is not None:
        counter.take()
        r = api.request("POST", f"/assignments/{current['assignment']}", token, {"label": "ham"})
        assert r.status == 201
        counter.take()
        r = api.next("tell", token)
        if r.status == 204:
            break
        served = r.json
        n = len(counter.take())
        if served["item"]["text"] in gold and first_check:
            first_check = False
        else:
            by_kind.setdefault(("next", None, served["item"]["text"] in gold), set()).add(n)
        r = api.request("POST", f"/assignments/{served['assignment']}?next=1", token, {"label": "ham"})
        assert r.status == 201
        current = r.json["next"]
        n = len(counter.take())
        if current is not None and current["item"]["text"] in gold and first_check:
            first_check = False
        elif current is not None:
            key = ("answer+next", served["item"]["text"] in gold, current["item"]["text"] in gold)
            by_kind.setdefault(key, set()).add(n)
    assert ("next", None, True) in by_kind and ("answer+next", False, True) in by_kind, by_kind
    assert by_kind["next", None, True] == by_kind["next", None, False], by_kind
    assert by_kind["answer+next", False, True] == by_kind["answer+next", False, False], by_kind
    if app.extensions["subjlab"].engine.url.get_backend_name() == "postgresql":
        assert by_kind["next", None, True] == by_kind["answer+next", False, True] == {1}
