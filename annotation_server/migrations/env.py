"""Alembic environment: runs migrations on the URL (or open connection) that `schema.py` passes in."""

from __future__ import annotations

from alembic import context

from annotation_server.db import make_engine
from annotation_server.models import metadata
from annotation_server.schema import include_object
import annotation_server.mturk.models  # noqa: E402,F401  (registers the crowd-platform tables on `metadata`)

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run on `config.attributes["connection"]` when given, else on a new engine for sqlalchemy.url."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"), pool_size=1)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
