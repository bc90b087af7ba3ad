"""Filling a study with work: tasks (pairwise), items (labeling) and gold checks, from the CLI or JSON.

Every unit of work is materialised as slots when it is added (see `models.py`): a labeling item gets
`labels_per_item` slots; each new pair of tasks gets `judgments_per_pair` slots, half with each task on
the left (the odd one, if any, on a random side), in random order. The study's unit and slot counters
(`tallies`) move on in the same transaction.
"""

from __future__ import annotations

import math
import random
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from annotation_server import api_models as m
from annotation_server import validation as v
from annotation_server.clock import utcnow
from annotation_server.errors import ApiError
from annotation_server.models import (
    LABELING,
    PAIRWISE,
    SLOT_OPEN,
    Assignment,
    GoldItem,
    Item,
    Study,
    StudyTask,
    TaskPair,
)
from subjlab.records import Example
from subjlab.tasks import TaskSpec
from annotation_server.studies import (
    DEFAULT_EXAMPLES_PER_TASK,
    DEFAULT_JUDGMENTS_PER_PAIR,
    DEFAULT_LABELS_PER_ITEM,
    count_units,
    get_study,
    require_open,
    resolve_task,
)


class MissingTaskData(ApiError):
    """422: tasks with no example texts of their own whose training data is neither bundled with subjlab
    nor in the data directory; the message says how to get it, for all such tasks at once."""

    def __init__(self, names: Sequence[str]):
        self.names = tuple(names)
        one = len(names) == 1
        which = f"task {names[0]!r} has" if one else f"tasks {', '.join(repr(n) for n in names)} have"
        super().__init__(422, f"{which} no example texts and no data here (<task>/train.jsonl is neither bundled "
                              f"with subjlab nor in the data directory): fetch {'it' if one else 'them'} with "
                              f"`subjlab data fetch {' '.join(names)} --out DIR`, then pass --data DIR (or start the "
                              "server with SUBJLAB_DATA=DIR), or give 'examples' in the task spec", "tasks")


def sample_examples(spec: TaskSpec, n: int, data_dir: str | Path | None = None, seed: int = 0) -> list[str]:
    """Return `n` example texts of a task: its own `examples`, else a seeded sample of its train data
    spread over the labels (via `subjlab.data.load_split`). MissingTaskData (422) if neither exists,
    ApiError 422 if the data cannot be read."""
    if spec.examples:
        return list(spec.examples[:n])
    from subjlab.data import load_split
    from subjlab.records import RecordError

    # messages name the file relative to the data directory: no server path ever reaches a client
    where = f"{spec.data_name}/train.jsonl"
    try:
        rows = load_split(spec, "train", data_dir, limit_per_label=max(1, math.ceil(n / len(spec.labels))), seed=seed)
    except FileNotFoundError:
        raise MissingTaskData([spec.name]) from None
    except RecordError as exc:
        line = f" at line {exc.line}" if exc.line else ""
        field = f" (field {exc.field!r})" if exc.field else ""
        raise ApiError(422, f"task {spec.name!r}: its data file {where} is malformed{line}{field}; "
                            "fix the file or give 'examples' in the task spec", "tasks") from None
    except (OSError, ValueError):
        raise ApiError(422, f"task {spec.name!r}: its data file {where} cannot be read; "
                            "fix the file or give 'examples' in the task spec", "tasks") from None
    by_label: dict[str, list[str]] = {}
    for ex in rows:
        by_label.setdefault(ex.label or "", []).append(ex.text)
    rng = random.Random(f"{seed}:{spec.name}")
    out: list[str] = []
    pools = [rng.sample(texts, len(texts)) for _, texts in sorted(by_label.items())]
    while len(out) < n and any(pools):
        for pool in pools:
            if pool and len(out) < n:
                out.append(pool.pop())
    if not out:
        raise ApiError(422, f"task {spec.name!r}: no training examples found to show workers", "tasks")
    return out


