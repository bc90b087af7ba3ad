"""Per-answer cost and admin views as a study grows (`python bench/server_load.py --scale`).

For each size (slots: 10k, 100k, 1M by default) and database, a labeling study of size/5 items x 5 labels
is filled straight into the database through the server's own schema (`fill_study`: bulk INSERT ...
SELECT; the bundled Financial PhraseBank texts repeat under new ids `<id>.rN`), with a share of its slots
already answered by earlier workers (`--answered`, default 0.5: half-way through the study, answers spread
evenly over the items as the balanced scheduler spreads them, 25 answers per worker). Then, in this
process through the real app (Flask test client, no HTTP, so that only the server's own cost is
measured):
- per answer: `--cycles` next + answer cycles of fresh workers (strict loop) and answer?next=1 cycles
  (one-trip loop): wall ms per cycle (p50) and CPU ms per cycle (this process, plus PostgreSQL's
  processes);
- the admin views `GET /progress`, `/agreement` and `/workers` (median of `--view-repeats` calls).
The ratio of each figure at the largest size to the smallest is printed at the end.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import text

#: answers per pre-filled worker (the load bench's `max_per_worker`)
PER_WORKER = 25
LABELS_PER_ITEM = 5


@dataclass(frozen=True)
class Filled:
    """A study filled by `fill_study`."""

    name: str
    study_id: int
    items: int
    slots: int
    answered: int
    workers: int
    seconds: float


def _texts(n: int) -> list[tuple[str, str]]:
    """(external id, text) of `n` items: the bundled texts, then the same texts again under `<id>.rN`."""
    from subjlab.data import load_split
    from subjlab.tasks import get_task

    task = get_task("financial_phrasebank")
    real = load_split(task, "train") + load_split(task, "test")
    return [(real[k % len(real)].id + ("" if k < len(real) else f".r{k // len(real)}"), real[k % len(real)].text)
            for k in range(n)]


def _count_to(n: int) -> str:
    """SQL (SQLite and PostgreSQL alike) of a one-column table `k(x)` holding 0 .. n-1."""
    return f"WITH RECURSIVE k(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM k WHERE x < {int(n) - 1})"


def fill_study(engine, study_id: int, n_items: int, answered_share: float, labels: tuple[str, ...],
               now: datetime | None = None) -> Filled:
    """Fill labeling study `study_id` (created through the API, `LABELS_PER_ITEM` labels per item, no items
    yet) with `n_items` items, their slots and `answered_share` of the slots answered, straight in SQL
    through the server's schema. Answers are spread evenly over the items (as the balanced scheduler does),
    in order slot 0 of every item, then slot 1, ...; each worker answered `PER_WORKER` of them, with its own
    session; an item's labels mostly agree (its label, or the next one for one answer in five). The study's
    counters are rebuilt from the rows (`annotation_server.tallies.recount`, when the server keeps them)."""
    from sqlalchemy import DateTime, bindparam

    t0 = time.perf_counter()
    now = now or datetime.now(timezone.utc)
    q, n = LABELS_PER_ITEM, int(n_items)
    answered = int(round(answered_share * n * q))
    n_workers = -(-answered // PER_WORKER)
    pg = engine.dialect.name == "postgresql"
    as_json = "CAST('{}' AS JSON)" if pg else "'{}'"
    text_rows = _texts(min(n, 1200))
    times = {"now": now, "leased": now - timedelta(hours=1), "done": now - timedelta(hours=1) + timedelta(seconds=10)}
    typed = [bindparam(k, type_=DateTime(timezone=True)) for k in times]
    k, s = f"(item_id - {{lo}})", "slot"  # the item's index and the slot, in the label expression below
    label_of = (f"CASE ({k} + CASE WHEN ({k} * 7 + {s} * 13) % 5 = 0 THEN 1 ELSE 0 END) % {len(labels)} "
                + " ".join(f"WHEN {i} THEN '{lab}'" for i, lab in enumerate(labels)) + " END")
    with engine.begin() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE fill_text (x INTEGER PRIMARY KEY, ext VARCHAR(200), body TEXT)"))
        conn.execute(text("INSERT INTO fill_text (x, ext, body) VALUES (:x, :ext, :body)"),
                     [{"x": i, "ext": e, "body": b} for i, (e, b) in enumerate(text_rows)])
        m = len(text_rows)
        conn.execute(text(
            f"{_count_to(n)} INSERT INTO item (study_id, external_id, text, extra, n_answers, created_at) "
            f"SELECT :sid, t.ext || CASE WHEN k.x < {m} THEN '' ELSE '.r' || CAST(k.x / {m} AS VARCHAR(12)) END, "
            f"t.body, {as_json}, 0, :now FROM k JOIN fill_text t ON t.x = k.x % {m} ORDER BY k.x"
        ).bindparams(*typed[:1]), {"sid": study_id, "now": now})
        conn.execute(text("DROP TABLE fill_text"))
        lo, hi = conn.execute(text("SELECT min(id), max(id) FROM item WHERE study_id = :sid"), {"sid": study_id}).one()
        if hi - lo + 1 != n:
            raise RuntimeError(f"item ids of study {study_id} are not contiguous ({lo}..{hi} for {n} items)")
        conn.execute(text(
            f"{_count_to(q)} INSERT INTO assignment (study_id, unit_key, slot, item_id, status) "
            "SELECT :sid, 'i' || CAST(i.id AS VARCHAR(20)), k.x, i.id, 'open' FROM item i CROSS JOIN k "
            "WHERE i.study_id = :sid ORDER BY i.id, k.x"), {"sid": study_id})
        if answered:
            conn.execute(text(
                f"{_count_to(n_workers)} INSERT INTO worker (external_id, created_at) "
                "SELECT 'scale-' || CAST(:sid AS VARCHAR(12)) || '-w' || CAST(k.x AS VARCHAR(12)), :now FROM k ORDER BY k.x"
            ).bindparams(*typed[:1]), {"sid": study_id, "now": now})
            w0 = conn.execute(text("SELECT min(id) FROM worker WHERE external_id LIKE :p"),
                              {"p": f"scale-{study_id}-w%"}).scalar()
            conn.execute(text(
                "INSERT INTO worker_session (study_id, worker_id, token_hash, created_at, entry) "
                "SELECT :sid, w.id, 'scale-' || CAST(w.id AS VARCHAR(20)), :now, 'api' FROM worker w "
                "WHERE w.external_id LIKE :p ORDER BY w.id").bindparams(*typed[:1]),
                {"sid": study_id, "now": now, "p": f"scale-{study_id}-w%"})
            s0 = conn.execute(text("SELECT min(id) FROM worker_session WHERE study_id = :sid"), {"sid": study_id}).scalar()
            position = f"(slot * {n} + (item_id - {lo}))"
            conn.execute(text(
                f"UPDATE assignment SET status = 'answered', worker_id = {w0} + {position} / {PER_WORKER}, "
                f"session_id = {s0} + {position} / {PER_WORKER}, leased_at = :leased, "
                f"lease_expires = :done, answered_at = :done WHERE study_id = :sid AND {position} < {answered}"
            ).bindparams(*typed[1:]), {"sid": study_id, **{k: v for k, v in times.items() if k != "now"}})
            conn.execute(text(
                "INSERT INTO label_record (assignment_id, study_id, item_id, worker_id, label, leased_at, created_at) "
                f"SELECT id, study_id, item_id, worker_id, {label_of.format(lo=lo)}, "
                "leased_at, answered_at FROM assignment WHERE study_id = :sid AND status = 'answered' "
                "ORDER BY slot, item_id"), {"sid": study_id})
            conn.execute(text(
                f"UPDATE item SET n_answers = {answered // n} + CASE WHEN id - {lo} < {answered % n} THEN 1 ELSE 0 END "
                "WHERE study_id = :sid"), {"sid": study_id})
        _recount(conn, study_id)
    settle(engine)
    return Filled(name="", study_id=study_id, items=n, slots=n * q, answered=answered, workers=n_workers,
                  seconds=time.perf_counter() - t0)


def settle(engine) -> None:
    """After a bulk load, do the database's upkeep before measuring, so that it is not billed to the answers:
    PostgreSQL vacuums and analyzes the filled tables (autovacuum would otherwise run through a million new
    rows, and set their hint bits, during the measured cycles) and checkpoints; SQLite checkpoints its WAL."""
    if engine.dialect.name != "postgresql":
        import sqlite3

        # a connection of its own: an AUTOCOMMIT connection handed back to the app's pool leaves it in a
        # transaction mode the server's SQLite connections do not expect
        with sqlite3.connect(engine.url.database) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) item, assignment, label_record, worker, worker_session, worker_stats, "
                          "study_tally, study"))
        conn.execute(text("CHECKPOINT"))


def _recount(conn, study_id: int) -> None:
    """Rebuild the study's incremental counters from its rows, if the server keeps any."""
    try:
        from annotation_server import tallies
    except ImportError:  # a server without incremental counters (the A/B baseline)
        return
    tallies.recount(conn, study_id)


