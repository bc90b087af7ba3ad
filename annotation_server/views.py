"""What a worker sees: an assignment rendered as JSON (with the worker's progress).

Texts are returned verbatim (they are data); the pages escape them. Nothing here tells an attention check
from a regular unit: the slot is named by its opaque handle (`handles.py`), never by a database id or the
researcher's item id, and both kinds carry the same fields. The study's fixed texts (labels,
task descriptions, pairwise task cards) come from the app's metadata cache, the item text from the
statement that leased the slot, so rendering reads nothing more from the database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from annotation_server.cache import MetadataCache, StudyMeta, task_card
from annotation_server.clock import iso
from annotation_server.progress import Progress
from annotation_server.scheduling import Claimed
from annotation_server.studies import PAIRWISE_QUESTION
from subjlab.tasks import OBJECTIVITY_DEFINITION

__all__ = ["task_card", "assignment_json"]


def assignment_json(conn: Connection, cache: MetadataCache, meta: StudyMeta, claimed: Claimed,
                    progress: Progress) -> dict[str, Any]:
    """Return the Assignment JSON (see CONTRACT.md) of a slot leased to the worker."""
    out: dict[str, Any] = {"assignment": meta.handles.encode(claimed.assignment_id), "kind": meta.kind, "study": meta.name,
                           "lease_expires": iso(claimed.lease_expires)}
    if meta.labeling:
        out.update({
            "item": {"text": claimed.item_text if claimed.item_text is not None
                     else cache.gold_text(conn, meta.id, claimed.gold_id)},
            "labels": list(meta.labels),
            "label_descriptions": dict(meta.label_descriptions or {}),
            "task": dict(meta.task or {}),
        })
    else:
        left = cache.task(conn, meta.id, claimed.left_task_id)
        right = cache.task(conn, meta.id, claimed.right_task_id)
        if left is None or right is None:  # pragma: no cover - slots only name tasks of their study
            raise RuntimeError(f"assignment {claimed.assignment_id} names a task outside study {meta.name!r}")
        out.update({
            "question": PAIRWISE_QUESTION,
            "definition": OBJECTIVITY_DEFINITION,
            "left": _copy_card(left.card),
            "right": _copy_card(right.card),
        })
    out["progress"] = progress.to_json()
    return out


def _copy_card(card) -> dict[str, Any]:
    return {**card, "labels": list(card["labels"]), "label_descriptions": dict(card["label_descriptions"]),
            "examples": list(card["examples"])}
