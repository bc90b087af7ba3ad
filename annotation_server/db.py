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

The hottest statements (`FastStatement`) are compiled once and, on PostgreSQL, sent straight to the
driver's cursor of the pooled connection, as server-side prepared statements: the same SQL text and
parameters SQLAlchemy would send, without its per-execution bookkeeping (about 0.1 ms of CPU a statement).
Statement listeners (`before_cursor_execute`) still see every statement; a driver error is never raised
from there: the statement is run once more through SQLAlchemy (safe: in autocommit mode a failed
statement left nothing behind), which raises its usual exception and handles a lost connection as below.

Connection pools: `pool_size` connections per process (the app uses one per request thread at a time) and
as many again as overflow; no pre-ping round trip per checkout. A connection the server dropped (e.g. a
PostgreSQL restart) fails the request using it with a 503 (`Retry-After`), and SQLAlchemy then discards
every connection of the pool that is older than the failure, so the next requests reconnect.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.sql import Executable
from sqlmodel import Session

DEFAULT_URL = "sqlite:///subjlab.db"
#: Where every command and the runner look for the database when no URL is given.
URL_ENV = "SUBJLAB_DATABASE_URL"


def resolve_url(url: str | None = None) -> str:
    """Return the database URL to use: `url` (a --db value), else $SUBJLAB_DATABASE_URL, else
    sqlite:///subjlab.db in the working directory; normalised (see `normalize_url`)."""
    import os

    return normalize_url(url or os.environ.get(URL_ENV) or DEFAULT_URL)


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


def make_engine(url: str, pool_size: int = 10, max_overflow: int | None = None, autocommit: bool = False) -> Engine:
    """Create an Engine for a SQLite file or PostgreSQL URL, configured as described in the module doc.

    `pool_size` connections are kept per process, `max_overflow` (default: `pool_size`) more may be opened
    under bursts. Size them so that processes x (pool_size + max_overflow) stays below PostgreSQL's
    `max_connections` (100 by default).

    `autocommit=True` (PostgreSQL): every connection of the pool is put in autocommit mode once, when it
    is opened, for `autocommit(engine)` (the worker hot path): checking one out then costs no switch of
    the isolation level and back. SQLite ignores it (`autocommit` sets its mode per checkout, cheaply).
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
    if not autocommit:
        return create_engine(url, pool_size=pool_size, max_overflow=overflow, pool_timeout=60)
    engine = create_engine(url, pool_size=pool_size, max_overflow=overflow, pool_timeout=60, isolation_level="AUTOCOMMIT")
    engine.subjlab_autocommit = True  # read by `autocommit`
    return engine


@contextmanager
def autocommit(engine: Engine) -> Iterator[Connection]:
    """Yield a pooled connection on which every statement commits on its own (see the module doc).

    Cheapest with an engine made by `make_engine(..., autocommit=True)`; any engine works."""
    with engine.connect() as conn:
        if engine.url.get_backend_name() == "sqlite":
            conn.execution_options(sqlite_begin=None)
        elif not getattr(engine, "subjlab_autocommit", False):
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


class FastStatement:
    """A Core statement (SELECT, or DML with RETURNING) for the hot path, compiled once per dialect.

    `first(conn, params)` / `all(conn, params)` return row tuples (index them by position). On PostgreSQL
    the statement is compiled once with PostgreSQL's own `$n` placeholders and run on a psycopg
    `RawCursor` of the pooled connection as a prepared statement (module doc), with the same type
    processing of parameters and result columns SQLAlchemy would apply. (A named-placeholder query would
    be re-parsed by psycopg on every execution once it is longer than psycopg caches, 4 KB: the hot
    statements with their CTEs are longer.) Elsewhere the statement runs through `conn.execute`.
    """

    def __init__(self, statement: Executable):
        self.statement = statement
        self._compiled_for: dict[type, _Compiled] = {}  # by dialect class
        self._lock = threading.Lock()

    def _compiled(self, dialect: Dialect) -> "_Compiled":
        key = type(dialect)
        found = self._compiled_for.get(key)
        if found is None:
            with self._lock:
                found = self._compiled_for.get(key)
                if found is None:
                    found = self._compiled_for[key] = _Compiled.of(self.statement, dialect)
        return found

    def _execute_pg(self, conn: Connection, params: Mapping[str, Any], fetch_all: bool):
        import psycopg

        c = self._compiled(conn.dialect)
        values = c.values(params)
        try:
            cur = psycopg.RawCursor(conn.connection.driver_connection)
            if conn.dispatch.before_cursor_execute:
                for fn in conn.dispatch.before_cursor_execute:
                    fn(conn, cur, c.sql, values, None, False)
            cur.execute(c.sql, values, prepare=True)
            rows = cur.fetchall() if fetch_all else cur.fetchone()
        except conn.dialect.loaded_dbapi.Error:
            # run it again through SQLAlchemy, which raises (and handles) the error its own way
            result = conn.execute(self.statement, params)
            return [tuple(r) for r in result.all()] if fetch_all else result.first()
        if c.result_processors is None or rows is None:
            return rows
        return [c.process(r) for r in rows] if fetch_all else c.process(rows)

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """Run the statement and return its first row (tuple-like), or None."""
        if conn.dialect.name == "postgresql":
            return self._execute_pg(conn, params, False)
        return conn.execute(self.statement, params).first()

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        """Run the statement and return all its rows (tuple-like)."""
        if conn.dialect.name == "postgresql":
            return self._execute_pg(conn, params, True)
        return list(conn.execute(self.statement, params).all())


class _Compiled:
    """A statement compiled for PostgreSQL with `$n` placeholders: SQL text, the parameter names in
    placeholder order with their bind processors, constant parameter values, result type processors."""

    def __init__(self, sql: str, names: list[str], processors: list, defaults: dict[str, Any],
                 result_processors: list | None):
        self.sql, self.names, self.processors, self.defaults = sql, names, processors, defaults
        self.result_processors = result_processors

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect) -> "_Compiled":
        compiled = statement.compile(dialect=type(dialect)(paramstyle="numeric_dollar"))
        sql = str(compiled)
        if "POSTCOMPILE" in sql:
            raise ValueError("FastStatement cannot run statements with expanding IN parameters")
        names = list(compiled.positiontup or ())
        processors, defaults = [], {}
        for name in names:
            bind = compiled.binds[name]
            proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
            processors.append(proc)
            if not bind.required:
                defaults[name] = bind.effective_value
        results = [col.type.dialect_impl(dialect).result_processor(dialect, None)
                   for col in getattr(statement, "exported_columns", ())]
        return cls(sql, names, processors, defaults, results if any(p is not None for p in results) else None)

    def values(self, params: Mapping[str, Any]) -> tuple:
        """The positional parameter values for `params` (by name; constants filled in), type-processed."""
        out = []
        for name, proc in zip(self.names, self.processors):
            if name in params:
                value = params[name]
            elif name in self.defaults:
                value = self.defaults[name]
            else:
                raise ValueError(f"FastStatement: no value for parameter {name!r}")
            out.append(proc(value) if proc is not None and value is not None else value)
        return tuple(out)

    def process(self, row: Sequence[Any]) -> tuple:
        """Apply the result columns' type processors to one row."""
        return tuple(v if p is None or v is None else p(v) for p, v in zip(self.result_processors, row))
