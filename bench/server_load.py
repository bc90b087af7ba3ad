"""Load and crash benchmark for the annotation server (loopback only, bounded in time and count).

For each database (SQLite file, and a throwaway PostgreSQL cluster started here), the script starts the
real server (`subjlab serve`: gunicorn, several worker processes with threads) on 127.0.0.1, creates one labeling study per load level over real AG News texts, and lets N
simulated workers (threads, one keep-alive connection each) loop, new session when nothing is left:
- `strict` (issue 3's loop): session -> next -> answer, each its own request;
- `one-trip` (what the worker pages do): each answer asks for the next assignment in the same reply
  (`POST /assignments/{id}?next=1`), so a unit costs one request instead of two.
`--loop both` (the default) runs every level with each loop, on separate fresh studies, and labels each
row. Per level it prints accepted answers/s and p50/p95/p99 latency of every request after a warm-up
(`--warmup`, default 1 s: all simulated workers start in the same instant, so the first second is a burst
of sessions; the whole run's p99 is printed below the row), errors, and acknowledged vs persisted answers
over the whole run (persisted = the admin export; every acknowledged (assignment, worker, label) must be in it,
and nothing else).

Then the crash test: a small study with short leases under load, `kill -9` of the whole server process
group mid-load, a restart on the same port, and the workers go on (answers whose reply was lost are
re-sent; answers are idempotent) until the study is full. Checked: no acknowledged answer is missing,
no duplicate (item, worker), every slot answered (so leases held by the killed server expired and were
re-issued), and no lease left active.

    python bench/server_load.py [--db sqlite|postgres|both] [--workers 1,8,32,64] [--seconds 10]
                                [--loop strict|one-trip|both] [--server-workers 2] [--threads 8]

Each load level also prints the CPU time per accepted answer of the server (gunicorn), PostgreSQL and
the load generator, which disturbance from other work on a shared machine changes far less than rates
and latencies, and the spread of the mean latency per simulated worker (how evenly clients are served).
`--floor` first measures what gunicorn + Flask cost per request with no work of our own (a JSON echo
app under the same settings and load). `--statements` loads pg_stat_statements into the throwaway cluster and prints, per level, the statements
PostgreSQL ran per accepted answer and their mean execution time. `--in-process` first runs the hot path inside this process (Flask's test client, one
worker, no HTTP) and prints SQL statements and CPU milliseconds per next + answer cycle (strict) and
per answer?next=1 cycle (one-trip).

The load-generator threads run niced (`--nice`, default +10; the server at normal priority). The
machine may be shared: the load average is printed. Latencies are measured by the client, on the
same cores as the server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import socket
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from annotation_server.testing import free_port, start_postgres  # noqa: E402
ADMIN_TOKEN = "bench-admin-token"
TASK = "financial_phrasebank"  # bundled with the package: the bench needs nothing beside the checkout
STARTUP_TIMEOUT_S = 60.0


# --- servers -------------------------------------------------------------------------------------


class Server:
    """`subjlab serve` (gunicorn, gthread workers) on 127.0.0.1:<port>, in its own process group.

    `serve` upgrades the schema (Alembic) before it starts, as in production."""

    def __init__(self, db_url: str, port: int, workers: int, threads: int, lease_seconds: int, log: Path):
        self.db_url, self.port, self.workers, self.threads = db_url, port, workers, threads
        self.lease_seconds, self.log = lease_seconds, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        """Start gunicorn and wait until /api/v1/health answers; return self."""
        env = dict(os.environ, SUBJLAB_ADMIN_TOKEN=ADMIN_TOKEN, SUBJLAB_SECRET_KEY="bench-secret-key")
        cmd = [sys.executable, "-m", "subjlab.cli", "serve", "--db", self.db_url, "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", str(self.workers), "--threads", str(self.threads),
               "--lease-seconds", str(self.lease_seconds)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill9()
        raise RuntimeError(f"server did not answer within {STARTUP_TIMEOUT_S} s; see {self.log}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill9(self) -> None:
        """SIGKILL the whole process group (master and workers): a crash, no clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill9()


