"""generation: synthetic labeled texts from an LLM, zero- or few-shot, the way Li et al. (2023) did.

Public API (see `generation.engine` for the full contract):

    from generation import GenerationConfig, generate
    summary = generate(GenerationConfig(task="sms_spam", per_label=100), "spam.jsonl")

Modules: `prompts` (zero-/few-shot prompt builders, diversity turns, trimming), `planning` (lanes and
their next request), `backends` (local Hugging Face model / any OpenAI-compatible endpoint / the
OpenAI Batch API), `retry`, `rate_limit_headers` and `limiter` (retries, what an endpoint says about
its limits, the adaptive request limit), `parsing` (responses -> candidate texts),
`filters` (empty, word limit, meta-talk, duplicates, near duplicates, demonstration copies),
`cache` (SQLite response cache), `output_file` (append-only, resumable JSONL), `pricing` (cost table),
`engine` (the public run API) over `run_loop`, `lane_schedule`, `request_dispatch`, `sending_ahead`,
`round_commit` and `run_summary`; `judge` (LLM pairwise objectivity judgments).
"""

from generation.config import GenerationConfig
from generation.run_summary import RunSummary
from generation.engine import GenerationError, generate, generate_async, preview_requests

__all__ = ["GenerationConfig", "GenerationError", "RunSummary", "generate", "generate_async", "preview_requests"]
