"""Studies: create them, fill them with work (tasks, items, gold checks), describe and close them.

Every unit of work is materialised as slots when it is added (see `models.py`): a labeling item gets
`labels_per_item` slots; each new pair of tasks gets `judgments_per_pair` slots, half with each task on
the left (the odd one, if any, on a random side), in random order.
"""

from __future__ import annotations

import math
import random
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from annotation_server import validation as v
from annotation_server.clock import iso, utcnow
from annotation_server.errors import ApiError
from annotation_server.models import (
    ACTIVE,
    BALANCED,
    CLOSED,
    LABELING,
    OPEN,
    PAIRWISE,
    SLOT_OPEN,
    Assignment,
    GoldItem,
    Item,
    Judgment,
    LabelRecord,
    Study,
    StudyTask,
    TaskPair,
)
from subjlab.records import Example
from subjlab.tasks import OBJECTIVITY_DEFINITION, REGISTRY, TaskSpec, TaskSpecError, get_task, task_from_mapping

DEFAULT_LABELS_PER_ITEM = 3
#: 12 judgments per pair: the paper's ~540 comparisons over the 45 pairs of 10 tasks.
DEFAULT_JUDGMENTS_PER_PAIR = 12
DEFAULT_EXAMPLES_PER_TASK = 3
MAX_SLOTS_PER_UNIT = 1000

PAIRWISE_QUESTION = "Which of these two classification tasks is more objective?"
PAIRWISE_INSTRUCTIONS = (
    "You will see two text-classification tasks side by side, each with its description, its labels and "
    "a few example texts. Decide which of the two is MORE OBJECTIVE. A classification is objective when "
    + OBJECTIVITY_DEFINITION
)
LABELING_INSTRUCTIONS = "Read each text and choose the label that fits it best. There are no trick questions; go with your reading."


def get_study(db: Session, name: str) -> Study:
    """Return the study called `name`; ApiError 404 if there is none."""
    if not isinstance(name, str) or not v.is_study_name(name):
        raise ApiError(404, f"unknown study {str(name)[:80]!r}", "study")
    study = db.scalars(select(Study).where(Study.name == name)).first()
    if study is None:
        raise ApiError(404, f"unknown study {name[:80]!r}", "study")
    return study


def resolve_task(value: Any, field: str, allow_files: bool = False) -> TaskSpec:
    """Return the TaskSpec for a registry key or a task-spec object (and a TOML/YAML path if allow_files)."""
    if isinstance(value, str):
        if value in REGISTRY:
            return REGISTRY[value]
        if allow_files and Path(value).suffix.lower() in (".toml", ".yaml", ".yml"):
            return get_task(value)
        raise ApiError(422, f"{field}: unknown task {value[:80]!r}; known tasks: {', '.join(REGISTRY)} (or give a task spec object)", field)
    if isinstance(value, Mapping):
        try:
            spec = task_from_mapping(value, field)
        except TaskSpecError as exc:
            raise ApiError(400, str(exc), field) from None
        v.identifier(spec.name, f"{field}.name", max_len=100)
        if not v.is_data_name(spec.data_name):
            raise ApiError(400, f"{field}.data_name must be the name of a dataset folder (letters, digits, '_ . -'), "
                                "not a path", f"{field}.data_name")
        for i, ex in enumerate(spec.examples):
            v.text(ex, f"{field}.examples[{i}]", max_len=20_000)
        for key in ("title", "description"):
            v.text(getattr(spec, key), f"{field}.{key}", max_len=5_000)
        return spec
    raise ApiError(400, f"{field} must be a registry key (string) or a task spec (object)", field)