# --- CPU accounting ------------------------------------------------------------------------------
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _processes() -> Iterator[tuple[int, int, int, float, float]]:
    """(pid, ppid, process group, own CPU s, CPU s of reaped children) of every process (Linux /proc)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2:].split()
        yield (int(entry.name), int(rest[1]), int(rest[2]), (int(rest[11]) + int(rest[12])) / CLK_TCK,
               (int(rest[13]) + int(rest[14])) / CLK_TCK)


class CpuMeter:
    """CPU seconds used so far by the server (gunicorn's process group), PostgreSQL (the postmaster and its
    children) and this load generator. Differences over a run, divided by the answers, give CPU per answer:
    a figure that other work on a shared machine disturbs far less than rates and latencies."""

    def __init__(self, server_pgrp: int, postmaster_pid: int | None):
        self.server_pgrp, self.postmaster_pid = server_pgrp, postmaster_pid

    def snapshot(self) -> dict[str, float]:
        out = {"server": 0.0, "postgres": 0.0, "client": time.process_time()}
        for pid, ppid, pgrp, own, reaped in _processes():
            if pgrp == self.server_pgrp:
                out["server"] += own + (reaped if pid == self.server_pgrp else 0.0)
            if self.postmaster_pid is not None and (pid == self.postmaster_pid or ppid == self.postmaster_pid):
                out["postgres"] += own + (reaped if pid == self.postmaster_pid else 0.0)
        return out


def postmaster_pid(db_url: str) -> int | None:
    """The PostgreSQL server's pid, for a database URL of a cluster started by this script (else None)."""
    return _POSTMASTERS.get(db_url)


_POSTMASTERS: dict[str, int] = {}


# --- the study -----------------------------------------------------------------------------------


def admin_client(url: str) -> httpx.Client:
    """Return an httpx client for `url` with the admin token."""
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60.0)


def bench_examples(n_items: int) -> list:
    """The first `n_items` real texts of TASK (train, then test); when the bundled slice has fewer, the
    texts repeat under new ids (`<id>#2`, ...): the server's cost does not depend on which text it is."""
    from subjlab.data import load_split
    from subjlab.tasks import get_task

    real = load_split(get_task(TASK), "train") + load_split(get_task(TASK), "test")
    out = []
    for k in range(n_items):
        ex = real[k % len(real)]
        out.append(ex if k < len(real) else type(ex)(id=f"{ex.id}.r{k // len(real) + 1}", text=ex.text, label=ex.label))
    return out


def create_study(url: str, name: str, n_items: int, labels_per_item: int, max_per_worker: int) -> int:
    """Create a labeling study over `n_items` real TASK texts (`bench_examples`); return its slot count."""
    examples = bench_examples(n_items)
    with admin_client(url) as admin:
        r = admin.post("/api/v1/studies", json={"name": name, "kind": "labeling", "task": TASK,
                                                "labels_per_item": labels_per_item,
                                                "max_per_worker": max_per_worker})
        r.raise_for_status()
        r = admin.post(f"/api/v1/studies/{name}/items",
                       json={"examples": [{"id": e.id, "text": e.text} for e in examples]})
        r.raise_for_status()
        return labels_per_item * int(r.json()["units"])


def export_labels(url: str, name: str) -> list[dict]:
    """Return the study's exported label records."""
    with admin_client(url) as admin:
        r = admin.get(f"/api/v1/studies/{name}/export", params={"what": "labels"})
        r.raise_for_status()
        return [json.loads(line) for line in r.text.splitlines() if line.strip()]


def study_progress(url: str, name: str) -> dict:
    """Return the study's progress JSON."""
    with admin_client(url) as admin:
        r = admin.get(f"/api/v1/studies/{name}/progress")
        r.raise_for_status()
        return r.json()


# --- the simulated workers -----------------------------------------------------------------------


