"""generation: synthetic labeled texts from an LLM, zero- or few-shot, the way Li et al. (2023) did.

Public API (see `generation.engine` for the full contract):

    from generation import GenerationConfig, generate
    summary = generate(GenerationConfig(task="sms_spam", per_label=100), "spam.jsonl")

Modules: `prompts` (zero-/few-shot prompt builders, diversity turns, trimming), `backends` (local
Hugging Face model / any OpenAI-compatible endpoint), `parsing` (responses -> candidate texts),
`filters` (empty, word limit, meta-talk, duplicates, near duplicates, demonstration copies),
`cache` (SQLite response cache), `output` (append-only, resumable JSONL), `pricing` (cost table),
`engine` (the public run API) over `run_loop`, `lane_schedule`, `request_dispatch`, `sending_ahead`,
`round_commit` and `run_summary`.
"""

from generation.config import GenerationConfig
from generation.run_summary import RunSummary
from generation.engine import GenerationError, generate, generate_async, preview_requests

__all__ = ["GenerationConfig", "GenerationError", "RunSummary", "generate", "generate_async", "preview_requests"]
