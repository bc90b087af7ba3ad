"""Pieces shared by the hot path's prebuilt statements (`scheduling`, `pair_checks`, `answers`): internal
constants written into the SQL text, and the bind parameters the statements are built with."""

from __future__ import annotations

from sqlalchemy import DateTime, Integer, String, bindparam, literal_column

from annotation_server.models import SLOT_ANSWERED, SLOT_LEASED, SLOT_OPEN


def const(value: str | int):
    """A constant rendered into the SQL text (internal values only: statuses, limits, key prefixes).

    Bind parameters would hide them from PostgreSQL's planner in the prepared statements psycopg uses
    after a few executions; with them visible, the cached generic plan is as good as a fresh one, so the
    hot statements are planned once per connection instead of on every execution."""
    if isinstance(value, int):
        return literal_column(str(int(value)), Integer)
    if not value.replace("_", "").isalnum():
        raise ValueError(f"not an internal constant: {value!r}")
    return literal_column(f"'{value}'", String)


SQL_OPEN, SQL_LEASED, SQL_ANSWERED = const(SLOT_OPEN), const(SLOT_LEASED), const(SLOT_ANSWERED)

#: Bind parameters of the prebuilt statements (each built once per shape, with `lru_cache`): study id, quota,
#: worker pk, token hash, session id, now, lease end, the study's `created_at`; with a cap, the cap and the
#: units counted up to; with attention checks, every how many units one comes.
STUDY_ID, QUOTA, WORKER_PK, TOKEN_HASH, SESSION_ID = bindparam("sid"), bindparam("q"), bindparam("wpk"), bindparam("h"), bindparam("sess")
NOW = bindparam("now", type_=DateTime(timezone=True))
LEASE_EXPIRES = bindparam("exp", type_=DateTime(timezone=True))
STUDY_CREATED_AT = bindparam("created", type_=DateTime(timezone=True))
MAX_PER_WORKER, BELOW_LIMIT = bindparam("cap", type_=Integer), bindparam("lim", type_=Integer)
GOLD_EVERY = bindparam("gold_every", type_=Integer)
