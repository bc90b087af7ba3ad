"""Database engines (SQLite or PostgreSQL by URL) and transaction scopes.

SQLite: WAL journal, `busy_timeout` 30 s, `synchronous=FULL` (an acknowledged answer survives a crash),
foreign keys on. The driver's own transaction handling is switched off and we issue BEGIN ourselves, so
that write transactions can start with `BEGIN IMMEDIATE` (take the write lock first, wait politely on
`busy_timeout`, never fail half-way on a lock upgrade).

PostgreSQL: `postgresql+psycopg://...` (plain `postgresql://`/`postgres://` URLs are rewritten to it),
READ COMMITTED; atomic conditional UPDATEs and UNIQUE constraints do the concurrency control.
`synchronous_commit` stays at the server's default (`on`): a commit returns after its WAL is flushed.

Single-statement work (the worker hot path: read the worker's state, claim a slot, record an answer) runs
on `autocommit(engine)`: each statement is its own transaction, with no BEGIN/COMMIT round trips on
PostgreSQL and no explicit BEGIN on SQLite (a single write statement takes SQLite's write lock at its
start, waiting on `busy_timeout` like BEGIN IMMEDIATE). Such a statement is exactly as atomic and as
durable as a one-statement transaction.

Connection pools: `pool_size` connections per process (the app uses one per request thread at a time) and
as many again as overflow; no pre-ping round trip per checkout. A connection the server dropped (e.g. a
PostgreSQL restart) fails the request using it with a 503 (`Retry-After`), and SQLAlchemy then discards
every connection of the pool that is older than the failure, so the next requests reconnect.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session

DEFAULT_URL = "sqlite:///subjlab.db"


def normalize_url(url: str) -> str:
    """Return `url` with PostgreSQL URLs pointed at the psycopg 3 driver; raise ValueError if unsupported."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("database URL must be a non-empty string")
    url = url.strip()
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError
        raise ValueError(f"not a database URL: {url!r} ({exc})") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {backend!r} in {url!r}: use sqlite:///FILE or postgresql://...")
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite database cannot be shared by workers: use sqlite:///FILE")
    return url


def backend_name(engine: Engine) -> str:
    """Return "sqlite" or "postgresql"."""
    return engine.url.get_backend_name()


def make_engine(url: str, pool_size: int = 10, max_overflow: int | None = None) -> Engine:
    """Create an Engine for a SQLite file or PostgreSQL URL, configured as described in the module doc.

    `pool_size` connections are kept per process, `max_overflow` (default: `pool_size`) more may be opened
    under bursts. Size them so that processes x (pool_size + max_overflow) stays below PostgreSQL's
    `max_connections` (100 by default).
    """
    url = normalize_url(url)
    overflow = pool_size if max_overflow is None else max_overflow
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=overflow,
            pool_timeout=60,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=overflow, pool_timeout=60)


@contextmanager
def autocommit(engine: Engine) -> Iterator[Connection]:
    """Yield a pooled connection on which every statement commits on its own (see the module doc)."""
    with engine.connect() as conn:
        if engine.url.get_backend_name() == "sqlite":
            conn.execution_options(sqlite_begin=None)
        else:
            conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see `_on_begin`)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode is not None:  # None: autocommit, each statement its own transaction (see `autocommit`)
            conn.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def session_scope(engine: Engine | None = None, write: bool = False) -> Iterator[Session]:
    """Yield a Session in one transaction: commit on success, roll back on any exception.

    `engine` defaults to the current Flask app's engine. `write=True` starts SQLite transactions with
    BEGIN IMMEDIATE (use it for transactions that read, then write).
    """
    if engine is None:
        from annotation_server.app import get_state

        engine = get_state().engine
    bind = engine.execution_options(sqlite_begin="IMMEDIATE") if write else engine
    session = Session(bind, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
