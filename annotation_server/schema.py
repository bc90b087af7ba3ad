"""Schema versioning with Alembic: upgrade a database, and check that it is at the head revision.

The migration scripts live in `annotation_server/migrations/`; `subjlab db upgrade` and the tests call
`upgrade(url)`. The app refuses to start on a database whose schema is not at head (it never creates
tables behind the user's back).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import Session

from annotation_server.db import normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """Return an Alembic Config pointing at the packaged migrations and at `url`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """Return the newest revision id of the packaged migrations."""
    head = ScriptDirectory.from_config(alembic_config("sqlite:///unused.db")).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the database's current revision (None for an empty database)."""
    with engine.connect() as conn:
        rev = MigrationContext.configure(conn).get_current_revision()
        conn.rollback()
        return rev


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the database at `url` up to `revision`; return the revision it is at afterwards."""
    command.upgrade(alembic_config(url), revision)
    from annotation_server.db import make_engine

    engine = make_engine(url, pool_size=1)
    try:
        return current_revision(engine) or ""
    finally:
        engine.dispose()


def include_object(dialect: str):
    """An Alembic `include_object` hook for autogenerate comparisons on `dialect`: leaves out the schema
    objects the models mark as belonging to other databases only (`info={"dialects": (...)}`, e.g. the
    SQLite-only index of migration 0006)."""
    def include(obj, name, type_, reflected, compare_to) -> bool:
        dialects = getattr(obj, "info", {}).get("dialects") or getattr(compare_to, "info", {}).get("dialects")
        return not dialects or dialect in dialects
    return include


def model_differences(conn) -> list:
    """Return what Alembic's autogenerate finds between the database on `conn` and the models
    (`annotation_server.models.metadata`, types compared, objects of other databases left out): [] when
    the migrations built exactly the models' schema."""
    from alembic.autogenerate import compare_metadata

    from annotation_server.models import metadata

    context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "include_object": include_object(conn.dialect.name)})
    return compare_metadata(context, metadata)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` down to `revision` ("base" drops everything)."""
    command.downgrade(alembic_config(url), revision)


@contextmanager
def migrated_session(url: str, *, write: bool = False) -> Iterator[Session]:
    """Yield a session (one transaction) on the database at `url`, which must be at the schema head:
    ValueError telling how to migrate otherwise. The engine (one connection) is disposed afterwards;
    for commands and the runner, which open the database once."""
    from annotation_server.db import make_engine, session_scope

    engine = make_engine(url, pool_size=1)
    try:
        try:
            check_at_head(engine)
        except RuntimeError as exc:
            raise ValueError(str(exc)) from None
        with session_scope(engine, write=write) as db:
            yield db
    finally:
        engine.dispose()


def check_at_head(engine: Engine) -> str:
    """Return the revision if the database is at head; raise RuntimeError telling how to migrate otherwise."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        url = engine.url.render_as_string(hide_password=True)
        raise RuntimeError(
            f"database {url} is at schema revision {current or 'none (empty database)'}, "
            f"this server needs {head}: run `subjlab db upgrade --db URL` first"
        )
    return current
