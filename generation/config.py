"""The typed settings of a generation run (`GenerationConfig`) and its result (`RunSummary`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from generation.backends import BACKENDS
from generation.filters import FilterSettings
from generation.prompts import DEFAULT_DIVERSITY_EVERY, DEFAULT_SHOTS
from subjlab.tasks import TaskSpec, get_task

MODES = ("zero-shot", "few-shot")


@dataclass
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

    task: str | TaskSpec
    mode: str = "zero-shot"
    per_label: int = 10
    labels: tuple[str, ...] | None = None
    backend: str = "local"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    concurrency: int = 8
    adaptive_concurrency: bool = True
    conversations: int | None = None
    diversity_every: int = DEFAULT_DIVERSITY_EVERY
    max_turns: int = 20
    stall_turns: int = 2
    shots: int = DEFAULT_SHOTS
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int | None = None
    seed: int = 0
    max_requests: int | None = None
    request_timeout: float = 60.0
    max_retries: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    context_window: int | None = None
    cache: bool = True
    cache_path: str | Path | None = None
    data_dir: str | Path | None = None
    word_margin: float = 0.5
    min_words: int = 3
    near_duplicate_threshold: float | None = 0.95
    demo_copy_threshold: float | None = 0.90
    price_in: float | None = None
    price_out: float | None = None
    threads: int | None = None
    batch_poll_interval: float = 30.0
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.task, str):
            self.task = get_task(self.task)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.batch_poll_interval <= 0:
            raise ValueError(f"batch_poll_interval must be positive, got {self.batch_poll_interval}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.per_label < 1:
            raise ValueError(f"per_label must be at least 1, got {self.per_label}")
        if self.labels is not None:
            self.labels = tuple(self.labels)
            unknown = [lab for lab in self.labels if lab not in self.spec.labels]
            if unknown or not self.labels:
                raise ValueError(
                    f"labels {unknown or '(none)'} are not labels of task {self.spec.name!r}: {', '.join(self.spec.labels)}"
                )
        if self.stall_turns < 0:
            raise ValueError(f"stall_turns must be >= 0 (0: never abandon a conversation), got {self.stall_turns}")
        for name in ("concurrency", "max_turns", "shots", "min_words"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.conversations is not None and self.conversations < 1:
            raise ValueError(f"conversations must be at least 1, got {self.conversations}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if self.max_requests is not None and self.max_requests < 0:
            raise ValueError(f"max_requests must be >= 0, got {self.max_requests}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.request_timeout <= 0:
            raise ValueError(f"request_timeout must be positive, got {self.request_timeout}")
        self.filter_settings()  # validates the filter fields

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


@dataclass
class RunSummary:
    """What a run did. Token counts and cost cover backend calls made by this run (cache hits are free).

    per_label: clean texts in the output file per label at the end. written: texts this run wrote;
    resumed: texts found in the output file at the start. filters: rejections per reason and
    "accepted" (accepted by this run). surplus: clean texts dropped because their label was full.
    stopped: "complete", "budget" (max_requests spent) or "error: ...". abandoned_conversations:
    zero-shot conversations given up after `stall_turns` turns without an accepted text.
    unused_requests: backend calls sent ahead of their round (while the previous round finished)
    that the round then did not need (answered ones count in `requests` and tokens, and their
    replies are cached); they are only sent while the budget has room for them.
    rate_limit: "openai" with the adaptive limit: what limit the run settled at
    (`generation.limiter.AdaptiveLimiter.report`); None otherwise.
    """

    task: str
    mode: str
    backend: str
    model: str
    out: str
    per_label_target: int
    per_label: dict[str, int]
    written: int = 0
    resumed: int = 0
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    estimated_cost_usd: float | None = 0.0
    candidates: int = 0
    surplus: int = 0
    filters: dict[str, int] = field(default_factory=dict)
    rounds: int = 0
    abandoned_conversations: int = 0
    unused_requests: int = 0
    trimmed_requests: int = 0
    repaired_tail: bool = False
    elapsed_s: float = 0.0
    texts_per_s: float = 0.0
    stopped: str = "complete"
    rate_limit: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every label reached its target."""
        return all(n >= self.per_label_target for n in self.per_label.values())

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as a JSON-ready dict."""
        out = asdict(self)
        out["complete"] = self.complete
        return out
