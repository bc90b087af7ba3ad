"""The typed settings of a generation run (`GenerationConfig`); its result is `generation.run_summary.RunSummary`.

A pydantic dataclass (`subjlab.typed_settings`): values are checked against their types and
bounds, unknown keys are refused, and errors (`SettingsError`, a ValueError) name each bad key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, InstanceOf

from generation.backends import BACKENDS
from generation.filters import FilterSettings
from generation.prompts import DEFAULT_DIVERSITY_EVERY, DEFAULT_SHOTS
from subjlab.tasks import TaskSpec, TaskSpecError, get_task
from subjlab.typed_settings import SettingsError, settings_dataclass

MODES = ("zero-shot", "few-shot")

AtLeastOne = Annotated[int, Field(ge=1)]
NotNegative = Annotated[int, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
NotNegativeFloat = Annotated[float, Field(ge=0)]


@settings_dataclass
class GenerationConfig:
    """Everything a generation run needs. Only `task` is required.

    task: a registry key, a task file path, or a TaskSpec.
    mode: "zero-shot" (context + generation prompt, diversity prompt every `diversity_every` turns,
      one conversation of up to `max_turns` turns per lane; a conversation whose last `stall_turns`
      turns gave no accepted text (duplicates, meta-talk, ...) is abandoned and the label gets a new
      one; 0 never abandons) or "few-shot" (context + `shots` real
      labeled examples + imitation instruction, one fresh request each time).
    per_label: clean texts to produce for each label. labels: a subset of the task's labels (default all).
    backend: "local" (default; SmolLM2-135M-Instruct or `model` as a local path), "openai"
      (any OpenAI-compatible endpoint; `model` is the model name, default gpt-3.5-turbo) or
      "openai-batch" (the same through the OpenAI Batch API: one batch per round, half the price).
    base_url, api_key: for "openai" (else $OPENAI_BASE_URL / $OPENAI_API_KEY).
    concurrency: requests in flight at once ("openai": the ceiling of the adaptive limit) or
      conversations per batch ("local").
    adaptive_concurrency: "openai": adapt the requests in flight and their pace to the endpoint's
      rate-limit headers and 429s (`generation.limiter`); False keeps `concurrency` in flight and
      retries 429s like other errors.
    conversations: conversations advanced together in one round (default 4 x concurrency for
      "openai", = concurrency for "local", 1000 for "openai-batch", where a round is one batch);
      results are committed in a fixed order per round.
    temperature, top_p, seed: sampling; each request gets a seed derived from `seed`.
    max_tokens: completion tokens per request (default 2 x word limit + 16).
    max_requests: the budget of backend calls (cache hits are free); default 10 per text needed.
    request_timeout (s), max_retries, backoff_base/backoff_max (s): the retry policy.
    context_window: override the backend's (tokens); conversations are trimmed to fit it.
    cache / cache_path: the response cache (default on, `cache_dir()/generation/responses.sqlite`).
    data_dir: real data for few-shot demonstrations (default: subjlab.data.resolve_data_dir).
    word_margin, min_words, near_duplicate_threshold, demo_copy_threshold: the filters
      (`generation.filters.FilterSettings`); a threshold of None switches that check off.
    price_in, price_out: USD per 1M tokens for the cost estimate (default: `generation.pricing`).
    threads: torch threads for the local backend while generating (default: torch's).
    batch_poll_interval: seconds between status checks of a running batch ("openai-batch").
    progress: show a tqdm progress bar on stderr.
    """

    task: str | InstanceOf[TaskSpec]
    mode: str = "zero-shot"
    per_label: AtLeastOne = 10
    labels: tuple[str, ...] | None = None
    backend: str = "local"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    concurrency: AtLeastOne = 8
    adaptive_concurrency: bool = True
    conversations: AtLeastOne | None = None
    diversity_every: NotNegative = DEFAULT_DIVERSITY_EVERY
    max_turns: AtLeastOne = 20
    stall_turns: NotNegative = 2  # 0: never abandon a conversation
    shots: AtLeastOne = DEFAULT_SHOTS
    temperature: NotNegativeFloat = 0.8
    top_p: Annotated[float, Field(gt=0, le=1)] = 0.95
    max_tokens: AtLeastOne | None = None
    seed: int = 0
    max_requests: NotNegative | None = None
    request_timeout: Positive = 60.0
    max_retries: NotNegative = 6
    backoff_base: NotNegativeFloat = 1.0
    backoff_max: NotNegativeFloat = 60.0
    context_window: AtLeastOne | None = None
    cache: bool = True
    cache_path: str | Path | None = None
    data_dir: str | Path | None = None
    word_margin: float = 0.5
    min_words: AtLeastOne = 3
    near_duplicate_threshold: float | None = 0.95
    demo_copy_threshold: float | None = 0.90
    price_in: NotNegativeFloat | None = None
    price_out: NotNegativeFloat | None = None
    threads: AtLeastOne | None = None
    batch_poll_interval: Positive = 30.0
    progress: bool = True

    def __post_init__(self) -> None:
        """The checks types and bounds cannot say (run after them)."""
        if isinstance(self.task, str):
            try:
                self.task = get_task(self.task)
            except TaskSpecError as exc:
                raise SettingsError([("task", str(exc))]) from None
        if self.backend not in BACKENDS:
            raise SettingsError([("backend", f"must be one of {', '.join(BACKENDS)}, got {self.backend!r}")])
        if self.mode not in MODES:
            raise SettingsError([("mode", f"must be one of {', '.join(MODES)}, got {self.mode!r}")])
        if self.labels is not None:
            unknown = [lab for lab in self.labels if lab not in self.spec.labels]
            if unknown or not self.labels:
                raise SettingsError([("labels", f"{unknown or '(none)'} are not labels of task {self.spec.name!r}: "
                                                f"{', '.join(self.spec.labels)}")])
        try:
            self.filter_settings()  # validates the filter fields
        except ValueError as exc:
            key, _, why = str(exc).partition(" ")
            raise SettingsError([(key, why)]) from None

    @property
    def spec(self) -> TaskSpec:
        """The task as a TaskSpec."""
        assert isinstance(self.task, TaskSpec)
        return self.task

    @property
    def run_labels(self) -> tuple[str, ...]:
        """The labels this run generates for, in the task's order."""
        chosen = set(self.labels or self.spec.labels)
        return tuple(lab for lab in self.spec.labels if lab in chosen)

    @property
    def effective_max_tokens(self) -> int:
        """Completion tokens per request."""
        return self.max_tokens or 2 * self.spec.word_limit + 16

    @property
    def effective_conversations(self) -> int:
        """Conversations advanced per round."""
        if self.conversations is not None:
            return self.conversations
        if self.backend == "openai-batch":
            return 1000
        return self.concurrency if self.backend == "local" else 4 * self.concurrency

    @property
    def effective_max_requests(self) -> int:
        """The budget of backend calls."""
        if self.max_requests is not None:
            return self.max_requests
        return max(100, 10 * self.per_label * len(self.run_labels))

    def filter_settings(self) -> FilterSettings:
        """The filters' settings for this run."""
        return FilterSettings(
            word_limit=self.spec.word_limit,
            word_margin=self.word_margin,
            min_words=self.min_words,
            near_duplicate_threshold=self.near_duplicate_threshold,
            demo_copy_threshold=self.demo_copy_threshold if self.mode == "few-shot" else None,
            prompt_echoes=(*(self.spec.label_descriptions[lab] for lab in self.spec.labels), self.spec.context,
                           self.spec.style),
            label_names=tuple(self.spec.labels),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict (no API key). The task appears by name and by
        `task_digest`, a hash of its whole spec, so a task file whose prompts
        changed gives a different dict under the same name."""
        out = asdict(self)
        out["task"] = self.spec.name
        out["task_digest"] = task_digest(self.spec)
        out["api_key"] = None
        for key in ("cache_path", "data_dir"):
            if out[key] is not None:
                out[key] = str(out[key])
        if out["labels"] is not None:
            out["labels"] = list(out["labels"])
        return out


def task_digest(spec: TaskSpec) -> str:
    """Return the first 16 hex digits of the sha256 of a task's whole spec (canonical JSON)."""
    blob = json.dumps(spec.to_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
