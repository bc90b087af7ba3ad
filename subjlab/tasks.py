"""Task specifications: what a classification task is, for crowd workers, for LLM prompts and for data.

`TaskSpec` holds everything the other packages need to know about a task: its labels and their
descriptions (shown to crowd workers), the generation context/persona, style and word limit (used by
the prompt builders), and how to read its data (`data_name`, `label_field`, `label_map`).

`REGISTRY` holds the ten tasks of Li, Zhu, Lu & Yin (EMNLP 2023), named in `PAPER_TASKS`, and extra
tasks that are not the paper's (`EXTRA_TASKS`: tweet_sarcasm, for its real per-instance human
agreement). `load_task_file` reads user tasks from a TOML or YAML file with the same fields; `get_task`
resolves a registry key or a file path.
"""

from __future__ import annotations

import sys
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

import yaml

#: The definition of objectivity shown to crowd workers in pairwise studies (the paper's wording).
OBJECTIVITY_DEFINITION = (
    "the classification of a piece of text is based on clear, identifiable features in the text "
    "(e.g., keywords or phrases), and can be done without being affected by any personal "
    "interpretation of the text resulted from personal biases, emotions or beliefs."
)


class TaskSpecError(ValueError):
    """A task specification is invalid; the message names the source and the field."""


@dataclass(frozen=True)
class TaskSpec:
    """One text-classification task.

    name: registry key (lowercase, no spaces), e.g. "ag_news".
    title: human-readable name.
    description: what the task asks, in words a crowd worker can read.
    labels: the label set, in a fixed order (this order is the classifier's class index).
    label_descriptions: label -> one sentence a crowd worker can read.
    context: the generation context prompt (sets the domain and the persona).
    style: the style of text to generate (e.g. "a news article").
    word_limit: the word limit stated in generation prompts.
    data_name: the dataset folder under the data directory (defaults to `name`).
    label_field: the record field holding the label in the data files (default "label").
    label_map: raw value -> task label; rows whose raw value is not a key are dropped. Empty = identity.
    examples: example texts shown to crowd workers (optional; pairwise pages sample data otherwise).
    """

    name: str
    title: str
    description: str
    labels: tuple[str, ...]
    label_descriptions: Mapping[str, str]
    context: str
    style: str
    word_limit: int = 50
    data_name: str = ""
    label_field: str = "label"
    label_map: Mapping[str, str] = field(default_factory=dict)
    examples: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _validate(self, source=f"task {self.name!r}")
        if not self.data_name:
            object.__setattr__(self, "data_name", self.name)

    def map_label(self, raw: str) -> str | None:
        """Return the task label for a raw data value, or None when the row is outside the task."""
        if self.label_map:
            return self.label_map.get(raw)
        return raw if raw in self.labels else None

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict (JSON/TOML-safe) with every field."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "labels": list(self.labels),
            "label_descriptions": dict(self.label_descriptions),
            "context": self.context,
            "style": self.style,
            "word_limit": self.word_limit,
            "data_name": self.data_name,
            "label_field": self.label_field,
            "label_map": dict(self.label_map),
            "examples": list(self.examples),
        }


_REQUIRED = ("name", "title", "description", "labels", "label_descriptions", "context", "style")