@dataclass
class Cycles:
    """Per-answer figures of one loop kind at one size."""

    loop: str
    wall_ms: list[float]
    cpu_ms: float  # this process, per cycle
    db_cpu_ms: float  # PostgreSQL's processes, per cycle (0 on SQLite)
    statement_counts: list[int]  # SQL statements of each cycle

    @property
    def statements(self) -> float:
        """Median SQL statements per cycle."""
        return statistics.median(self.statement_counts)

    @property
    def p50(self) -> float:
        return statistics.median(self.wall_ms)

    @property
    def total_cpu(self) -> float:
        return self.cpu_ms + self.db_cpu_ms


def run_cycles(client, admin: dict, name: str, cycles: int, one_trip: bool, tag: str,
               db_cpu: Callable[[], float], statements: list) -> Cycles:
    """`cycles` next + answer cycles (or answer?next=1 with `one_trip`) by fresh workers of `PER_WORKER`
    answers each, through the app's test client; wall time per cycle, CPU per cycle. `statements` is a list
    the caller's engine listener appends to for every SQL statement (emptied before each cycle)."""
    wall, counts = [], []
    token, k, done, pending = None, 0, 0, None
    cpu0, db0 = time.process_time(), db_cpu()
    while done < cycles:
        if token is None:
            k += 1
            r = client.post(f"/api/v1/studies/{name}/sessions", json={"worker_id": f"{tag}-{k}"})
            token = r.get_json()["token"]
        h = {"Authorization": f"Bearer {token}"}
        del statements[:]
        t0 = time.perf_counter()
        if pending is None:
            r = client.get(f"/api/v1/studies/{name}/next", headers=h)
            if r.status_code == 204:
                token = None
                continue
            pending = r.get_json()
        a, pending = pending, None
        r = client.post(f"/api/v1/assignments/{a['assignment']}" + ("?next=1" if one_trip else ""), headers=h,
                        json={"label": a["labels"][0]})
        wall.append(1000 * (time.perf_counter() - t0))
        counts.append(len(statements))
        if r.status_code != 201:
            raise RuntimeError(f"answer refused: {r.status_code} {r.get_data(as_text=True)[:200]}")
        done += 1
        if one_trip:
            pending = r.get_json()["next"]
        if done % PER_WORKER == 0 or (one_trip and pending is None):
            token, pending = None, None
    cpu = 1000 * (time.process_time() - cpu0) / cycles
    return Cycles("one-trip" if one_trip else "strict", wall, cpu, 1000 * (db_cpu() - db0) / cycles,
                  counts)