def add_tasks(db: Session, study: Study, specs: Sequence[TaskSpec], data_dir: str | Path | None = None,
              seed: int = 0, now: datetime | None = None) -> int:
    """Add tasks to a pairwise study, with example texts, and the slots of every new pair; return how many."""
    if study.kind != PAIRWISE:
        raise ApiError(400, f"study {study.name!r} is a labeling study: add 'examples', not 'tasks'", "tasks")
    require_open(study)
    now = now or utcnow()
    existing = {t.key: t for t in db.scalars(select(StudyTask).where(StudyTask.study_id == study.id))}
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in existing or spec.name in seen:
            raise ApiError(409, f"tasks[{i}]: task {spec.name!r} is already in study {study.name!r}", f"tasks[{i}]")
        seen.add(spec.name)
    examples: dict[str, list[str]] = {}
    missing: list[str] = []
    for spec in specs:  # every task's examples first, so one error names all the tasks missing data
        try:
            examples[spec.name] = sample_examples(spec, study.examples_per_task or DEFAULT_EXAMPLES_PER_TASK,
                                                  data_dir, seed)
        except MissingTaskData:
            missing.append(spec.name)
    if missing:
        raise MissingTaskData(missing)
    new_tasks = []
    for spec in specs:
        task = StudyTask(study_id=study.id, key=spec.name, spec=spec.to_dict(), examples=examples[spec.name],
                         created_at=now)
        db.add(task)
        new_tasks.append(task)
    db.flush()
    everyone = sorted(list(existing.values()) + new_tasks, key=lambda t: t.key)
    new_ids = {t.id for t in new_tasks}
    rng = random.Random(secrets.randbits(64))
    quota = study.judgments_per_pair or DEFAULT_JUDGMENTS_PER_PAIR
    pairs: list[tuple[TaskPair, StudyTask, StudyTask]] = []
    for i, a in enumerate(everyone):
        for b in everyone[i + 1 :]:
            if a.id in new_ids or b.id in new_ids:
                pair = TaskPair(study_id=study.id, first_task_id=a.id, second_task_id=b.id)
                db.add(pair)
                pairs.append((pair, a, b))
    db.flush()
    for pair, a, b in pairs:
        orders = [True, False] * (quota // 2) + ([rng.random() < 0.5] if quota % 2 else [])
        rng.shuffle(orders)
        for slot, a_left in enumerate(orders):
            left, right = (a, b) if a_left else (b, a)
            db.add(Assignment(study_id=study.id, unit_key=f"p{pair.id}", slot=slot, pair_id=pair.id,
                              left_task_id=left.id, right_task_id=right.id, status=SLOT_OPEN))
    _count_added(db, study, len(pairs), len(pairs) * quota)
    refresh_statistics(db, [StudyTask, TaskPair, Assignment])
    return len(new_tasks)


def add_examples(db: Session, study: Study, examples: Sequence[Example], now: datetime | None = None) -> int:
    """Add items to a labeling study with `labels_per_item` slots each; return how many. 409 on a repeated id."""
    if study.kind != LABELING:
        raise ApiError(400, f"study {study.name!r} is a pairwise study: add 'tasks', not 'examples'", "examples")
    require_open(study)
    now = now or utcnow()
    ids = [ex.id for ex in examples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ApiError(409, f"examples: id {dup!r} is given twice", "examples")
    taken = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        taken.update(db.scalars(select(Item.external_id).where(Item.study_id == study.id, Item.external_id.in_(chunk))))
    if taken:
        raise ApiError(409, f"examples: id {sorted(taken)[0]!r} is already in study {study.name!r}", "examples")
    items = []
    for ex in examples:
        extra = dict(ex.extra)
        if ex.label is not None:
            extra["label"] = ex.label
        items.append(Item(study_id=study.id, external_id=ex.id, text=ex.text, extra=extra, created_at=now))
    db.add_all(items)
    db.flush()
    k = study.labels_per_item or DEFAULT_LABELS_PER_ITEM
    db.add_all([Assignment(study_id=study.id, unit_key=f"i{it.id}", slot=s, item_id=it.id, status=SLOT_OPEN)
                for it in items for s in range(k)])
    _count_added(db, study, len(items), len(items) * k)
    refresh_statistics(db, [Item, Assignment])
    return len(items)


def _count_added(db: Session, study: Study, units: int, slots: int) -> None:
    """Flush the new rows and add them to the study's unit and slot counters (`tallies`), as one atomic
    increment each (concurrent adds to the same study do not lose one another's)."""
    study.n_units = Study.n_units + units
    study.n_slots = Study.n_slots + slots
    db.add(study)
    db.flush()


def refresh_statistics(db: Session, tables: Sequence[type]) -> None:
    """PostgreSQL: ANALYZE `tables` (model classes) inside the current transaction, so the planner knows about
    a bulk add at once instead of after autovacuum's next round (the new statistics commit with the rows).
    No-op on SQLite, whose planner does not use statistics unless asked to."""
    conn = db.connection()
    if conn.dialect.name != "postgresql":
        return
    names = ", ".join(conn.dialect.identifier_preparer.quote(t.__tablename__) for t in tables)
    conn.exec_driver_sql(f"ANALYZE {names}")


def add_gold(db: Session, study: Study, entries: Sequence[Any], now: datetime | None = None) -> int:
    """Add attention checks with known answers; return how many.

    labeling: `{"id", "text", "answer": label}`; pairwise: `{"left": key, "right": key, "answer": key,
    "id"?}` over tasks already in the study (shown in the order given).
    """
    require_open(study)
    now = now or utcnow()
    checks = [v.validate(m.GoldCheck, e, f"gold[{i}]") for i, e in enumerate(entries)]  # CLI rows, API models
    golds: list[GoldItem] = []
    if study.kind == LABELING:
        labels = study.task_spec["labels"]
        for i, check in enumerate(checks):
            f = f"gold[{i}]"
            if not isinstance(check, m.LabelCheck):
                raise ApiError(400, f"{f}: the checks of a labeling study are {{\"id\", \"text\", \"answer\"}}", f)
            if check.answer not in labels:
                raise ApiError(422, f"{f}.answer must be one of the labels {labels}", f"{f}.answer")
            golds.append(GoldItem(study_id=study.id, key=check.id, text=check.text, answer=check.answer, created_at=now))
    else:
        tasks = {t.key: t for t in db.scalars(select(StudyTask).where(StudyTask.study_id == study.id))}
        for i, check in enumerate(checks):
            f = f"gold[{i}]"
            if not isinstance(check, m.PairCheck):
                raise ApiError(400, f"{f}: the checks of a pairwise study are {{\"left\", \"right\", \"answer\", \"id\"}}", f)
            left, right, answer = check.left, check.right, check.answer
            for name, val in (("left", left), ("right", right)):
                if val not in tasks:
                    raise ApiError(422, f"{f}.{name} must be a task of the study ({sorted(tasks)})", f"{f}.{name}")
            if left == right:
                raise ApiError(422, f"{f}: left and right must differ", f"{f}.right")
            if answer not in (left, right):
                raise ApiError(422, f"{f}.answer must be left or right ({left!r} or {right!r})", f"{f}.answer")
            key = check.id if check.id is not None else v.identifier(f"{left}-vs-{right}", f"{f}.id", max_len=200)
            golds.append(GoldItem(study_id=study.id, key=key, left_task_id=tasks[left].id,
                                  right_task_id=tasks[right].id, answer=answer, created_at=now))
    keys = [g.key for g in golds]
    if len(set(keys)) != len(keys) or db.scalars(select(GoldItem.id).where(GoldItem.study_id == study.id, GoldItem.key.in_(keys))).first():
        raise ApiError(409, "gold: an id is repeated or already in the study", "gold")
    db.add_all(golds)
    db.flush()
    return len(golds)


def add_units_from_json(db: Session, name: str, body: Any, data_dir: str | Path | None = None,
                        now: datetime | None = None) -> dict[str, Any]:
    """Validate a `POST /studies/{name}/items` body and add its tasks/examples/gold; return the reply JSON.

    409 when a concurrent request added the same task, item id or check a moment before (the database's
    UNIQUE constraints decide; nothing of this request is kept)."""
    try:
        return _add_units_from_json(db, name, body, data_dir, now)
    except IntegrityError:
        raise ApiError(409, "a task, item or check of this request was added by another request at the same "
                            "moment; nothing of this request was added", "body") from None


def _add_units_from_json(db: Session, name: str, body: Any, data_dir: str | Path | None,
                         now: datetime | None) -> dict[str, Any]:
    study = get_study(db, name)
    items = v.validate(m.ItemsAdd, body)
    added: dict[str, int] = {}
    if items.tasks is not None:
        specs = [resolve_task(t, f"tasks[{i}]") for i, t in enumerate(items.tasks)]
        added["tasks"] = add_tasks(db, study, specs, data_dir=data_dir, now=now)
    if items.examples is not None:
        examples = [Example(id=e.id, text=e.text, label=e.label, extra=dict(e.model_extra or {})) for e in items.examples]
        added["examples"] = add_examples(db, study, examples, now=now)
    if items.gold is not None:
        added["gold"] = add_gold(db, study, items.gold, now=now)
    return {"study": study.name, "added": added, "units": count_units(db, study)}
