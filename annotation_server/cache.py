"""A per-app cache of the metadata the worker hot path needs and that never changes once written.

What is cached (all immutable in the database once created):
- a study's fixed settings (`StudyMeta`: id, name, kind, quota, caps, labels, task texts), found by name or
  id. A study's `status` is NOT cached: it changes (close), so every request reads it fresh. The entry is
  checked against the study's `created_at` whenever a request reads that (the identity query does), so a
  database that was rebuilt under a running server cannot serve stale settings.
- the task cards of a pairwise study's tasks (`StudyTask` rows are never updated), by task id;
- the texts of labeling attention checks (`GoldItem` rows are never updated), by check id, so a check
  is served with the same statements as a regular unit;
- which worker and study a session token belongs to (`SessionRef`, keyed by the token's SHA-256), in a
  bounded LRU. This is never used as proof of identity: every statement that reads or writes a
  worker's data checks the token against `worker_session` itself; the cache only lets the answer path know
  the study (and so the valid labels) before it runs its single statement.

One `MetadataCache` lives in each app's `ServerState` (`app.extensions["subjlab"].cache`); nothing is
module-global, so apps (and tests) never see each other's entries.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.engine import Connection

from annotation_server.handles import HandleCodec
from annotation_server.models import LABELING, GoldItem, Study, StudyTask

#: How many session tokens the cache remembers (LRU).
SESSION_CACHE_SIZE = 20_000


@dataclass(frozen=True)
class StudyMeta:
    """The fixed settings of a study (everything but its status)."""

    id: int
    name: str
    kind: str
    scheduler: str
    quota: int
    max_per_worker: int | None
    gold_every: int | None
    created_at: datetime
    labels: tuple[str, ...] = ()
    label_descriptions: Mapping[str, str] | None = None
    task: Mapping[str, Any] | None = None
    require_signed_entry: bool = False
    #: the study's opaque assignment handles (`handles.py`), keyed by its own secret
    handles: HandleCodec | None = field(default=None, compare=False, repr=False)

    @property
    def labeling(self) -> bool:
        """True for a labeling study, False for a pairwise one."""
        return self.kind == LABELING


@dataclass(frozen=True)
class TaskMeta:
    """A task of a pairwise study: its key and the TaskCard JSON shown to workers."""

    id: int
    study_id: int
    key: str
    card: Mapping[str, Any]


@dataclass(frozen=True)
class SessionRef:
    """Whom a worker session token belongs to (immutable once the session exists)."""

    session_id: int
    worker_pk: int
    worker_id: str
    study_id: int


def _study_meta(row) -> StudyMeta:
    spec = row.task_spec or {}
    quota = (row.labels_per_item if row.kind == LABELING else row.judgments_per_pair) or 1
    return StudyMeta(
        id=row.id, name=row.name, kind=row.kind, scheduler=row.scheduler, quota=int(quota),
        max_per_worker=row.max_per_worker, gold_every=row.gold_every, created_at=row.created_at,
        labels=tuple(spec.get("labels", ())), label_descriptions=dict(spec.get("label_descriptions", {})) if spec else None,
        task={"name": spec["name"], "title": spec["title"], "description": spec["description"]} if spec else None,
        require_signed_entry=bool(row.require_signed_entry), handles=HandleCodec(row.signing_secret),
    )


def task_card(key: str, spec: Mapping[str, Any], examples: list[str]) -> dict[str, Any]:
    """Return the TaskCard JSON of a task (key, title, description, labels, label descriptions, examples)."""
    return {
        "task": key,
        "title": spec["title"],
        "description": spec["description"],
        "labels": list(spec["labels"]),
        "label_descriptions": dict(spec["label_descriptions"]),
        "examples": list(examples),
    }


class MetadataCache:
    """Thread-safe cache of `StudyMeta`, `TaskMeta` and `SessionRef` (see the module doc)."""

    def __init__(self, session_capacity: int = SESSION_CACHE_SIZE) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, StudyMeta] = {}
        self._by_id: dict[int, StudyMeta] = {}
        self._tasks: dict[int, TaskMeta] = {}
        self._task_keys: dict[tuple[int, str], TaskMeta] = {}
        self._gold_texts: dict[int, tuple[int, str]] = {}  # gold id -> (study id, text)
        self._sessions: OrderedDict[str, SessionRef] = OrderedDict()
        self._session_capacity = session_capacity

    # ------------------------------------------------------------------ studies
    def _load_study(self, conn: Connection, clause) -> StudyMeta | None:
        S = Study.__table__.c
        row = conn.execute(select(S.id, S.name, S.kind, S.scheduler, S.labels_per_item, S.judgments_per_pair,
                                  S.max_per_worker, S.gold_every, S.created_at, S.task_spec, S.require_signed_entry,
                                  S.signing_secret).where(clause)).first()
        if row is None:
            return None
        meta = _study_meta(row)
        with self._lock:
            self._by_name[meta.name] = meta
            self._by_id[meta.id] = meta
        return meta

    def study_by_name(self, conn: Connection, name: str) -> StudyMeta | None:
        """Return the StudyMeta of the study called `name` (reading it on a miss), or None if there is none."""
        meta = self._by_name.get(name)
        if meta is not None:
            return meta
        return self._load_study(conn, Study.__table__.c.name == name)

    def study_by_id(self, conn: Connection, study_id: int) -> StudyMeta | None:
        """Return the StudyMeta of study `study_id` (reading it on a miss), or None if there is none."""
        meta = self._by_id.get(study_id)
        if meta is not None:
            return meta
        return self._load_study(conn, Study.__table__.c.id == study_id)

    def check_version(self, meta: StudyMeta, created_at: datetime | None) -> bool:
        """Return True when `meta` matches a study row created at `created_at`; else forget the entry."""
        if created_at is not None and _same_instant(created_at, meta.created_at):
            return True
        with self._lock:
            if self._by_name.get(meta.name) is meta:
                del self._by_name[meta.name]
            if self._by_id.get(meta.id) is meta:
                del self._by_id[meta.id]
            for key in [k for k, t in self._tasks.items() if t.study_id == meta.id]:
                t = self._tasks.pop(key)
                self._task_keys.pop((t.study_id, t.key), None)
            for key in [k for k, (sid, _) in self._gold_texts.items() if sid == meta.id]:
                del self._gold_texts[key]
        return False

    # ------------------------------------------------------------------ tasks
    def _load_tasks(self, conn: Connection, study_id: int) -> None:
        T = StudyTask.__table__.c
        rows = conn.execute(select(T.id, T.key, T.spec, T.examples).where(T.study_id == study_id)).all()
        metas = [TaskMeta(id=r.id, study_id=study_id, key=r.key, card=task_card(r.key, r.spec, r.examples)) for r in rows]
        with self._lock:
            for t in metas:
                self._tasks[t.id] = t
                self._task_keys[(study_id, t.key)] = t

    def task(self, conn: Connection, study_id: int, task_id: int) -> TaskMeta | None:
        """Return the TaskMeta of task `task_id` of a pairwise study (reading the study's tasks on a miss)."""
        found = self._tasks.get(task_id)
        if found is None:
            self._load_tasks(conn, study_id)
            found = self._tasks.get(task_id)
        return found if found is not None and found.study_id == study_id else None

    def task_by_key(self, conn: Connection, study_id: int, key: str) -> TaskMeta | None:
        """Return the TaskMeta of the task called `key` in a pairwise study, or None if it has none such."""
        found = self._task_keys.get((study_id, key))
        if found is None:
            self._load_tasks(conn, study_id)
            found = self._task_keys.get((study_id, key))
        return found

    # ------------------------------------------------------------------ attention checks
    def gold_text(self, conn: Connection, study_id: int, gold_id: int) -> str:
        """The text of labeling attention check `gold_id` of a study (gold items are never updated; the study's
        checks are read on a miss). KeyError if the study has no such check."""
        found = self._gold_texts.get(gold_id)
        if found is None or found[0] != study_id:
            G = GoldItem.__table__.c
            rows = conn.execute(select(G.id, G.text).where(G.study_id == study_id)).all()
            with self._lock:
                for gid, text in rows:
                    self._gold_texts[gid] = (study_id, text)
            found = self._gold_texts.get(gold_id)
            if found is None or found[0] != study_id:
                raise KeyError(f"study {study_id} has no attention check {gold_id}")
        return found[1]

    # ------------------------------------------------------------------ sessions
    def session(self, token_hash: str) -> SessionRef | None:
        """Return the remembered SessionRef of a token hash, or None."""
        with self._lock:
            ref = self._sessions.get(token_hash)
            if ref is not None:
                self._sessions.move_to_end(token_hash)
            return ref

    def remember_session(self, token_hash: str, ref: SessionRef) -> None:
        """Remember whom a token belongs to (evicting the least recently used beyond the capacity)."""
        with self._lock:
            self._sessions[token_hash] = ref
            self._sessions.move_to_end(token_hash)
            while len(self._sessions) > self._session_capacity:
                self._sessions.popitem(last=False)


def _same_instant(a: datetime, b: datetime) -> bool:
    if (a.tzinfo is None) != (b.tzinfo is None):
        a, b = a.replace(tzinfo=None), b.replace(tzinfo=None)
    return a == b
