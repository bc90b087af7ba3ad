"""`next` in one statement on PostgreSQL (`serve_statement`): the worker's state SELECT with the claim, or
an attention check's insert, as data-modifying CTEs, guarded so that it leases only when the state says
that a plain claim (or a due check) is what `next` must do; `answer_and_next` puts an answer in front.

Hand-written SQLAlchemy Core, built once per study shape (`lru_cache`), run on the driver's cursor
(`db.FastStatement`): one statement, one round trip and one commit per request is what keeps the hot path
at a few milliseconds of CPU per answer (`docs/server.md`, "Performance")."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, select, true
from sqlalchemy.engine import Connection

from annotation_server import pair_checks
from annotation_server.cache import StudyMeta
from annotation_server.db import FastStatement
from annotation_server.sqlparts import (
    MAX_PER_WORKER,
    STUDY_CREATED_AT,
    GOLD_EVERY,
    STUDY_ID,
    const,
)
from annotation_server.models import (
    ACTIVE,
    LABELING,
    OPEN,
    Assignment,
    GoldItem,
)
from annotation_server.attention_checks import gold_insert_for
from annotation_server.claims import Claimed, claim_for, claimed_from_row, uses_lateral, window_for
from annotation_server.worker_state import keeps_pairs, state_statement


SLOTS = Assignment.__table__.c

#: Units considered per claim (the least answered ones); one of the least answered among them is picked.


# ------------------------------------------------------------------------------------------ candidates

def serve_statement(kind: str, capped: bool, with_gold: bool, answered=None):
    """PostgreSQL, balanced schedulers: `read_state` and `claim` as ONE statement (the usual `next`).

    SELECT the worker's state (`_state_statement`, as CTE `st`) and, in a data-modifying CTE, lease the
    best free slot when the state says a plain claim is what `serve_next` would do: the token's study is
    `meta`'s (:sid, created at :created), it is open, this session holds no lease, the worker is below the cap
    (:cap) and no attention check is due (every :gold_every-th unit while unseen checks remain). When a
    check is due (`with_gold`), a second data-modifying CTE leases one instead (a new slot for an unseen
    check, only while a regular unit is still free for the worker, as `_next_slot` does): a check is then
    served by the same single statement as a regular unit, so its reply takes no longer. Otherwise
    nothing is leased and the caller goes on from the state the long way. Always one row: the state
    columns (NULL for an unknown token), then `answered`'s id and gold_id if given, then `_returning`'s
    columns of the claim (NULL when nothing was claimed), then (`with_gold`) those of the check.

    `answered` (the slot CTE of an answer in the same statement, see `answer_and_next`): lease only if that
    answer was recorded, and count that slot, which the state (read from the statement's snapshot) still
    shows as leased, as the one lease allowed. Parameters: :h, :sid, :q, :now, :exp, :created, [:lim,
    :cap], [:gold_every]."""
    st = state_statement(kind, capped, with_gold).cte("st")
    wpk = select(st.c.worker_pk).scalar_subquery()
    sess = select(st.c.session_id).scalar_subquery()
    # this session holds no lease; next to an answer (whose slot the statement's snapshot still shows as
    # leased), that slot is the one it holds
    held = st.c.lease_id.is_(None) if answered is None else st.c.lease_id == select(answered.c.id).scalar_subquery()
    common = [st.c.study_id == STUDY_ID, st.c.study_status == const(OPEN), st.c.study_created_at == STUDY_CREATED_AT, held]
    if capped:
        common.append(st.c.ra + st.c.rl < MAX_PER_WORKER)
    due = None
    cond = list(common)
    if with_gold:
        taken = st.c.ra + st.c.rl + st.c.ga + st.c.gl
        due = and_((taken + const(1)) % GOLD_EVERY == const(0), st.c.ga + st.c.gl < st.c.n_gold)
        cond.append(~due)
    recorded = [select(answered.c.id).exists()] if answered is not None else []
    guard = and_(select(st.c.session_id).where(*cond).exists(), *recorded)
    reserve = pair_checks.reserved_pairs(wpk, capped) if keeps_pairs(kind, with_gold) else None
    claimed = claim_for(kind, True, wpk, sess, guard, reserve).cte("claimed")
    one = select(const(1).label("one")).subquery("one")
    joined = one.outerjoin(st, true())
    columns = list(st.c)
    if answered is not None:
        joined = joined.outerjoin(answered, true())
        columns += [answered.c.id.label("answered_id"), answered.c.gold_id.label("answered_gold_id")]
    joined = joined.outerjoin(claimed, true())
    columns += [claimed.c[col.key].label(f"claimed_{i}") for i, col in enumerate(claimed.c)]
    if with_gold:
        regular_left = window_for(kind, 1, True, wpk).exists()  # checks only come between real units
        gold_guard = and_(select(st.c.session_id).where(*common, due).exists(), regular_left, *recorded)
        gold = gold_insert_for(kind, wpk, sess, gold_guard).cte("gold_lease")
        joined = joined.outerjoin(gold, true())
        columns += [gold.c[col.key].label(f"gold_{i}") for i, col in enumerate(gold.c)]
        if kind == LABELING:
            G = GoldItem.__table__.alias("gt")
            joined = joined.outerjoin(G, G.c.id == gold.c.gold_id)
            columns += [G.c.key.label("gold_key"), G.c.text.label("gold_text")]
    return select(*columns).select_from(joined)


@lru_cache(maxsize=None)
def fast_serve_statement(kind: str, capped: bool, with_gold: bool) -> FastStatement:
    """`serve_statement` (without an answer) ready for the hot path."""
    return FastStatement(serve_statement(kind, capped, with_gold))


def serve_params(meta: StudyMeta, token_hash: str, now: datetime, lease_seconds: float) -> dict[str, Any]:
    """The parameters of `serve_statement` for study `meta`."""
    params = {"h": token_hash, "sid": meta.id, "q": meta.quota, "now": now, "created": meta.created_at,
              "exp": now + timedelta(seconds=lease_seconds)}
    if meta.max_per_worker is not None:
        params["lim"] = 2 * meta.max_per_worker
        params["cap"] = meta.max_per_worker
    if meta.gold_every:
        params["gold_every"] = meta.gold_every
    return params


def uses_serve_statement(conn: Connection, meta: StudyMeta) -> bool:
    """Whether `next` in study `meta` runs as one statement (`serve_statement`): PostgreSQL, and a
    balanced scheduler (labeling, or pairwise `balanced`)."""
    return uses_lateral(conn) and (meta.kind == LABELING or meta.scheduler != ACTIVE)


def claimed_in(row, offset: int, kind: str) -> Claimed | None:
    """The Claimed in a `serve_statement` row from column `offset` on (the claim's columns, then those of
    the attention check, if the statement has them), or None if nothing was leased."""
    if row[offset] is None:
        gold_at = offset + (7 if kind == LABELING else 5)
        if len(row) <= gold_at or row[gold_at] is None:
            return None
        return claimed_from_row(row[gold_at:], kind, new_gold=True)
    return claimed_from_row(row[offset:], kind, new_regular=True)
