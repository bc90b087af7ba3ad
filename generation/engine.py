"""The generation engine: prompts -> backend -> parsing -> filters -> an append-only, resumable output.

Python API (stable; the study runner and `subjlab generate` call it):

    from generation.engine import GenerationConfig, generate

    summary = generate(GenerationConfig(task="sms_spam", mode="zero-shot", per_label=100), "spam.jsonl")
    print(summary.per_label, summary.requests, summary.filters)

- `generate(config, out_path, backend=None) -> RunSummary` (sync) and `generate_async(...)`: run
  until `config.per_label` clean texts exist for every label in `out_path`, or the request budget
  is spent. A `Backend` instance may be passed in (it is then not closed); else one is built from
  the config (`build_backend`). The summary is also written to `<out>.summary.json`.
- `preview_requests(config) -> list[PlannedRequest]`: the first request of each label, exactly as
  it would be sent (what `subjlab generate --dry-run` prints); calls nothing.
- Errors: `GenerationError` (retries exhausted, a request refused), `BackendAuthError` (401/403),
  ValueError/FileNotFoundError for bad settings or files.

How a run proceeds. Work is done in rounds. Each round advances up to `conversations` lanes by one
request each: in zero-shot mode a lane is a conversation of one label (turn by turn, the diversity
prompt every n turns, a new conversation after `max_turns`, or after `stall_turns` turns in a row
that gave no accepted text: the model is repeating itself, so the conversation is abandoned, counted
in `abandoned_conversations`); in few-shot mode each request is new, with its own seeded
demonstrations. Lanes go to the labels that still need texts, never more lanes to a label than
texts it still needs; in zero-shot mode new conversations are opened only as far as each can reach
its first diversity turn (`Planner.max_lanes`), so even a run of a few texts per label sends the
diversity prompt. The round's requests are answered from the response cache or sent to the
backend (at most `concurrency` at once; in batches for the local backend; as one Batch API job for
"openai-batch"), with retries (`generation.retry`: exponential backoff with jitter, or the
server's Retry-After) on rate limits, 5xx, timeouts and malformed bodies; 401/403 stop the run at
once. Responses are then committed in lane order: parsed into candidate texts, filtered, and each
clean text kept while its label still needs texts. The round is made durable in one step: its
responses go into the cache in one transaction, then its records are appended to the output with
one write and one fsync. Nothing counts as written (progress bar, summary) before that fsync
returns, so a crash loses no acknowledged record; it can only cut the round being written (a torn
last line is repaired on resume).

Rate limits ("openai"). The requests in flight, at most `concurrency`, and their pace follow what
the endpoint allows (`generation.limiter`): its rate-limit headers when it sends them, else its
429s (additive increase, multiplicative decrease); a 429 is waited out, not counted as a retry.

Sending ahead (backends taking one request per call, i.e. "openai"). While a round's slowest
requests are still out, the next round's likely requests are already sent: a conversation's next
turn as soon as its own reply is in, a new lane's first request at once, guessing that each reply
yields one accepted text. The next round is still planned only from what was committed; it adopts
the requests it planned that were sent ahead and drops the rest (cancelled, or their replies
cached; counted in `unused_requests`). So the connections stay busy while a round commits and
while its stragglers finish, and what is written is decided exactly as without sending ahead. A
request sent ahead takes its place in the `max_requests` budget when it is sent.

Determinism and resume. A conversation's requests depend only on (task, label, conversation
index, turn, seed) and the replies before them, and commits happen in a fixed order, so a run is a
function of its responses. Re-running the same command after a crash (kill -9) replays the
finished requests from the response cache (free), skips the texts already in the output (by
their origin: label, conversation, turn, item) and continues exactly where the run stopped: the
same ids, no duplicates, nothing lost, the exact count (the stall rule replays too: it depends only
on the filter decisions). With the cache off (`--no-cache`) a resumed run starts new conversations
after the ones in the file instead.

Records: `{"id": "<task>:<mode>:<label>:<n>", "text", "label", "task", "mode", "backend", "model",
"prompt_hash", "demonstration_ids", "conversation", "conversation_turn", "item", "trimmed_turns",
"seed", "created_at"}`.

Where each part lives: `generation.run_loop` (the rounds, resume, durability),
`generation.lane_schedule` (which lanes a round advances), `generation.request_dispatch` (cache,
budget, backend calls, retries), `generation.sending_ahead`, `generation.round_commit` (parsing,
filters, records), `generation.run_summary` (the summary and its file).
"""


from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Sequence

from generation.backends import make_backend
from generation.backends.base import Backend
from generation.config import GenerationConfig
from generation.planning import PlannedRequest, preview_requests
from generation.prompts import Message
from generation.request_dispatch import GenerationError
from generation.run_loop import GenerationRun
from generation.run_summary import RunSummary, summary_path, write_summary

__all__ = [
    "GenerationConfig",
    "GenerationError",
    "PlannedRequest",
    "RunSummary",
    "build_backend",
    "format_messages",
    "generate",
    "generate_async",
    "preview_requests",
    "summary_path",
    "write_summary",
]


def build_backend(config: GenerationConfig) -> Backend:
    """Build the backend a config names (loads the local model, or opens the OpenAI client)."""
    if config.backend == "local":
        return make_backend(
            "local",
            model_path=config.model,
            batch_size=config.concurrency,
            context_window=config.context_window,
            threads=config.threads,
        )
    if config.backend in ("openai", "openai-batch"):
        endpoint = dict(model=config.model, base_url=config.base_url, api_key=config.api_key,
                        timeout=config.request_timeout, context_window=config.context_window)
        if config.backend == "openai":
            return make_backend("openai", **endpoint)
        return make_backend(
            "openai-batch",
            **endpoint,
            poll_interval=config.batch_poll_interval,
            # running batches are remembered beside the response cache
            state_path=None if config.cache_path is None else Path(config.cache_path).with_name("batches.json"),
        )
    return make_backend(config.backend)


async def generate_async(config: GenerationConfig, out_path: str | Path, backend: Backend | None = None) -> RunSummary:
    """Run generation into `out_path` (appending; resuming what is there) and return the summary."""
    own = backend is None
    backend = backend or build_backend(config)
    try:
        return await GenerationRun(config, Path(out_path), backend).run()
    finally:
        if own:
            await backend.aclose()


def generate(config: GenerationConfig, out_path: str | Path, backend: Backend | None = None) -> RunSummary:
    """Synchronous `generate_async` (not callable from inside a running event loop)."""
    return asyncio.run(generate_async(config, out_path, backend))


def format_messages(messages: Sequence[Message]) -> str:
    """Return messages as readable text: one "[role]" header per message, then its content."""
    return "\n".join(f"[{m.role}]\n{m.content}\n" for m in messages)
