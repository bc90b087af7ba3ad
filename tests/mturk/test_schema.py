"""The crowd-platform tables: one Alembic head, migrations that build exactly the models, on both databases."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from annotation_server.db import make_engine
from annotation_server.models import metadata
from annotation_server.mturk import models as crowd
from annotation_server.schema import alembic_config, downgrade, model_differences, upgrade

CROWD_TABLES = {"mturk_hit", "mturk_qualification", "mturk_assignment", "mturk_action", "prolific_study", "prolific_session"}


def test_the_migrations_have_exactly_one_head_and_it_includes_the_crowd_revision():
    scripts = ScriptDirectory.from_config(alembic_config("sqlite:///unused.db"))
    heads = scripts.get_heads()
    assert len(heads) == 1, f"several Alembic heads: {heads}; re-point a down_revision"
    chain = {rev.revision for rev in scripts.walk_revisions(base="base", head=heads[0])}
    assert {"0001", "mturk_0001"} <= chain
    assert {t.__tablename__ for t in crowd.TABLES} == CROWD_TABLES <= set(metadata.tables)


def test_the_crowd_tables_migrate_exactly_and_downgrade_cleanly(tmp_path, backend, request):
    if backend == "postgres":
        url = request.getfixturevalue("pg_server").create_database("crowd_roundtrip")
    else:
        url = f"sqlite:///{tmp_path / 'crowd.db'}"
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    try:
        assert CROWD_TABLES <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            diff = model_differences(conn)
        assert diff == []
        uniques = {tuple(u["column_names"]) for u in inspect(engine).get_unique_constraints("mturk_action")}
        assert ("kind", "target") in uniques
    finally:
        engine.dispose()
    downgrade(url, "0001")
    engine = make_engine(url, pool_size=1)
    try:
        tables = set(inspect(engine).get_table_names())
        assert not (CROWD_TABLES & tables) and "study" in tables
    finally:
        engine.dispose()
    upgrade(url)


@pytest.mark.parametrize("kind", ["approve", "qualify"])
def test_the_database_refuses_a_second_action_of_a_kind_on_the_same_target(app, spam_study, kind):
    from datetime import datetime, timezone

    from sqlalchemy.exc import IntegrityError

    from annotation_server.state import get_state
    from annotation_server.db import session_scope
    from annotation_server.studies import get_study

    engine = get_state(app).engine
    now = datetime.now(timezone.utc)
    with session_scope(engine) as db:
        sid = get_study(db, "spam").id
        db.add(crowd.MTurkAction(study_id=sid, kind=kind, target="T1", state="done", created_at=now))
    with pytest.raises(IntegrityError), session_scope(engine) as db:
        db.add(crowd.MTurkAction(study_id=sid, kind=kind, target="T1", state="pending", created_at=now))
