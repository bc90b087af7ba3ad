"""The shapes of the JSON API (`/api/v1`) as pydantic models: one definition for request validation and
for the OpenAPI document (`openapi.py` builds it from these models' JSON Schema).

Request bodies are strict (`ApiModel`): no unknown fields, no type coercion ("4" is not 4, true is not
1), identifiers in a safe alphabet, bounded lengths. `validation.validate` runs them and turns pydantic's
errors into the API's error reply (400 naming the field). Reply models (`Reply`) describe what the
server sends; they are documentation and what the fuzz tests check replies against, not run per request.
One concern, a little over 450 lines: every shape of the API in one place, as the document shows them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    StringConstraints,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

#: A study name: letters, digits and `_ . -`, at most 64, starting with a letter or digit.
STUDY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: An identifier (worker, item, task key, check id): letters, digits and `_ . : @ / + -`, starting alphanumeric.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@/+-]*$"
#: A dataset folder name: one path component (so never `.`, `..` or a path); at most 64 characters.
DATA_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: Free text that is not blank (kept verbatim: it is data).
NOT_BLANK_PATTERN = r"\S"

#: The choices of a study's `kind` and `scheduler`.
StudyKind = Literal["pairwise", "labeling"]
Scheduler = Literal["balanced", "active"]
#: A yes/no query parameter (`?next=1`, `?include_unconfirmed=0`).
Flag = Literal["0", "1", "false", "true"]
#: What `GET /studies/{name}/export` exports.
ExportWhat = Literal["judgments", "labels"]


def _digits(value: Any) -> Any:
    """A JSON integer where an identifier goes is taken as its digits (a worker id 42 is the text "42")."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


@lru_cache(maxsize=None)
def identifier(max_len: int) -> Any:
    """The type of an identifier of at most `max_len` characters (a JSON integer is taken as its digits)."""
    constraints = StringConstraints(min_length=1, max_length=max_len, pattern=IDENTIFIER_PATTERN)
    as_text = {"type": "string", "minLength": 1, "maxLength": max_len, "pattern": IDENTIFIER_PATTERN}
    return Annotated[str, constraints, BeforeValidator(_digits),
                     WithJsonSchema({"anyOf": [as_text, {"type": "integer", "minimum": 0}]})]


def text(max_len: int) -> Any:
    """The type of a non-blank free text of at most `max_len` characters."""
    return Annotated[str, StringConstraints(max_length=max_len, pattern=NOT_BLANK_PATTERN)]


StudyName = Annotated[str, StringConstraints(pattern=STUDY_NAME_PATTERN)]
WorkerId = identifier(128)
ItemId = identifier(200)


def count(maximum: int, minimum: int = 1) -> Any:
    """The type of a whole number in [minimum, maximum] (booleans and numeric strings refused)."""
    return Annotated[int, Field(ge=minimum, le=maximum)]


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """Drop `"default": null` from properties that are not nullable (it only means "may be absent")."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", 0) is None and "anyOf" not in prop:
            del prop["default"]


class ApiModel(BaseModel):
    """A request body: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_no_null_defaults)


class Reply(BaseModel):
    """A reply body (documentation: replies may carry more fields than listed)."""

    model_config = ConfigDict(json_schema_extra=_no_null_defaults)


# ----------------------------------------------------------------------------------------- requests
class TaskSpecBody(ApiModel):
    """A task specification (the fields of subjlab.tasks.TaskSpec); checked further by `task_from_mapping`."""

    name: identifier(100)
    title: text(5_000)
    description: text(5_000)
    labels: list[str] = Field(min_length=2)
    label_descriptions: dict[str, str]
    context: str
    style: str
    word_limit: int = Field(None, ge=1)
    data_name: Annotated[str, StringConstraints(max_length=64, pattern=DATA_NAME_PATTERN)] = Field(
        None, description="a dataset folder under the data directory (default: name)")
    label_field: str = "label"
    label_map: dict[str, str] = {}
    examples: list[text(20_000)] = Field(default=[], max_length=1_000)


def _task_ref_tag(value: Any) -> str | None:
    return "task key" if isinstance(value, str) else "task spec" if isinstance(value, dict) else None


#: A task: a registry key ("sms_spam") or a task specification object.
TaskRef = Annotated[Union[Annotated[str, Tag("task key")], Annotated[TaskSpecBody, Tag("task spec")]],
                    Discriminator(_task_ref_tag, custom_error_type="task_ref",
                                  custom_error_message="must be a registry key (string) or a task spec (object)")]