@dataclass
class Tally:
    """What one simulated worker saw."""

    samples: list[tuple[float, float, str]] = field(default_factory=list)  # (sent at, seconds, operation)
    acked: list[tuple[str, str, str]] = field(default_factory=list)  # (assignment handle, worker, label)
    acked_at: list[float] = field(default_factory=list)  # when each acknowledgement arrived (perf_counter)
    errors: dict[str, int] = field(default_factory=dict)
    sessions: int = 0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def lower_thread_priority(nice: int) -> None:
    """Raise the calling thread's nice value by `nice` (Linux: nice is per thread); no-op elsewhere.

    The load generator runs niced so that it yields the CPU to the server it measures (and to others)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (AttributeError, OSError):
        pass


@dataclass
class Reply:
    """An HTTP reply as the simulated workers see it."""

    status_code: int
    body: bytes

    def json(self):
        return json.loads(self.body)


class KeepAliveClient:
    """A minimal keep-alive HTTP/1.1 client on one socket, for the simulated workers.

    Deliberately small rather than a general client (httpx, http.client): the load generator shares the
    machine's cores with the server it measures, and this costs a fraction of their CPU per request, so
    more of the machine goes to the server and the latencies measured include less client-side work.
    It speaks exactly what this benchmark needs: one request at a time, replies with Content-Length (or
    none, like 204), reconnecting when the server closes. Any connection error closes the socket (the
    next request reconnects) and is raised as `ConnectionError`."""

    def __init__(self, url: str, timeout: float = 30.0):
        parts = urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def request(self, method: str, path: str, json_body=None, headers: dict[str, str] | None = None) -> Reply:
        body = json.dumps(json_body).encode() if json_body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
        if json_body is not None:
            head += "Content-Type: application/json\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        try:
            if self.sock is None:
                self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.buf = b""
            self.sock.sendall(head.encode() + b"\r\n" + body)
            while b"\r\n\r\n" not in self.buf:
                self._fill()
            header, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = header.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            length = int(fields.get("content-length", "0"))
            while len(self.buf) < length:
                self._fill()
            data, self.buf = self.buf[:length], self.buf[length:]
            if fields.get("connection", "").lower() == "close":
                self.close()
            return Reply(status, data)
        except (OSError, ValueError, IndexError) as exc:
            self.close()
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("server closed the connection")
        self.buf += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class SimulatedWorker(threading.Thread):
    """session -> next -> answer until `stop` is set; a new worker id whenever the server says 204.

    Answers are deterministic per item (the label list indexed by a hash of the item id). A POST whose
    reply never came (connection reset by a crash) is re-sent until the server answers: answers are
    idempotent, so this cannot count twice.
    """

    def __init__(self, url: str, study: str, index: int, stop: threading.Event, run: str, nice: int = 0,
                 one_trip: bool = False):
        super().__init__(daemon=True, name=f"sim-{index}")
        self.url, self.study, self.index, self.stop_event, self.run_id = url, study, index, stop, run
        self.nice, self.one_trip = nice, one_trip
        self.tally = Tally()

    def _timed(self, op: str, client: KeepAliveClient, method: str, path: str, **kw) -> Reply:
        t0 = time.perf_counter()
        r = client.request(method, path, **kw)
        self.tally.samples.append((t0, time.perf_counter() - t0, op))
        return r

    def _retry(self, fn: Callable[[], Reply]) -> Reply | None:
        """Call fn until it returns (network errors are counted and retried after 0.2 s); None on stop."""
        while True:
            try:
                return fn()
            except ConnectionError as exc:
                self.tally.error(f"network: {str(exc).split(':')[0]}")
                if self.stop_event.wait(0.2):
                    return None

    def run(self) -> None:  # noqa: C901 - one loop, kept together for readability
        if self.nice:
            lower_thread_priority(self.nice)
        client = KeepAliveClient(self.url)
        try:
            self._loop(client)
        finally:
            client.close()

    def _loop(self, client: KeepAliveClient) -> None:
        """The strict loop (session -> next -> answer, each its own request) or, with `one_trip`, the
        one-round-trip loop: each answer asks for the next assignment in its reply (`?next=1`), so `next`
        is requested on its own only after a new session."""
        token = worker = None
        k = 0
        pending = None  # the next assignment, when the last answer's reply carried it
        answer_query = "?next=1" if self.one_trip else ""
        while not self.stop_event.is_set():
            if token is None:
                k += 1
                worker = f"{self.run_id}-w{self.index}-{k}"
                r = self._retry(lambda: self._timed("session", client, "POST", f"/api/v1/studies/{self.study}/sessions",
                                                    json_body={"worker_id": worker}))
                if r is None:
                    return
                if r.status_code != 201:
                    self.tally.error(f"session {r.status_code}")
                    self.stop_event.wait(0.2)
                    continue
                token = r.json()["token"]
                self.tally.sessions += 1
            headers = {"Authorization": f"Bearer {token}"}
            if pending is not None:
                a, pending = pending, None
            else:
                r = self._retry(lambda: self._timed("next", client, "GET", f"/api/v1/studies/{self.study}/next",
                                                    headers=headers))
                if r is None:
                    return
                if r.status_code == 204:
                    token = None
                    continue
                if r.status_code != 200:
                    self.tally.error(f"next {r.status_code}")
                    self.stop_event.wait(0.2)
                    continue
                a = r.json()
            item, labels = a["assignment"], a["labels"]  # the opaque handle names the unit answered
            label = labels[sum(item.encode()) % len(labels)]
            op = "answer+next" if self.one_trip else "answer"
            r = self._retry(lambda: self._timed(op, client, "POST", f"/api/v1/assignments/{a['assignment']}{answer_query}",
                                                json_body={"label": label}, headers=headers))
            if r is None:
                return
            if r.status_code == 201:
                self.tally.acked.append((item, worker, label))
                self.tally.acked_at.append(time.perf_counter())
                if self.one_trip:
                    pending = r.json()["next"]
                    if pending is None:  # nothing left for this worker: a new session
                        token = None
            elif r.status_code == 409:
                self.tally.error("answer 409 (lease lost)")
            else:
                self.tally.error(f"answer {r.status_code}")


@dataclass
class LoadResult:
    """One load level: rates, latency quantiles and the acknowledged/persisted comparison."""

    workers: int
    seconds: float
    acked: set[tuple[str, str, str]]
    latencies: list[float]
    errors: dict[str, int]
    sessions: int
    by_op: dict[str, list[float]] = field(default_factory=dict)
    persisted: set[tuple[str, str, str]] = field(default_factory=set)
    persisted_rows: int = 0
    persisted_pairs: list[tuple[str, str]] = field(default_factory=list)  # (item, worker) of every exported row
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds used during the run, by part
    loop: str = "strict"  # "strict": session -> next -> answer; "one-trip": answer?next=1 carries the next
    worker_means: list[float] = field(default_factory=list)  # each simulated worker's mean request latency (s)
    warmup: float = 0.0  # seconds at the start left out of the rate and the latencies
    steady_answers: int = 0  # answers acknowledged after the warm-up
    all_latencies: list[float] = field(default_factory=list)  # every request, warm-up included

    @property
    def rate(self) -> float:
        """Accepted answers per second after the warm-up."""
        return self.steady_answers / (self.seconds - self.warmup)

    def quantile_ms(self, q: float, op: str | None = None, whole_run: bool = False) -> float:
        """The q-quantile (0 < q < 1) of the request latencies after the warm-up (of one operation if `op`;
        of every request, warm-up included, with `whole_run`), in ms."""
        values = self.all_latencies if whole_run else self.latencies if op is None else self.by_op.get(op, [])
        if len(values) < 2:
            return 1000 * (values[0] if values else float("nan"))
        return 1000 * statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


def run_load(url: str, study: str, n: int, seconds: float, run: str,
             during: Callable[[threading.Event], None] | None = None,
             until: Callable[[], bool] | None = None, nice: int = 10, meter: CpuMeter | None = None,
             one_trip: bool = False, warmup: float = 0.0) -> LoadResult:
    """Run `n` simulated workers for `seconds` (or until `until()` is true); return the result.

    The first `warmup` seconds (all workers starting at once: n sessions and n first `next` in the same
    instant) are left out of the rate, the latencies and the CPU figures, but not out of the
    acknowledged/persisted check. `during(stop)` runs in the calling thread while the workers run (the
    crash test uses it)."""
    stop = threading.Event()
    cpu0 = meter.snapshot() if meter is not None else {}
    sims = [SimulatedWorker(url, study, i, stop, run, nice, one_trip) for i in range(n)]
    t0 = time.perf_counter()
    for s in sims:
        s.start()
    if during is not None:
        during(stop)
    deadline = t0 + seconds
    if warmup > 0:
        time.sleep(warmup)
        cpu0 = meter.snapshot() if meter is not None else {}
    while time.perf_counter() < deadline and not stop.is_set():
        if until is not None and until():
            break
        time.sleep(1.0 if until is not None else 0.1)
    stop.set()
    for s in sims:
        s.join(60)
    elapsed = time.perf_counter() - t0
    cpu1 = meter.snapshot() if meter is not None else {}
    steady_from = t0 + warmup
    acked: list[tuple[str, str, str]] = []
    latencies: list[float] = []
    by_op: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    for s in sims:
        acked += s.tally.acked
        for sent, took, op in s.tally.samples:
            if sent >= steady_from:
                latencies.append(took)
                by_op.setdefault(op, []).append(took)
        for k, v in s.tally.errors.items():
            errors[k] = errors.get(k, 0) + v
    if len(set(acked)) != len(acked):
        errors["duplicate acknowledgements"] = len(acked) - len(set(acked))
    steady = [[took for sent, took, _ in s.tally.samples if sent >= steady_from] for s in sims]
    return LoadResult(n, elapsed, set(acked), latencies, errors, sum(s.tally.sessions for s in sims), by_op,
                      cpu={k: cpu1[k] - cpu0[k] for k in cpu1}, loop="one-trip" if one_trip else "strict",
                      worker_means=[statistics.fmean(x) for x in steady if x], warmup=warmup,
                      steady_answers=sum(1 for s in sims for at in s.tally.acked_at if at >= steady_from),
                      all_latencies=[took for s in sims for _, took, _ in s.tally.samples])


def check_persisted(url: str, study: str, result: LoadResult) -> None:
    """Fill `result.persisted` from the admin export."""
    rows = export_labels(url, study)
    result.persisted_rows = len(rows)
    result.persisted = {(r["assignment"], r["worker"], r["label"]) for r in rows}
    result.persisted_pairs = [(r["item"], r["worker"]) for r in rows]


# --- in-process profile --------------------------------------------------------------------------


def profile_in_process(db: str, db_url: str, cycles: int = 200) -> None:
    """Run `cycles` next + answer cycles through the app in this process (Flask test client, one worker,
    a new session every 25 answers) on a fresh 2000-item study, then `cycles` one-trip cycles (each answer
    asks for the next assignment, `?next=1`); print statements and CPU ms per cycle of each."""
    from sqlalchemy import event

    from annotation_server.app import create_app, get_state
    from annotation_server.schema import upgrade

    upgrade(db_url)
    app = create_app({"DATABASE_URL": db_url, "ADMIN_TOKEN": ADMIN_TOKEN})
    seen: list[str] = []
    for engine in {get_state(app).engine, get_state(app).hot_engine}:
        event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    client = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    examples = bench_examples(2000)
    client.post("/api/v1/studies", headers=admin, json={"name": "inproc", "kind": "labeling", "task": TASK,
                                                        "labels_per_item": 3, "max_per_worker": 25})
    client.post("/api/v1/studies/inproc/items", headers=admin,
                json={"examples": [{"id": e.id, "text": e.text} for e in examples]})
    meter = CpuMeter(-1, postmaster_pid(db_url))
    for one_trip in (False, True):
        statements, k, token, done, pending = [], 0, None, 0, None
        cpu0, pg0, t0 = time.process_time(), meter.snapshot()["postgres"], time.perf_counter()
        while done < cycles:
            if token is None:
                k += 1
                token = client.post("/api/v1/studies/inproc/sessions",
                                    json={"worker_id": f"p{k}" + ("-1trip" if one_trip else "")}).get_json()["token"]
            h = {"Authorization": f"Bearer {token}"}
            del seen[:]  # count the statements of next + answer (sessions come once per 25 answers)
            if pending is None:
                r = client.get("/api/v1/studies/inproc/next", headers=h)
                if r.status_code == 204:
                    token = None
                    continue
                pending = r.get_json()
            a, pending = pending, None
            r = client.post(f"/api/v1/assignments/{a['assignment']}" + ("?next=1" if one_trip else ""), headers=h,
                            json={"label": a["labels"][0]})
            assert r.status_code == 201, r.get_data(as_text=True)
            if one_trip:
                pending = r.get_json()["next"]
                token = token if pending is not None else None
            statements.append(len(seen))
            done += 1
        cpu = 1000 * (time.process_time() - cpu0) / cycles
        pg_cpu = 1000 * (meter.snapshot()["postgres"] - pg0) / cycles
        wall = 1000 * (time.perf_counter() - t0) / cycles
        what = "answer?next=1 (one-trip)" if one_trip else "next + answer (strict)"
        print(f"{db:<9}in-process: {statistics.median(statements):.0f} SQL statements per {what} (max "
              f"{max(statements)}); app CPU {cpu:.2f} ms, PostgreSQL CPU {pg_cpu:.2f} ms, wall {wall:.2f} ms per "
              f"cycle (incl. a session every 25 answers)", flush=True)
    get_state(app).dispose()


# --- the framework floor -------------------------------------------------------------------------

FLOOR_APP = """
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/answer")
def answer():  # what the one-trip answer does minus the database: parse a JSON body, reply with JSON
    body = request.get_json()
    return jsonify({"assignment": 1, "kind": "labeling", "label": body["label"], "next": {"text": "x" * 300}}), 201
