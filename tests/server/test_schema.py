"""The schema is versioned with Alembic: migrations build exactly the models' schema, on both databases,
and the database itself refuses double answers."""

from __future__ import annotations

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from annotation_server.app import create_app
from annotation_server.state import get_state
from annotation_server.db import make_engine, session_scope
from annotation_server.models import LabelRecord, load_extension_models
from annotation_server.schema import current_revision, downgrade, head_revision, model_differences, upgrade


def test_migrations_build_exactly_the_models_schema(db_app):
    engine = get_state(db_app).engine
    assert current_revision(engine) == head_revision()
    load_extension_models()  # tables other parts of the server add to the same schema
    with engine.connect() as conn:
        diff = model_differences(conn)
    assert diff == []
    uniques = {tuple(u["column_names"]) for u in inspect(engine).get_unique_constraints("label_record")}
    assert ("item_id", "worker_id") in uniques and ("assignment_id",) in uniques


def test_create_app_refuses_an_unmigrated_database_and_says_how_to_fix_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(RuntimeError, match=r"subjlab db upgrade"):
        create_app({"DATABASE_URL": url, "ADMIN_TOKEN": "x"})
    engine = make_engine(url)
    assert inspect(engine).get_table_names() == []  # nothing was created behind the user's back
    engine.dispose()


def test_downgrade_to_base_then_upgrade_round_trips(tmp_path, backend, request):
    if backend == "postgres":
        url = request.getfixturevalue("pg_server").create_database("roundtrip")
    else:
        url = f"sqlite:///{tmp_path / 'rt.db'}"
    assert upgrade(url) == head_revision()
    downgrade(url, "base")
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    assert upgrade(url) == head_revision()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(app):
    engine = get_state(app).engine
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_database_rejects_a_second_label_by_the_same_worker_for_an_item(db_app, api_client, task_data):
    api = api_client(db_app)
    assert api.create_study(name="uq", kind="labeling", task="sms_spam", labels_per_item=2).status == 201
    assert api.add_items("uq", examples=[{"id": "a", "text": "hello there"}]).status == 201
    token = api.session("uq", "w1")
    a = api.next("uq", token).json["assignment"]
    assert api.answer(a, token, label="ham").status == 201
    engine = get_state(db_app).engine
    with session_scope(engine) as db:
        row = db.scalars(select(LabelRecord)).one()
    with pytest.raises(IntegrityError):
        with session_scope(engine, write=True) as db:
            db.add(LabelRecord(assignment_id=row.assignment_id + 1, study_id=row.study_id, item_id=row.item_id,
                               worker_id=row.worker_id, label="spam", created_at=row.created_at))
    with session_scope(engine) as db:
        assert db.scalar(select(func.count()).select_from(LabelRecord)) == 1
