"""Studies: create them, find them, describe and close them (the work they hold: `study_units`)."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from annotation_server import api_models as m
from annotation_server import validation as v
from annotation_server.clock import iso, utcnow
from annotation_server.errors import ApiError
from annotation_server.models import (
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
    if isinstance(value, Mapping):  # not checked yet (the API's bodies arrive as models)
        value = v.validate(m.TaskSpecBody, value, field)
    if isinstance(value, m.TaskSpecBody):
        try:
            return task_from_mapping(value.model_dump(exclude_unset=True), field)
        except TaskSpecError as exc:
            raise ApiError(400, str(exc), field) from None
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
    given = dict(name=name, kind=kind, labels_per_item=labels_per_item, judgments_per_pair=judgments_per_pair,
                 scheduler=scheduler, examples_per_task=examples_per_task, max_per_worker=max_per_worker,
                 gold_every=gold_every, title=title, instructions=instructions, require_signed_entry=require_signed_entry)
    checked = v.validate(m.StudySettings, {key: value for key, value in given.items() if value is not None})
    name, kind, scheduler = checked.name, checked.kind, checked.scheduler
    max_per_worker, gold_every = checked.max_per_worker, checked.gold_every
    now = now or utcnow()
    if kind == LABELING:
        if task is None:
            raise ApiError(400, "a labeling study needs 'task' (a registry key or a task spec)", "task")
        if judgments_per_pair is not None or scheduler != BALANCED or examples_per_task is not None:
            raise ApiError(400, "judgments_per_pair, scheduler and examples_per_task belong to pairwise studies", "kind")
        k = checked.labels_per_item or DEFAULT_LABELS_PER_ITEM
        study = Study(name=name, kind=kind, task_spec=task.to_dict(), labels_per_item=k, scheduler=BALANCED,
                      title=title or task.title, instructions=instructions or LABELING_INSTRUCTIONS,
                      max_per_worker=max_per_worker, gold_every=gold_every,
                      completion_secret=secrets.token_hex(16), created_at=now)
    else:
        if task is not None or labels_per_item is not None:
            raise ApiError(400, "task and labels_per_item belong to labeling studies (pairwise studies get tasks via items)", "kind")
        r = checked.judgments_per_pair or DEFAULT_JUDGMENTS_PER_PAIR
        n_ex = checked.examples_per_task or DEFAULT_EXAMPLES_PER_TASK
        study = Study(name=name, kind=kind, judgments_per_pair=r, scheduler=scheduler, examples_per_task=n_ex,
                      title=title or "Which classification task is more objective?",
                      instructions=instructions or PAIRWISE_INSTRUCTIONS,
                      max_per_worker=max_per_worker, gold_every=gold_every,
                      completion_secret=secrets.token_hex(16), created_at=now)
    study.require_signed_entry = checked.require_signed_entry
    study.signing_secret = secrets.token_hex(32)
    if db.scalars(select(Study.id).where(Study.name == name)).first() is not None:
        raise ApiError(409, f"a study called {name!r} already exists", "name")
    db.add(study)
    try:
        db.flush()
    except IntegrityError:
        raise ApiError(409, f"a study called {name!r} already exists", "name") from None
    return study


def create_study_from_json(db: Session, body: Any, now: datetime | None = None) -> Study:
    """Validate a `POST /studies` body (`api_models.StudyCreate`) and create the study."""
    checked = v.validate(m.StudyCreate, body)
    task = resolve_task(checked.task, "task") if checked.task is not None else None
    return create_study(db, task=task, now=now, **checked.model_dump(exclude={"task"}))


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