class StudySettings(ApiModel):
    """A study's settings (everything `POST /studies` takes but the task); also what `subjlab study create` checks."""

    name: StudyName
    kind: StudyKind
    labels_per_item: Optional[count(1000)] = Field(None, description="labeling: K workers per item (default 3)")
    judgments_per_pair: Optional[count(1000)] = Field(None, description="pairwise: judgments per task pair (default 12)")
    scheduler: Scheduler = "balanced"
    examples_per_task: Optional[count(20)] = Field(None, description="pairwise: example texts per task (default 3)")
    max_per_worker: Optional[count(1_000_000)] = None
    gold_every: Optional[count(1000, minimum=2)] = Field(None, description="one attention check every n units")
    title: Optional[text(200)] = None
    instructions: Optional[text(20_000)] = None
    require_signed_entry: bool = Field(False, description="sessions only through signed entry links")


class StudyCreate(StudySettings):
    """`POST /studies`."""

    task: Optional[TaskRef] = Field(None, description="labeling: the task (a registry key or a task spec)")


class ExampleBody(ApiModel):
    """An item to label; fields beside id, text and label are kept with it."""

    model_config = ConfigDict(extra="allow")

    id: ItemId
    text: text(100_000)
    label: Optional[str] = None


class LabelCheck(ApiModel):
    """An attention check of a labeling study: a text and the label it must get."""

    id: ItemId
    text: text(100_000)
    answer: str


class PairCheck(ApiModel):
    """An attention check of a pairwise study: two of its tasks (in the order shown) and the right winner."""

    id: Optional[ItemId] = Field(None, description="default: LEFT-vs-RIGHT")
    left: str
    right: str
    answer: str


def _check_tag(value: Any) -> str:
    if isinstance(value, PairCheck) or (isinstance(value, dict) and ("left" in value or "right" in value)):
        return "pair check"
    return "label check"


#: One attention check (which kind is told by its fields: `left`/`right` make a pairwise one).
GoldCheck = Annotated[Union[Annotated[LabelCheck, Tag("label check")], Annotated[PairCheck, Tag("pair check")]],
                      Discriminator(_check_tag)]


def _at_least_one_part(schema: dict[str, Any]) -> None:
    _no_null_defaults(schema)
    schema["anyOf"] = [{"required": [part]} for part in ("tasks", "examples", "gold")]


class ItemsAdd(ApiModel):
    """`POST /studies/{name}/items`: any of tasks (pairwise), examples (labeling) and gold checks (one at least)."""

    model_config = ConfigDict(json_schema_extra=_at_least_one_part)

    tasks: list[TaskRef] = Field(None, min_length=1, max_length=200, description="pairwise studies")
    examples: list[ExampleBody] = Field(None, min_length=1, max_length=50_000, description="labeling studies")
    gold: list[GoldCheck] = Field(None, min_length=1, max_length=10_000, description="attention checks with known answers")

    @model_validator(mode="after")
    def _something(self) -> "ItemsAdd":
        if self.tasks is None and self.examples is None and self.gold is None:
            raise PydanticCustomError("nothing_to_add", "give 'tasks' (pairwise), 'examples' (labeling) and/or 'gold'")
        return self


class SessionCreate(ApiModel):
    """`POST /studies/{name}/sessions`."""

    worker_id: WorkerId
    signature: Optional[str] = Field(None, description="the sig of a signed entry link (required by studies with "
                                                       "require_signed_entry)")


def _one_of_winner_or_label(schema: dict[str, Any]) -> None:
    _no_null_defaults(schema)
    schema["oneOf"] = [{"required": ["winner"]}, {"required": ["label"]}]