VIEWS = ("progress", "agreement", "workers")


def time_views(client, admin: dict, name: str, repeats: int) -> dict[str, float]:
    """Median ms of each admin view (`VIEWS`) over `repeats` calls (after one call to warm caches up)."""
    out = {}
    for view in VIEWS:
        r = client.get(f"/api/v1/studies/{name}/{view}", headers=admin)
        if r.status_code != 200:
            raise RuntimeError(f"{view}: {r.status_code} {r.get_data(as_text=True)[:200]}")
        took = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            client.get(f"/api/v1/studies/{name}/{view}", headers=admin)
            took.append(1000 * (time.perf_counter() - t0))
        out[view] = statistics.median(took)
    return out


@dataclass
class SizeResult:
    """Everything measured at one size on one database."""

    db: str
    filled: Filled
    cycles: list[Cycles]
    views: dict[str, float]


def measure_size(db: str, app, client, admin: dict, size: int, cycles: int, repeats: int, answered: float,
                 db_cpu: Callable[[], float], statements: list) -> SizeResult:
    """Create a study of `size` slots through the API, fill it (`fill_study`), then time answers and views."""
    from annotation_server.state import get_state

    name = f"scale-{size}"
    r = client.post("/api/v1/studies", headers=admin, json={
        "name": name, "kind": "labeling", "task": "financial_phrasebank", "labels_per_item": LABELS_PER_ITEM,
        "max_per_worker": PER_WORKER})
    if r.status_code != 201:
        raise RuntimeError(f"create {name}: {r.status_code} {r.get_data(as_text=True)[:200]}")
    from annotation_server.models import Study
    from sqlalchemy import select

    with get_state(app).engine.connect() as conn:
        study_id = conn.execute(select(Study.__table__.c.id).where(Study.__table__.c.name == name)).scalar_one()
    from subjlab.tasks import get_task

    labels = tuple(get_task("financial_phrasebank").labels)
    filled = fill_study(get_state(app).engine, study_id, size // LABELS_PER_ITEM, answered, labels)
    filled = Filled(name, filled.study_id, filled.items, filled.slots, filled.answered, filled.workers, filled.seconds)
    loops = [run_cycles(client, admin, name, cycles, one_trip, f"{name}-{'o' if one_trip else 's'}", db_cpu,
                        statements) for one_trip in (False, True)]
    return SizeResult(db, filled, loops, time_views(client, admin, name, repeats))


def print_result(r: SizeResult) -> None:
    f = r.filled
    for c in r.cycles:
        print(f"{r.db:<9}{f.slots:>9,} {c.loop:<9}{c.p50:>8.2f} {c.cpu_ms:>8.2f} {c.db_cpu_ms:>8.2f} "
              f"{c.total_cpu:>8.2f} {c.statements:>5.0f}", flush=True)
    print(f"{'':<9}{'':>9} views    " + "  ".join(f"{v} {ms:.1f} ms" for v, ms in r.views.items())
          + f"   (filled {f.items:,} items, {f.answered:,} answers by {f.workers:,} workers in {f.seconds:.0f} s)",
          flush=True)


def print_ratios(results: list[SizeResult]) -> None:
    """Largest size against smallest, per database: per-answer wall and CPU, and views."""
    for db in dict.fromkeys(r.db for r in results):
        rs = sorted((r for r in results if r.db == db), key=lambda r: r.filled.slots)
        if len(rs) < 2:
            continue
        lo, hi = rs[0], rs[-1]
        for c_lo, c_hi in zip(lo.cycles, hi.cycles):
            print(f"{db:<9}{c_hi.loop:<9} per answer at {hi.filled.slots:,} / {lo.filled.slots:,} slots: "
                  f"wall p50 {c_hi.p50 / c_lo.p50:.2f}x, CPU {c_hi.total_cpu / c_lo.total_cpu:.2f}x (target <= 1.3x)")
        worst = max(hi.views.values())
        print(f"{db:<9}admin views at {hi.filled.slots:,} slots: slowest {worst:.1f} ms (target < 200 ms) "
              f"=> {'OK' if worst < 200 else 'OVER'}", flush=True)


def run(db: str, db_url: str, sizes: list[int], cycles: int, repeats: int, answered: float,
        db_cpu: Callable[[], float], admin_token: str) -> list[SizeResult]:
    """All sizes on one fresh database (`db_url`), smallest first; print a row per size and loop."""
    from sqlalchemy import event

    from annotation_server.app import create_app
    from annotation_server.state import get_state
    from annotation_server.schema import upgrade

    upgrade(db_url)
    app = create_app({"DATABASE_URL": db_url, "ADMIN_TOKEN": admin_token})
    statements: list = []
    for engine in {get_state(app).engine, get_state(app).hot_engine}:
        event.listen(engine, "before_cursor_execute", lambda *a: statements.append(1))
    client, admin = app.test_client(), {"Authorization": f"Bearer {admin_token}"}
    results = []
    try:
        for size in sizes:
            results.append(measure_size(db, app, client, admin, size, cycles, repeats, answered, db_cpu, statements))
            print_result(results[-1])
    finally:
        get_state(app).dispose()
    return results


def print_header() -> None:
    print(f"{'db':<9}{'slots':>9} {'loop':<9}{'p50 ms':>8} {'app CPU':>8} {'db CPU':>8} {'CPU/ans':>8} {'stmts':>5}"
          "   (per next+answer cycle, or per answer?next=1; CPU in ms)", flush=True)