def create_study(
    db: Session,
    name: str,
    kind: str,
    task: TaskSpec | None = None,
    labels_per_item: int | None = None,
    judgments_per_pair: int | None = None,
    scheduler: str = BALANCED,
    examples_per_task: int | None = None,
    max_per_worker: int | None = None,
    gold_every: int | None = None,
    title: str | None = None,
    instructions: str | None = None,
    now: datetime | None = None,
    require_signed_entry: bool = False,
) -> Study:
    """Create and return a study (validated); ApiError 409 if the name is taken.

    pairwise: `judgments_per_pair` (default 12), `scheduler` "balanced" or "active",
    `examples_per_task` shown per task (default 3). labeling: `task` (required) and `labels_per_item` K
    (default 3). Both: `max_per_worker` (cap of units per worker), `gold_every` (one attention check
    after every n-1 units, when gold items exist), `require_signed_entry` (sessions only through links
    signed with the study's secret, `entry.sign_worker`).
    """
    name = v.study_name(name)
    kind = v.choice(kind, "kind", (PAIRWISE, LABELING))
    scheduler = v.choice(scheduler, "scheduler", (BALANCED, ACTIVE))
    max_per_worker = v.positive_int(max_per_worker, "max_per_worker", allow_none=True)
    gold_every = v.positive_int(gold_every, "gold_every", maximum=1000, allow_none=True)
    if gold_every == 1:
        raise ApiError(400, "gold_every must be at least 2 (1 would make every unit a check)", "gold_every")
    now = now or utcnow()
    if kind == LABELING:
        if task is None:
            raise ApiError(400, "a labeling study needs 'task' (a registry key or a task spec)", "task")
        if judgments_per_pair is not None or scheduler != BALANCED or examples_per_task is not None:
            raise ApiError(400, "judgments_per_pair, scheduler and examples_per_task belong to pairwise studies", "kind")
        k = v.positive_int(labels_per_item if labels_per_item is not None else DEFAULT_LABELS_PER_ITEM, "labels_per_item", maximum=MAX_SLOTS_PER_UNIT)
        study = Study(name=name, kind=kind, task_spec=task.to_dict(), labels_per_item=k, scheduler=BALANCED,
                      title=title or task.title, instructions=instructions or LABELING_INSTRUCTIONS,
                      max_per_worker=max_per_worker, gold_every=gold_every,
                      completion_secret=secrets.token_hex(16), created_at=now)
    else:
        if task is not None or labels_per_item is not None:
            raise ApiError(400, "task and labels_per_item belong to labeling studies (pairwise studies get tasks via items)", "kind")
        r = v.positive_int(judgments_per_pair if judgments_per_pair is not None else DEFAULT_JUDGMENTS_PER_PAIR, "judgments_per_pair", maximum=MAX_SLOTS_PER_UNIT)
        n_ex = v.positive_int(examples_per_task if examples_per_task is not None else DEFAULT_EXAMPLES_PER_TASK, "examples_per_task", maximum=20)
        study = Study(name=name, kind=kind, judgments_per_pair=r, scheduler=scheduler, examples_per_task=n_ex,
                      title=title or "Which classification task is more objective?",
                      instructions=instructions or PAIRWISE_INSTRUCTIONS,
                      max_per_worker=max_per_worker, gold_every=gold_every,
                      completion_secret=secrets.token_hex(16), created_at=now)
    if title is not None:
        study.title = v.text(title, "title", max_len=200)
    if instructions is not None:
        study.instructions = v.text(instructions, "instructions", max_len=20_000)
    if not isinstance(require_signed_entry, bool):
        raise ApiError(400, "require_signed_entry must be true or false", "require_signed_entry")
    study.require_signed_entry = require_signed_entry
    study.signing_secret = secrets.token_hex(32)
    if db.scalars(select(Study.id).where(Study.name == name)).first() is not None:
        raise ApiError(409, f"a study called {name!r} already exists", "name")
    db.add(study)
    try:
        db.flush()
    except IntegrityError:
        raise ApiError(409, f"a study called {name!r} already exists", "name") from None
    return study


_CREATE_FIELDS = {"name", "kind", "task", "labels_per_item", "judgments_per_pair", "scheduler", "examples_per_task",
                  "max_per_worker", "gold_every", "title", "instructions", "require_signed_entry"}


def create_study_from_json(db: Session, body: Any, now: datetime | None = None) -> Study:
    """Validate a `POST /studies` body and create the study."""
    body = v.obj(body)
    v.no_unknown_keys(body, _CREATE_FIELDS)
    if "name" not in body:
        raise ApiError(400, "name is required", "name")
    if "kind" not in body:
        raise ApiError(400, "kind is required ('pairwise' or 'labeling')", "kind")
    task = resolve_task(body["task"], "task") if body.get("task") is not None else None
    return create_study(
        db, name=body["name"], kind=body["kind"], task=task,
        labels_per_item=body.get("labels_per_item"), judgments_per_pair=body.get("judgments_per_pair"),
        scheduler=body.get("scheduler", BALANCED), examples_per_task=body.get("examples_per_task"),
        max_per_worker=body.get("max_per_worker"), gold_every=body.get("gold_every"),
        title=body.get("title"), instructions=body.get("instructions"), now=now,
        require_signed_entry=body.get("require_signed_entry", False),
    )