class Answer(ApiModel):
    """`POST /assignments/{handle}`: exactly one of `winner` (pairwise: a task key) or `label` (labeling)."""

    model_config = ConfigDict(json_schema_extra=_one_of_winner_or_label)

    winner: str = Field(None, min_length=1)
    label: str = Field(None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> "Answer":
        if (self.winner is None) == (self.label is None):
            raise PydanticCustomError("exactly_one", "send exactly one of 'winner' (pairwise) or 'label' (labeling)")
        return self

    @property
    def field(self) -> str:
        """Which field the answer came in: "winner" or "label"."""
        return "winner" if self.winner is not None else "label"

    @property
    def value(self) -> str:
        """The task key or label answered."""
        return self.winner if self.winner is not None else self.label


# ------------------------------------------------------------------------------------------ replies
IsoTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Handle = Annotated[str, Field(pattern="^[0-9a-f]{16}$", description="opaque handle of the assignment")]


class ErrorDetail(Reply):
    """The error: HTTP status, a code word, a message for people and the offending field (if any)."""

    status: int
    code: str
    message: str
    field: Optional[str] = None


class Error(Reply):
    """Every error reply: `{"error": {"status", "code", "message", "field"}}`."""

    error: ErrorDetail


class Health(Reply):
    """Liveness: the database backend and the schema revision."""

    status: str
    database: str
    revision: Optional[str]


class StudySummary(Reply):
    """A study's settings and counts (what `POST /studies` and `close` return)."""

    name: str
    kind: StudyKind
    status: Literal["open", "closed"]
    title: str = None
    scheduler: str = None
    labels_per_item: Optional[int] = None
    judgments_per_pair: Optional[int] = None
    max_per_worker: Optional[int] = None
    gold_every: Optional[int] = None
    examples_per_task: Optional[int] = None
    task: Optional[str] = None
    units: int
    answers: int
    require_signed_entry: bool = None
    created_at: IsoTime = None


class StudyList(Reply):
    """Every study, oldest first."""

    studies: list[StudySummary]


class StudyInfo(Reply):
    """What a worker page shows before a session exists."""

    name: str
    kind: str
    status: str
    title: str
    instructions: str
    definition: Optional[str] = None
    question: Optional[str] = None
    task: Optional[dict[str, Any]] = None


class ItemsAdded(Reply):
    """How many tasks/examples/gold checks were added, and the study's units in all."""

    study: str
    added: dict[str, int]
    units: int


class SessionCreated(Reply):
    """The worker's bearer token for this study."""

    token: str
    worker_id: str
    study: str


class Progress(Reply):
    """The worker's units answered and the (estimated) target."""

    answered: int
    target: int


class TaskCard(Reply):
    """A task as workers see it in a pairwise assignment."""

    task: str
    title: str
    description: str
    labels: list[str]
    label_descriptions: dict[str, str] = None
    examples: list[str]


class ItemText(Reply):
    """The item of a labeling assignment: its text only."""

    model_config = ConfigDict(extra="forbid")  # workers see the text and nothing else of the item

    text: str


class PairwiseAssignment(Reply):
    """Which of two tasks is more objective."""

    assignment: Handle
    kind: Literal["pairwise"]
    study: str
    lease_expires: IsoTime = None
    question: str = None
    definition: str = None
    left: TaskCard
    right: TaskCard
    progress: Progress


class LabelingAssignment(Reply):
    """Which label fits an item."""

    assignment: Handle
    kind: Literal["labeling"]
    study: str
    lease_expires: IsoTime = None
    item: ItemText
    labels: list[str]
    label_descriptions: dict[str, str] = None
    task: dict[str, Any] = None
    progress: Progress


class Assignment(RootModel[Annotated[Union[PairwiseAssignment, LabelingAssignment], Field(discriminator="kind")]]):
    """What `next` leases to a worker: a pairwise or a labeling assignment (told apart by `kind`)."""


class AnswerRecorded(Reply):
    """The recorded answer (and, with `?next=1`, the next assignment)."""

    assignment: str
    kind: str
    winner: str = None
    label: str = None
    recorded_at: IsoTime
    next: Optional[Assignment] = Field(None, description="Only with ?next=1: the worker's next assignment (as GET "
                                                         "/studies/{name}/next returns it), or null when nothing is left")


class WorkerStatus(Reply):
    """The worker's progress and, once finished, the completion code."""

    study: str
    worker_id: str
    answered: int
    target: int
    finished: bool
    completion_code: Optional[str]


class StudyProgress(Reply):
    """Slots by state, complete units, workers, answers per worker, position bias, gold accuracy."""

    study: str
    kind: str
    status: str = None
    units: int
    slots: int
    answered: int
    active_leases: int = None
    expired_leases: int = None
    open_slots: int = None
    complete_units: int = None
    workers: int = None
    answers_per_worker: dict[str, Any] = None
    position: Optional[dict[str, Any]] = None
    gold: dict[str, Any] = None


class RankedTask(Reply):
    """One task's Bradley-Terry score, 95% interval, rank and judgments."""

    task: str = None
    score: float = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    rank: int = None
    n: int = None
    wins: int = None


class Ranking(Reply):
    """The objectivity ranking of a pairwise study, most objective first."""

    study: str
    n_judgments: int
    connected: Optional[bool] = None
    components: list[Any] = None
    stopping: Optional[dict[str, Any]] = Field(
        None, description="How settled the order is (analysis.stopping): p_settled, can_stop, expected_misordered, ...")
    tasks: list[RankedTask]


class Agreement(Reply):
    """Per-item agreement, Fleiss' kappa and Krippendorff's alpha of a labeling study."""

    study: str
    n_items: int
    n_labels: int = None
    mean_agreement: Optional[float] = None
    fleiss_kappa: Optional[float] = None
    krippendorff_alpha: Optional[float] = None
    histogram: list[Any] = None
    items: list[Any]


class UnconfirmedSession(Reply):
    """A session a crowd platform did not confirm, with the reason."""

    session: int
    worker_id: str
    entry: str
    entry_ref: Optional[str] = None
    reason: Optional[str]
    checked_at: Optional[str] = None
    answers: int


class UnconfirmedSessions(Reply):
    """The sessions a crowd platform did not confirm."""

    study: str
    unconfirmed: list[UnconfirmedSession]


class Workers(Reply):
    """Per-worker counts, gold accuracy and time per unit."""

    study: str
    workers: list[dict[str, Any]]