def _validate(spec: TaskSpec, source: str) -> None:
    def bad(fieldname: str, why: str) -> TaskSpecError:
        return TaskSpecError(f"{source}: field '{fieldname}': {why}")

    for name in ("name", "title", "description", "context", "style"):
        value = getattr(spec, name)
        if not isinstance(value, str) or not value.strip():
            raise bad(name, "must be a non-empty string")
    if any(c.isspace() for c in spec.name):
        raise bad("name", "must not contain spaces")
    if not isinstance(spec.labels, tuple) or len(spec.labels) < 2:
        raise bad("labels", "must list at least two labels")
    if any(not isinstance(lab, str) or not lab for lab in spec.labels):
        raise bad("labels", "every label must be a non-empty string")
    if len(set(spec.labels)) != len(spec.labels):
        raise bad("labels", "labels must be unique")
    missing = [lab for lab in spec.labels if lab not in spec.label_descriptions]
    if missing:
        raise bad("label_descriptions", f"missing a description for {missing}")
    extra = [lab for lab in spec.label_descriptions if lab not in spec.labels]
    if extra:
        raise bad("label_descriptions", f"describes labels not in 'labels': {extra}")
    if not isinstance(spec.word_limit, int) or isinstance(spec.word_limit, bool) or spec.word_limit < 1:
        raise bad("word_limit", "must be a positive integer")
    unknown = sorted(set(spec.label_map.values()) - set(spec.labels))
    if unknown:
        raise bad("label_map", f"maps to labels not in 'labels': {unknown}")