"""


def framework_floor(n: int, seconds: float, threads: int, workers: int, nice: int, root: Path) -> None:
    """Run a Flask app that only parses and returns JSON under gunicorn with `subjlab serve`'s settings and
    the same load generator (`n` keep-alive clients); print requests/s and the server's CPU per request:
    what any request of the real server costs before it does any work of its own."""
    from annotation_server.wsgi import connections_per_worker

    (root / "floor_app.py").write_text(FLOOR_APP)
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--chdir", str(root), "-b", f"127.0.0.1:{port}", "-w", str(workers),
           "--threads", str(threads), "-k", "gthread", "--worker-connections", str(connections_per_worker(threads)),
           "--keep-alive", "5", "--log-level", "warning", "floor_app:app"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the framework-floor server did not start") from None
                time.sleep(0.1)
        time.sleep(1.0)  # every worker process up
        meter, stop, latencies = CpuMeter(proc.pid, None), threading.Event(), []

        def client() -> None:
            lower_thread_priority(nice)
            c = KeepAliveClient(f"http://127.0.0.1:{port}")
            while not stop.is_set():
                t0 = time.perf_counter()
                c.request("POST", "/answer", json_body={"label": "World"})
                latencies.append(time.perf_counter() - t0)
            c.close()

        cpu0, t0 = meter.snapshot(), time.perf_counter()
        threads_ = [threading.Thread(target=client, daemon=True) for _ in range(n)]
        for t in threads_:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads_:
            t.join(30)
        elapsed, cpu1 = time.perf_counter() - t0, meter.snapshot()
        done = len(latencies)
        print(f"framework floor (Flask JSON in/out, no database, gunicorn {workers} x {threads}, {n} clients): "
              f"{done / elapsed:.0f} requests/s, server CPU {1000 * (cpu1['server'] - cpu0['server']) / max(done, 1):.2f} ms "
              f"per request", flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


# --- the runs ------------------------------------------------------------------------------------


@contextmanager
def database(kind: str, root: Path, statements: bool = False) -> Iterator[str]:
    """Yield a fresh database URL of `kind` ("sqlite" or "postgres") under `root`; clean up after.
    `statements`: PostgreSQL with pg_stat_statements loaded (see `statement_stats`)."""
    if kind == "sqlite":
        yield f"sqlite:///{root / 'bench.db'}"
        return
    # durable, as in production: fsync=on, synchronous_commit=on (PostgreSQL's defaults)
    settings = {"shared_buffers": "128MB", "fsync": "on", "synchronous_commit": "on"}
    if statements:
        settings["shared_preload_libraries"] = "pg_stat_statements"
    pg = start_postgres(settings=settings)
    try:
        url = pg.create_database("subjlab")
        if statements:
            with _psycopg(url) as conn:
                conn.execute("CREATE EXTENSION pg_stat_statements")
        with open(Path(pg.directory) / "data" / "postmaster.pid") as f:
            _POSTMASTERS[url] = int(f.readline())
        yield url
    finally:
        pg.stop()


def _psycopg(db_url: str):
    import psycopg

    return psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def statement_stats(db_url: str, answers: int) -> None:
    """Print the statements PostgreSQL ran since the last call (pg_stat_statements): calls per accepted
    answer and mean execution time, busiest first; then reset the counters."""
    with _psycopg(db_url) as conn:
        rows = conn.execute("SELECT calls, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) "
                            "FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat_statements%' "
                            "ORDER BY total_exec_time DESC LIMIT 8").fetchall()
        conn.execute("SELECT pg_stat_statements_reset()")
    for calls, total, query in rows:
        print(f"{'':<9}  {calls / max(answers, 1):6.2f} per answer, {total / max(calls, 1):6.3f} ms each: {query}",
              flush=True)


def print_header() -> None:
    print(f"{'db':<9}{'loop':<9}{'workers':>8}{'answers/s':>11}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'requests':>10}{'errors':>8}{'acked':>8}{'persisted':>10}  acked=persisted")


def print_row(db: str, r: LoadResult) -> None:
    same = r.acked == r.persisted and r.persisted_rows == len(r.persisted)
    print(f"{db:<9}{r.loop:<9}{r.workers:>8}{r.rate:>11.1f}{r.quantile_ms(0.50):>9.1f}{r.quantile_ms(0.95):>9.1f}"
          f"{r.quantile_ms(0.99):>9.1f}{len(r.latencies):>10}{sum(r.errors.values()):>8}{len(r.acked):>8}"
          f"{r.persisted_rows:>10}  {'yes' if same else 'NO'}", flush=True)
    ops = ", ".join(f"{op} p50/p99 {r.quantile_ms(0.5, op):.0f}/{r.quantile_ms(0.99, op):.0f} ms (n={len(v)})"
                    for op, v in sorted(r.by_op.items()))
    print(f"{'':<9}{ops}", flush=True)
    if len(r.worker_means) > 1:
        means = sorted(1000 * m for m in r.worker_means)
        print(f"{'':<9}mean latency per simulated worker: min {means[0]:.0f}, median {statistics.median(means):.0f}, "
              f"max {means[-1]:.0f} ms (a wide spread: some clients are served worse than others)",
              flush=True)
    if r.warmup:
        print(f"{'':<9}whole run, the first {r.warmup:g} s included (all workers start at once): "
              f"{len(r.all_latencies)} requests, p99 {r.quantile_ms(0.99, whole_run=True):.0f} ms, "
              f"{len(r.acked) / r.seconds:.1f} answers/s", flush=True)
    if r.errors:
        print(f"{'':<9}errors: {r.errors}", flush=True)
    answers = r.steady_answers if r.warmup else len(r.acked)
    if r.cpu and answers:
        per = {k: 1000 * v / answers for k, v in r.cpu.items()}
        total = sum(per.values())
        print(f"{'':<9}CPU per answer: server {per['server']:.2f} ms, postgres {per['postgres']:.2f} ms, load generator "
              f"{per['client']:.2f} ms (total {total:.2f} ms: {2000 / total:.0f} answers/s if 2 cores did nothing else); "
              f"load average now {os.getloadavg()[0]:.2f}", flush=True)


LOOPS = {"strict": (False,), "one-trip": (True,), "both": (False, True)}


def load_levels(db: str, url: str, levels: list[int], seconds: float, items: int, nice: int,
                meter: CpuMeter | None = None, loop: str = "both", stats_url: str | None = None,
                warmup: float = 1.0) -> list[LoadResult]:
    """Run each load level (and loop kind: strict, one-trip or both) on its own fresh study (load starts
    right after the study is filled, as when a researcher adds work to a running server); print one row
    per level and loop (and, with `stats_url`, the statements PostgreSQL ran: `statement_stats`)."""
    results = []
    for n in levels:
        for one_trip in LOOPS[loop]:
            study = f"load-{n}" + ("-1trip" if one_trip else "")
            create_study(url, study, n_items=items, labels_per_item=3, max_per_worker=25)
            if stats_url:
                statement_stats(stats_url, 0)  # reset: count this level only
            r = run_load(url, study, n, seconds, run=f"{db}-{n}" + ("-1trip" if one_trip else ""), nice=nice,
                         meter=meter, one_trip=one_trip, warmup=warmup)
            check_persisted(url, study, r)
            print_row(db, r)
            if stats_url:
                statement_stats(stats_url, len(r.acked))
            results.append(r)
    return results


def crash_test(db: str, db_url: str, root: Path, server_workers: int, threads: int, n: int,
               lease_seconds: int, items: int, nice: int) -> bool:
    """kill -9 the server under load, restart, finish the study; print and return whether all checks hold."""
    port = free_port()
    log = root / f"crash-{db}.log"
    server = Server(db_url, port, server_workers, threads, lease_seconds, log).start()
    study = "crash"
    slots = create_study(server.url, study, n_items=items, labels_per_item=3, max_per_worker=None)
    timeline: dict[str, float] = {}
    holder = {"server": server}

    def crash_and_restart(stop: threading.Event) -> None:
        # kill once a quarter of the slots (at most 60 answers) is in, or after 30 s, whichever comes first
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 30:
            time.sleep(0.5)
            if study_progress(server.url, study)["answered"] >= min(slots // 4, 60):
                break
        timeline["answered_before_kill"] = study_progress(server.url, study)["answered"]
        server.kill9()
        timeline["killed_at_s"] = time.perf_counter() - t0
        time.sleep(1.0)
        holder["server"] = Server(db_url, port, server_workers, threads, lease_seconds, log).start()
        timeline["back_at_s"] = time.perf_counter() - t0

    def full() -> bool:
        try:
            return study_progress(server.url, study)["answered"] >= slots
        except httpx.HTTPError:
            return False

    try:
        r = run_load(server.url, study, n, seconds=lease_seconds * 4 + 40, run=f"crash-{db}",
                     during=crash_and_restart, until=full, nice=nice)
        check_persisted(server.url, study, r)
        prog = study_progress(server.url, study)
    finally:
        holder["server"].stop()
    missing = r.acked - r.persisted
    unacked = len(r.persisted - r.acked)
    duplicates = r.persisted_rows - len(set(r.persisted_pairs))
    mid_load = (timeline.get("answered_before_kill") or 0) < slots  # else the kill tested nothing: study already full
    ok = (not missing and duplicates == 0 and prog["answered"] == slots and prog["active_leases"] == 0
          and prog["open_slots"] == 0 and mid_load)
    print(f"crash test ({db}): {n} workers, lease {lease_seconds} s, {slots} slots; killed -9 at "
          f"{timeline.get('killed_at_s', float('nan')):.1f} s after {timeline.get('answered_before_kill')} answers, "
          f"serving again at {timeline.get('back_at_s', float('nan')):.1f} s; finished in {r.seconds:.1f} s")
    print(f"  acknowledged {len(r.acked)}, persisted {r.persisted_rows}, acknowledged but missing {len(missing)}, "
          f"persisted without acknowledgement (reply lost in the crash, not re-sent) {unacked}, "
          f"duplicate (item, worker) {duplicates}")
    print(f"  after restart: answered {prog['answered']}/{slots} slots, open {prog['open_slots']}, "
          f"active leases {prog['active_leases']}, expired leases {prog['expired_leases']}")
    print(f"  client errors while the server was down (re-tried): {r.errors or 'none'}")
    print(f"  => {'OK' if ok else 'FAILED'}: no acknowledged answer lost, no lease stuck" if ok else
          "  => FAILED" + ("" if mid_load else ": the study was full before the kill (raise --crash-items)"), flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both",
                        help="SQLite file, a throwaway PostgreSQL cluster (initdb here), or both in turn")
    parser.add_argument("--workers", default="1,8,32,64", help="simulated worker counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per load level")
    parser.add_argument("--server-workers", type=int, default=2,
                        help="gunicorn worker processes (2 = one per core of the 2-core target machine: fewer "
                             "processes and database connections measured cheaper per answer than 4 x 8)")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds at the start of each level left out of answers/s, the latencies and CPU per "
                             "answer (every simulated worker starts at the same instant); the whole-run p99 is "
                             "printed too")
    parser.add_argument("--items", type=int, default=2000, help="items per load study (Financial PhraseBank texts, repeated under new ids beyond the bundled 1,200)")
    parser.add_argument("--crash-workers", type=int, default=16, help="simulated workers in the crash test")
    parser.add_argument("--crash-items", type=int, default=300,
                        help="items (x3 labels) in the crash study (enough that the kill lands mid-load)")
    parser.add_argument("--lease-seconds", type=int, default=5, help="lease time in the crash test")
    parser.add_argument("--loop", choices=sorted(LOOPS), default="both",
                        help="strict: session -> next -> answer, each its own request (issue 3's loop); one-trip: "
                             "each answer asks for the next assignment in its reply (POST ...?next=1, what the "
                             "worker pages do); both: each level with each loop, on separate fresh studies")
    parser.add_argument("--no-crash", action="store_true", help="skip the kill -9 test")
    parser.add_argument("--in-process", action="store_true",
                        help="first profile the hot path in this process: SQL statements and CPU ms per cycle")
    parser.add_argument("--statements", action="store_true",
                        help="PostgreSQL: load pg_stat_statements and print, per level, the statements run per "
                             "accepted answer and their mean execution time (adds a little overhead)")
    parser.add_argument("--floor", action="store_true",
                        help="first measure the framework floor: a Flask app that only parses and returns JSON, "
                             "under the same gunicorn settings and load (server CPU per request)")
    parser.add_argument("--nice", type=int, default=10,
                        help="nice increment of the load-generator threads (the server runs at normal priority)")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.workers.split(",") if x.strip()]
    if not levels or any(n < 1 or n > 256 for n in levels):
        parser.error("--workers: give counts between 1 and 256, e.g. 1,8,32,64")
    if args.seconds <= 0 or args.seconds > 120:
        parser.error("--seconds: between 0 and 120")
    if args.warmup < 0 or args.warmup >= args.seconds:
        parser.error("--warmup: at least 0 and shorter than --seconds")
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    print(f"server: subjlab serve (gunicorn) --workers {args.server_workers} --threads {args.threads} on "
          f"127.0.0.1; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} (machine may be shared); "
          f"load generator at nice +{args.nice}", flush=True)
    all_ok = True
    with tempfile.TemporaryDirectory(prefix="subjlab-bench-") as tmp:
        root = Path(tmp)
        if os.geteuid() == 0:
            os.chmod(root, 0o755)
        if args.floor:
            framework_floor(max(levels), args.seconds, args.threads, args.server_workers, args.nice, root)
        for db in dbs:
            if args.in_process:
                (root / "inproc").mkdir(exist_ok=True)
                with database(db, root / "inproc") as db_url:
                    profile_in_process(db, db_url)
            with database(db, root, statements=args.statements) as db_url:
                server = Server(db_url, free_port(), args.server_workers, args.threads, 600,
                                root / f"server-{db}.log").start()
                try:
                    print_header()
                    meter = CpuMeter(server.proc.pid, postmaster_pid(db_url))
                    results = load_levels(db, server.url, levels, args.seconds, args.items, args.nice, meter, args.loop,
                                          db_url if args.statements and db == "postgres" else None, args.warmup)
                except (httpx.HTTPError, RuntimeError) as exc:
                    state = "running" if server.proc and server.proc.poll() is None else \
                        f"exited with {server.proc.returncode if server.proc else '?'}"
                    print(f"FAILED on {db}: {type(exc).__name__}: {exc} (server {state}); server log tail:\n"
                          + server.log_tail(), flush=True)
                    raise
                finally:
                    server.stop()
                all_ok &= all(r.acked == r.persisted for r in results)
                if not args.no_crash:
                    all_ok &= crash_test(db, db_url, root, args.server_workers, args.threads, args.crash_workers,
                                         args.lease_seconds, args.crash_items, args.nice)
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