def _require_open(study: Study) -> None:
    if study.status != OPEN:
        raise ApiError(409, f"study {study.name!r} is closed", "study")


def sample_examples(spec: TaskSpec, n: int, data_dir: str | Path | None = None, seed: int = 0) -> list[str]:
    """Return `n` example texts of a task: its own `examples`, else a seeded sample of its train data
    spread over the labels (via `subjlab.data.load_split`). ApiError 422 if neither exists."""
    if spec.examples:
        return list(spec.examples[:n])
    from subjlab.data import load_split
    from subjlab.records import RecordError

    # messages name the file relative to the data directory: no server path ever reaches a client
    where = f"{spec.data_name}/train.jsonl"
    try:
        rows = load_split(spec, "train", data_dir, limit_per_label=max(1, math.ceil(n / len(spec.labels))), seed=seed)
    except FileNotFoundError:
        raise ApiError(422, f"task {spec.name!r} has no example texts and its data ({where}) was not found; "
                            "give 'examples' in the task spec", "tasks") from None
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
    _require_open(study)
    now = now or utcnow()
    existing = {t.key: t for t in db.scalars(select(StudyTask).where(StudyTask.study_id == study.id))}
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in existing or spec.name in seen:
            raise ApiError(409, f"tasks[{i}]: task {spec.name!r} is already in study {study.name!r}", f"tasks[{i}]")
        seen.add(spec.name)
    new_tasks = []
    for spec in specs:
        examples = sample_examples(spec, study.examples_per_task or DEFAULT_EXAMPLES_PER_TASK, data_dir, seed)
        task = StudyTask(study_id=study.id, key=spec.name, spec=spec.to_dict(), examples=examples, created_at=now)
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
    db.flush()
    refresh_statistics(db, [StudyTask, TaskPair, Assignment])
    return len(new_tasks)


def add_examples(db: Session, study: Study, examples: Sequence[Example], now: datetime | None = None) -> int:
    """Add items to a labeling study with `labels_per_item` slots each; return how many. 409 on a repeated id."""
    if study.kind != LABELING:
        raise ApiError(400, f"study {study.name!r} is a pairwise study: add 'tasks', not 'examples'", "examples")
    _require_open(study)
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
    db.flush()
    refresh_statistics(db, [Item, Assignment])
    return len(items)


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
    _require_open(study)
    now = now or utcnow()
    golds: list[GoldItem] = []
    if study.kind == LABELING:
        labels = study.task_spec["labels"]
        for i, e in enumerate(entries):
            f = f"gold[{i}]"
            e = v.obj(e, f)
            v.no_unknown_keys(e, {"id", "text", "answer"}, f)
            key = v.identifier(e.get("id"), f"{f}.id", max_len=200)
            txt = v.text(e.get("text"), f"{f}.text")
            answer = e.get("answer")
            if not isinstance(answer, str) or answer not in labels:
                raise ApiError(422, f"{f}.answer must be one of the labels {labels}", f"{f}.answer")
            golds.append(GoldItem(study_id=study.id, key=key, text=txt, answer=answer, created_at=now))
    else:
        tasks = {t.key: t for t in db.scalars(select(StudyTask).where(StudyTask.study_id == study.id))}
        for i, e in enumerate(entries):
            f = f"gold[{i}]"
            e = v.obj(e, f)
            v.no_unknown_keys(e, {"id", "left", "right", "answer"}, f)
            left, right, answer = e.get("left"), e.get("right"), e.get("answer")
            for name, val in (("left", left), ("right", right)):
                if not isinstance(val, str) or val not in tasks:
                    raise ApiError(422, f"{f}.{name} must be a task of the study ({sorted(tasks)})", f"{f}.{name}")
            if left == right:
                raise ApiError(422, f"{f}: left and right must differ", f"{f}.right")
            if answer not in (left, right):
                raise ApiError(422, f"{f}.answer must be left or right ({left!r} or {right!r})", f"{f}.answer")
            key = v.identifier(e.get("id", f"{left}-vs-{right}"), f"{f}.id", max_len=200)
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
    body = v.obj(body)
    v.no_unknown_keys(body, {"tasks", "examples", "gold"})
    if not any(k in body for k in ("tasks", "examples", "gold")):
        raise ApiError(400, "give 'tasks' (pairwise), 'examples' (labeling) and/or 'gold'", "body")
    added: dict[str, int] = {}
    if "tasks" in body:
        specs = [resolve_task(t, f"tasks[{i}]") for i, t in enumerate(v.array(body["tasks"], "tasks", max_len=200))]
        added["tasks"] = add_tasks(db, study, specs, data_dir=data_dir, now=now)
    if "examples" in body:
        examples = [example_from_json(e, f"examples[{i}]") for i, e in enumerate(v.array(body["examples"], "examples", max_len=50_000))]
        added["examples"] = add_examples(db, study, examples, now=now)
    if "gold" in body:
        added["gold"] = add_gold(db, study, v.array(body["gold"], "gold", max_len=10_000), now=now)
    return {"study": study.name, "added": added, "units": count_units(db, study)}


