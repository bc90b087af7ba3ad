"""Fixtures for the annotation server tests (also used by the worker-page and browser tests).

Stable fixtures (documented in annotation_server/CONTRACT.md):

- `ADMIN` (module constant, also the `admin_token` fixture): the admin token every test app uses.
- `make_app(db="sqlite" | "postgres" | URL, **config)`: a fresh app on a fresh, migrated database
  (SQLite: a copy of a migrated template file; PostgreSQL: `CREATE DATABASE ... TEMPLATE`), with
  `DATA_DIR` = the real shared datasets. Extra keyword arguments are config keys (e.g. `CLOCK=`).
- `app`, `client`: a ready SQLite app and its Flask test client.
- `db_app`: the same app parametrized over SQLite and PostgreSQL (tests using it run on both).
- `clock`: a settable clock (`clock.advance(seconds)`) to pass as `make_app(CLOCK=clock)`.
- `api_client(app_or_url)`: an `ApiClient` (admin and worker calls, see below) over a Flask test client
  or a live server's base URL.
- `pg_server` / `pg_url`: a throwaway PostgreSQL cluster started for the session (as the `postgres`
  user when running as root) and a database URL on it.
- `live_server`: a real `subjlab serve` (gunicorn, 2 workers x 4 threads) on 127.0.0.1:<free port> over
  a fresh SQLite file, for the module; yields `LiveServer(url, admin_token, db_url)`.
  `start_live_server` (fixture returning a function) starts more (e.g. on PostgreSQL, short leases).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ADMIN = "test-admin-token"
REPO = Path(__file__).resolve().parents[2]
_counter = itertools.count()


# ----------------------------------------------------------------------------------------- clock
class FakeClock:
    """A settable clock for `make_app(CLOCK=clock)`: returns `now` (aware UTC); `advance(seconds)`."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    """A settable clock starting at the real current time."""
    return FakeClock()


@pytest.fixture(scope="session")
def admin_token() -> str:
    """The admin token of every test app and live server."""
    return ADMIN


# ----------------------------------------------------------------------------------------- PostgreSQL
def _free_port() -> int:
    from annotation_server.testing import free_port

    return free_port()


@pytest.fixture(scope="session")
def pg_server():
    """Start a throwaway PostgreSQL cluster for the test session (`annotation_server.testing.start_postgres`,
    fsync off); yields its `PostgresCluster` (`.create_database(name, template=None) -> url`, `.url(db)`,
    `.port`, `.user`); stopped and deleted afterwards."""
    from annotation_server.testing import start_postgres

    try:
        server = start_postgres(durable=False)
    except RuntimeError as exc:
        pytest.fail(f"the server tests run on a real PostgreSQL, which did not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_url(pg_server) -> str:
    """URL of a fresh, empty database `subjlab` on the session's PostgreSQL server."""
    return pg_server.create_database("subjlab")


# ----------------------------------------------------------------------------------------- apps
@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    from annotation_server.schema import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _pg_template(pg_server) -> str:
    from annotation_server.schema import upgrade

    upgrade(pg_server.create_database("subjlab_template"))
    return "subjlab_template"


def fresh_database(kind: str, tmp_path: Path, request) -> str:
    """Return the URL of a fresh migrated database: kind "sqlite", "postgres", or a URL (used as is)."""
    n = next(_counter)
    if kind == "sqlite":
        path = tmp_path / f"app{n}.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    if kind == "postgres":
        server = request.getfixturevalue("pg_server")
        return server.create_database(f"t{os.getpid()}_{n}", template=request.getfixturevalue("_pg_template"))
    return kind


@pytest.fixture
def make_app(tmp_path, request, task_data) -> Iterator[Callable[..., Any]]:
    """Factory: `make_app(db="sqlite" | "postgres" | URL, **config)` -> a Flask app on a fresh migrated database."""
    from annotation_server.app import create_app, get_state

    apps = []

    def factory(db: str = "sqlite", **config: Any):
        url = fresh_database(db, tmp_path, request)
        app = create_app({"DATABASE_URL": url, "ADMIN_TOKEN": ADMIN, "DATA_DIR": str(task_data),
                          "INSTANCE_PATH": str(tmp_path / "instance"), **config})
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield factory
    for app in apps:
        get_state(app).dispose()


@pytest.fixture
def app(make_app):
    """A ready app on a fresh migrated SQLite database (admin token `ADMIN`)."""
    return make_app()


@pytest.fixture
def client(app):
    """The Flask test client of `app`."""
    return app.test_client()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request) -> str:
    """"sqlite" or "postgres": tests using it (or `db_app`) run once on each."""
    return request.param


@pytest.fixture
def db_app(make_app, backend):
    """A ready app on a fresh database of each backend (SQLite and PostgreSQL)."""
    return make_app(db=backend)


# ----------------------------------------------------------------------------------------- database contents
def database_rows(app) -> dict[str, list[tuple]]:
    """Every row of every table of the schema (core and crowd-platform tables), sorted: compare two of
    these to prove that a refused request changed nothing at all (not just the row counts)."""
    from sqlalchemy import select

    from annotation_server.app import get_state
    from annotation_server.db import session_scope
    from annotation_server.models import load_extension_models, metadata

    load_extension_models()
    with session_scope(get_state(app).engine) as db:
        return {name: sorted((tuple(row) for row in db.execute(select(table)).all()), key=repr)
                for name, table in sorted(metadata.tables.items())}


