"""Studies: create them, find them, describe and close them (the work they hold: `study_units`)."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

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
    Study,
    WorkerStats,
)
from subjlab.tasks import (
    OBJECTIVITY_DEFINITION,
    REGISTRY,
    TaskSpec,
    TaskSpecError,
    get_task,
    task_from_mapping,
)

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


def require_open(study: Study) -> None:
    if study.status != OPEN:
        raise ApiError(409, f"study {study.name!r} is closed", "study")


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
    """Return the number of units: items (labeling) or task pairs (pairwise), as counted when they were added."""
    return int(db.scalar(select(Study.n_units).where(Study.id == study.id)) or 0)


def count_answers(db: Session, study: Study) -> int:
    """Return the number of answers stored (labels or judgments; attention checks not counted), from the
    per-worker counters (`tallies`)."""
    return int(db.scalar(select(func.coalesce(func.sum(WorkerStats.answered), 0))
                         .where(WorkerStats.study_id == study.id)) or 0)


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
