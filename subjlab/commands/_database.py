"""The `--db URL` option every database command shares, and how a command opens that database.

Resolution (one place, `annotation_server.db.resolve_url`): `--db`, else $SUBJLAB_DATABASE_URL, else
sqlite:///subjlab.db in the working directory. Commands open it with `open_session` (one
connection, the schema must be at head) and show it with `shown` (password hidden).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click

_URL_HELP = ("sqlite:///FILE or postgresql://USER@HOST:PORT/DB "
             "[default: $SUBJLAB_DATABASE_URL, else sqlite:///subjlab.db in the working directory]")


def db_option(what: str = "Database URL") -> Callable:
    """The `--db URL` option (parameter `db_url`); `what` starts its help ("Database of --study")."""
    return click.option("--db", "db_url", default=None, metavar="URL", help=f"{what}: {_URL_HELP}.")


def database_url(db_url: str | None, *, must_exist: bool = False) -> str:
    """The URL to use for a `--db` value (normalised). With `must_exist`, a SQLite file that does not
    exist is a FileNotFoundError (rather than an empty database created behind the user's back)."""
    import os

    from sqlalchemy.engine import make_url

    from annotation_server.db import resolve_url

    url = resolve_url(db_url)
    parsed = make_url(url)
    if must_exist and parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if not os.path.exists(path):
            raise FileNotFoundError(f"database file {path!r} of {url} does not exist "
                                    "(give the study's database with --db)")
    return url


def shown(url: str) -> str:
    """`url` as it may be printed (password hidden)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def open_session(db_url: str | None, *, write: bool = False) -> Iterator[Any]:
    """Yield a session on the `--db` database, which must be at the schema head (ValueError telling
    how to migrate otherwise)."""
    from annotation_server.schema import migrated_session

    with migrated_session(database_url(db_url), write=write) as db:
        yield db