def example_from_json(value: Any, field: str) -> Example:
    """Return an Example from `{"id", "text", ...extra}` (extra fields kept), validated."""
    value = v.obj(value, field)
    ex_id = v.identifier(value.get("id"), f"{field}.id", max_len=200)
    txt = v.text(value.get("text"), f"{field}.text")
    label = value.get("label")
    if label is not None and not isinstance(label, str):
        raise ApiError(400, f"{field}.label must be a string", f"{field}.label")
    extra = {k: val for k, val in value.items() if k not in ("id", "text", "label")}
    return Example(id=ex_id, text=txt, label=label, extra=extra)


def close_study(db: Session, name: str, now: datetime | None = None) -> Study:
    """Close a study (no new sessions; `next` answers 204); closing twice is harmless."""
    study = get_study(db, name)
    if study.status != CLOSED:
        study.status = CLOSED
        study.closed_at = now or utcnow()
        db.add(study)
        db.flush()
    return study


def count_units(db: Session, study: Study) -> int:
    """Return the number of units: items (labeling) or task pairs (pairwise)."""
    table = Item if study.kind == LABELING else TaskPair
    return int(db.scalar(select(func.count()).select_from(table).where(table.study_id == study.id)) or 0)


def count_answers(db: Session, study: Study) -> int:
    """Return the number of answers stored (labels or judgments; attention checks not counted)."""
    table = LabelRecord if study.kind == LABELING else Judgment
    return int(db.scalar(select(func.count()).select_from(table).where(table.study_id == study.id)) or 0)


def summary(db: Session, study: Study) -> dict[str, Any]:
    """Return the StudySummary JSON of a study (see CONTRACT.md)."""
    return {
        "name": study.name,
        "kind": study.kind,
        "status": study.status,
        "title": study.title,
        "scheduler": study.scheduler,
        "labels_per_item": study.labels_per_item,
        "judgments_per_pair": study.judgments_per_pair,
        "max_per_worker": study.max_per_worker,
        "gold_every": study.gold_every,
        "examples_per_task": study.examples_per_task,
        "task": study.task_spec["name"] if study.task_spec else None,
        "require_signed_entry": bool(study.require_signed_entry),
        "units": count_units(db, study),
        "answers": count_answers(db, study),
        "created_at": iso(study.created_at),
    }


def list_studies(db: Session) -> list[dict[str, Any]]:
    """Return the StudySummary of every study, oldest first."""
    return [summary(db, s) for s in db.scalars(select(Study).order_by(Study.id))]


def public_info(db: Session, name: str) -> dict[str, Any]:
    """Return the public StudyInfo JSON (what a worker page needs before a session exists)."""
    study = get_study(db, name)
    task = None
    if study.task_spec:
        t = study.task_spec
        task = {k: t[k] for k in ("name", "title", "description", "labels", "label_descriptions")}
    return {
        "name": study.name,
        "kind": study.kind,
        "status": study.status,
        "title": study.title,
        "instructions": study.instructions,
        "definition": OBJECTIVITY_DEFINITION if study.kind == PAIRWISE else None,
        "question": PAIRWISE_QUESTION if study.kind == PAIRWISE else None,
        "task": task,
    }