@pytest.fixture
def db_rows() -> Callable[[Any], dict[str, list[tuple]]]:
    """`db_rows(app)`: every row of every table (see `database_rows`)."""
    return database_rows


# ----------------------------------------------------------------------------------------- API client
@dataclass
class Reply:
    """An HTTP reply: status, parsed JSON (None when not JSON), headers, body text."""

    status: int
    json: Any
    headers: Any
    text: str


@dataclass
class ApiClient:
    """Calls the `/api/v1` endpoints through a Flask test client or over HTTP (`requests`) to a live server."""

    target: Any
    admin_token: str = ADMIN
    _http: Any = field(default=None, repr=False)

    def request(self, method: str, path: str, token: str | None = None, json_body: Any = None,
                data: bytes | str | None = None, headers: dict[str, str] | None = None) -> Reply:
        """Send one request to `/api/v1{path}`; `token` goes in the Authorization header."""
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        url = "/api/v1" + path
        if isinstance(self.target, str):
            import requests

            if self._http is None:
                self._http = requests.Session()
            r = self._http.request(method, self.target + url, data=data, headers=hdrs, timeout=60)
            status, headers_out, text = r.status_code, r.headers, r.text
        else:
            r = self.target.open(url, method=method, data=data, headers=hdrs)
            status, headers_out, text = r.status_code, r.headers, r.get_data(as_text=True)
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return Reply(status, parsed, headers_out, text)

    # admin
    def create_study(self, **body: Any) -> Reply:
        return self.request("POST", "/studies", self.admin_token, body)

    def add_items(self, name: str, **body: Any) -> Reply:
        return self.request("POST", f"/studies/{name}/items", self.admin_token, body)

    def admin_get(self, path: str) -> Reply:
        return self.request("GET", path, self.admin_token)

    # worker
    def session(self, name: str, worker_id: str) -> str:
        """Start a session and return the worker token (asserts 201)."""
        r = self.request("POST", f"/studies/{name}/sessions", json_body={"worker_id": worker_id})
        assert r.status == 201, r.text
        return r.json["token"]

    def next(self, name: str, token: str) -> Reply:
        return self.request("GET", f"/studies/{name}/next", token)

    def answer(self, assignment: Any, token: str, **body: Any) -> Reply:
        return self.request("POST", f"/assignments/{assignment}", token, body)


@pytest.fixture
def api_client() -> Callable[..., ApiClient]:
    """Factory: `api_client(app_or_test_client_or_base_url)` -> ApiClient."""

    def make(target: Any) -> ApiClient:
        if hasattr(target, "test_client"):
            target = target.test_client()
        return ApiClient(target)

    return make


@pytest.fixture
def api(app, api_client) -> ApiClient:
    """An ApiClient on `app` (SQLite)."""
    return api_client(app)


# ----------------------------------------------------------------------------------------- live server
@dataclass
class LiveServer:
    """A running `subjlab serve`: base URL (http://127.0.0.1:PORT), admin token, database URL."""

    url: str
    admin_token: str
    db_url: str
    process: subprocess.Popen = field(repr=False)
    log_path: Path = field(repr=False)

    def log(self) -> str:
        """The server's output so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGINT) -> None:
        """Stop the server (SIGINT: quick shutdown; SIGTERM: graceful; SIGKILL: crash) and wait for it."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)


def launch_live_server(db_url: str, log_path: Path, workers: int = 2, threads: int = 4,
                       lease_seconds: float | None = None, port: int | None = None) -> LiveServer:
    """Start `python -m subjlab.cli serve` on 127.0.0.1 and wait until /api/v1/health answers."""
    import requests

    port = port or _free_port()
    cmd = [sys.executable, "-m", "subjlab.cli", "serve", "--db", db_url, "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--threads", str(threads)]
    if lease_seconds is not None:
        cmd += ["--lease-seconds", str(lease_seconds)]
    env = dict(os.environ, SUBJLAB_ADMIN_TOKEN=ADMIN, SUBJLAB_SECRET_KEY="test-secret-key")
    logf = open(log_path, "ab")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    logf.close()
    server = LiveServer(f"http://127.0.0.1:{port}", ADMIN, db_url, proc, log_path)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"subjlab serve exited with {proc.returncode}:\n{server.log()}")
        try:
            if requests.get(server.url + "/api/v1/health", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"subjlab serve did not answer within 90 s:\n{server.log()}")


@pytest.fixture(scope="module")
def start_live_server(tmp_path_factory) -> Iterator[Callable[..., LiveServer]]:
    """Function `start(db_url=None, **options) -> LiveServer` (SQLite file by default); all stopped at module end."""
    servers: list[LiveServer] = []
    tmp = tmp_path_factory.mktemp("live")

    def start(db_url: str | None = None, **options: Any) -> LiveServer:
        n = next(_counter)
        server = launch_live_server(db_url or f"sqlite:///{tmp / f'live{n}.db'}", tmp / f"serve{n}.log", **options)
        servers.append(server)
        return server

    yield start
    for server in servers:  # throwaway servers: no graceful shutdown needed (answers are committed)
        server.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def live_server(start_live_server) -> LiveServer:
    """A real `subjlab serve` (gunicorn) over a fresh SQLite file, shared by the module's tests."""
    return start_live_server()