def task_from_mapping(data: Mapping[str, Any], source: str) -> TaskSpec:
    """Build a TaskSpec from a mapping (parsed TOML/YAML/JSON); errors name `source` and the field."""
    if not isinstance(data, Mapping):
        raise TaskSpecError(f"{source}: a task must be a table/mapping, got {type(data).__name__}")
    known = {f.name for f in fields(TaskSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TaskSpecError(f"{source}: unknown field(s) {unknown}; allowed: {sorted(known)}")
    for name in _REQUIRED:
        if name not in data:
            raise TaskSpecError(f"{source}: field '{name}': required")
    kwargs = dict(data)
    for name in ("labels", "examples"):
        if name in kwargs:
            value = kwargs[name]
            if not isinstance(value, (list, tuple)):
                raise TaskSpecError(f"{source}: field '{name}': must be a list")
            kwargs[name] = tuple(value)
    for name in ("label_descriptions", "label_map"):
        if name in kwargs and not isinstance(kwargs[name], Mapping):
            raise TaskSpecError(f"{source}: field '{name}': must be a table/mapping")
        if name in kwargs:
            kwargs[name] = {str(k): str(v) for k, v in kwargs[name].items()}
    try:
        spec = TaskSpec.__new__(TaskSpec)
        for f in fields(TaskSpec):
            default = f.default if f.default_factory is MISSING else f.default_factory()
            object.__setattr__(spec, f.name, kwargs.get(f.name, default))
        _validate(spec, source)
        if not spec.data_name:
            object.__setattr__(spec, "data_name", spec.name)
    except TaskSpecError:
        raise
    except (TypeError, AttributeError) as exc:
        raise TaskSpecError(f"{source}: {exc}") from exc
    return spec


def load_task_file(path: str | Path) -> list[TaskSpec]:
    """Read one or more TaskSpecs from a TOML or YAML file.

    The file holds either the fields of one task at top level, or a list of tasks under `tasks`
    (TOML: `[[tasks]]`). Raises TaskSpecError naming the file (and task index) and field.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskSpecError(f"{path}: no such task file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise TaskSpecError(f"{path}: task files must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise TaskSpecError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {exc}") from exc
    if isinstance(data, Mapping) and "tasks" in data:
        items = data["tasks"]
        if not isinstance(items, list) or not items:
            raise TaskSpecError(f"{path}: field 'tasks': must be a non-empty list of tasks")
        return [task_from_mapping(item, f"{path} (tasks[{i}])") for i, item in enumerate(items)]
    return [task_from_mapping(data, str(path))]


def get_task(name_or_path: str) -> TaskSpec:
    """Return the registry task with this key, or the single task in a TOML/YAML file at this path."""
    if name_or_path in REGISTRY:
        return REGISTRY[name_or_path]
    path = Path(name_or_path)
    if path.suffix.lower() in (".toml", ".yaml", ".yml"):
        specs = load_task_file(path)
        if len(specs) != 1:
            raise TaskSpecError(f"{path}: holds {len(specs)} tasks; name one file per task here")
        return specs[0]
    raise TaskSpecError(
        f"unknown task {name_or_path!r}; known tasks: {', '.join(REGISTRY)} (or a .toml/.yaml task file)"
    )


def _task(**kw: Any) -> TaskSpec:
    kw["labels"] = tuple(kw["labels"])
    return TaskSpec(**kw)


_PAPER_TASKS = [
    _task(
        name="ag_news",
        title="News topic (AG News)",
        description="Read a news article (headline and first sentence) and decide which topic it is about.",
        labels=["World", "Sports", "Business", "Sci/Tech"],
        label_descriptions={
            "World": "international news, politics, conflicts and world affairs",
            "Sports": "sports events, teams, athletes and competitions",
            "Business": "companies, markets, the economy and finance",
            "Sci/Tech": "science, technology, computing, the internet and space",
        },
        context="You are a journalist writing news articles for a major news agency.",
        style="a news article with a headline and one or two sentences",
        word_limit=50,
    ),
    _task(
        name="imdb",
        title="Movie review sentiment (IMDB)",
        description="Read a movie review and decide whether the reviewer's overall opinion of the movie is positive or negative.",
        labels=["neg", "pos"],
        label_descriptions={
            "neg": "the reviewer dislikes the movie overall",
            "pos": "the reviewer likes the movie overall",
        },
        context="You are a movie fan writing reviews of movies you have watched on a movie review website.",
        style="a movie review",
        word_limit=100,
    ),
    _task(
        name="sms_spam",
        title="SMS spam detection",
        description="Read a text message (SMS) and decide whether it is spam (unsolicited advertising or a scam) or a normal personal message.",
        labels=["ham", "spam"],
        label_descriptions={
            "ham": "a normal message between people who know each other",
            "spam": "an unsolicited commercial, prize or scam message",
        },
        context="You are a mobile phone user writing and receiving short text messages.",
        style="an SMS text message",
        word_limit=30,
    ),
    _task(
        name="financial_phrasebank",
        title="Financial news sentiment (Financial PhraseBank)",
        description="Read a sentence from financial news and decide whether it is likely to have a positive, negative or neutral effect on the company's stock price, from an investor's point of view.",
        labels=["negative", "neutral", "positive"],
        label_descriptions={
            "negative": "bad news for the company (losses, falling sales, layoffs)",
            "neutral": "neither good nor bad news for the company",
            "positive": "good news for the company (profit growth, new contracts)",
        },
        context="You are a financial journalist writing sentences for financial news about listed companies.",
        style="a sentence from a financial news article",
        word_limit=40,
    ),
    _task(
        name="reddit_emotion",
        title="Emotion of Reddit comments (GoEmotions, Ekman six)",
        description="Read a Reddit comment and decide which basic emotion its writer expresses.",
        # The data's 28 GoEmotions labels are mapped to Ekman's six basic emotions through the
        # official mapping (field `ekman_label`); comments labeled `neutral` are left out.
        labels=["anger", "disgust", "fear", "joy", "sadness", "surprise"],
        label_descriptions={
            "anger": "anger, annoyance or disapproval",
            "disgust": "disgust or revulsion",
            "fear": "fear or nervousness",
            "joy": "joy, amusement, love, gratitude, pride, optimism and other positive feelings",
            "sadness": "sadness, grief, disappointment or remorse",
            "surprise": "surprise, confusion, curiosity or realization",
        },
        context="You are a Reddit user writing comments in discussion threads.",
        style="a Reddit comment",
        word_limit=40,
        label_field="ekman_label",
        label_map={e: e for e in ["anger", "disgust", "fear", "joy", "sadness", "surprise"]},
    ),
    _task(
        name="fewrel",
        title="Relation between two entities (FewRel)",
        description="Read a sentence that mentions two entities (a head and a tail) and decide which relation holds between them.",
        labels=["country", "league", "screenwriter", "tributary"],
        label_descriptions={
            "country": "the head entity is located in, or belongs to, the tail country",
            "league": "the head team or player plays in the tail league or competition",
            "screenwriter": "the tail person wrote the screenplay of the head film or show",
            "tributary": "the tail river flows into the head river or body of water",
        },
        context="You are a Wikipedia editor writing sentences about entities and the relations between them.",
        style="a sentence from a Wikipedia article that mentions two related entities",
        word_limit=40,
    ),
    _task(
        name="tweet_irony",
        title="Irony in tweets",
        description="Read a tweet and decide whether it is ironic (it means something other than, often the opposite of, what it literally says).",
        labels=["non_irony", "irony"],
        label_descriptions={
            "non_irony": "the tweet means what it says",
            "irony": "the tweet is ironic: its intended meaning differs from its literal meaning",
        },
        context="You are a Twitter user posting short tweets about your daily life and opinions.",
        style="a tweet",
        word_limit=30,
    ),
    _task(
        name="tweet_emotion",
        title="Emotion in tweets",
        description="Read a tweet and decide which emotion its writer expresses.",
        labels=["anger", "joy", "optimism", "sadness"],
        label_descriptions={
            "anger": "the writer is angry, annoyed or outraged",
            "joy": "the writer is happy, delighted or amused",
            "optimism": "the writer is hopeful or confident about the future",
            "sadness": "the writer is sad, disappointed or grieving",
        },
        context="You are a Twitter user posting short tweets about your daily life and feelings.",
        style="a tweet",
        word_limit=30,
    ),
    _task(
        name="sarcasm_news",
        title="Sarcasm in news headlines",
        description="Read a news headline and decide whether it is sarcastic (satire, like The Onion) or a genuine headline.",
        labels=["not_sarcastic", "sarcastic"],
        label_descriptions={
            "not_sarcastic": "a genuine news headline",
            "sarcastic": "a satirical headline that mocks its subject",
        },
        context="You are an editor writing headlines for news and satire websites.",
        style="a news headline",
        word_limit=20,
    ),
    _task(
        name="humor",
        title="Humor in short texts",
        description="Read a short text and decide whether it is meant to be funny (a joke) or not.",
        labels=["not_humor", "humor"],
        label_descriptions={
            "not_humor": "a serious text, such as a news headline",
            "humor": "a joke or a text meant to be funny",
        },
        context="You are a writer of short texts: news headlines and one-line jokes.",
        style="a short text of one or two sentences",
        word_limit=30,
    ),
]

_EXTRA_TASKS = [
    _task(
        # iSarcasmEval (SemEval-2022 Task 6A): the gold label is the tweet's author's own; each test tweet
        # also carries the labels of five third-party annotators (`ratings`), i.e. real disagreement.
        name="tweet_sarcasm",
        title="Intended sarcasm in tweets (iSarcasmEval)",
        description="Read a tweet and decide whether its author meant it sarcastically (saying the opposite "
                    "of, or something other than, what they mean, usually to mock or criticise).",
        labels=["not_sarcastic", "sarcastic"],
        label_descriptions={
            "not_sarcastic": "the author means what the tweet says",
            "sarcastic": "the author meant the tweet sarcastically: it says something other than what they "
                         "mean, to mock, criticise or joke",
        },
        context="You are a Twitter user posting short tweets about your daily life, the news and your opinions.",
        style="a tweet",
        word_limit=30,
    ),
]

#: The keys of the paper's ten tasks, in the paper's order.
PAPER_TASKS: tuple[str, ...] = tuple(t.name for t in _PAPER_TASKS)
#: Registered tasks that are not among the paper's ten.
EXTRA_TASKS: tuple[str, ...] = tuple(t.name for t in _EXTRA_TASKS)
#: Every registered task by key: the paper's ten, then the extra ones.
REGISTRY: dict[str, TaskSpec] = {t.name: t for t in _PAPER_TASKS + _EXTRA_TASKS}
