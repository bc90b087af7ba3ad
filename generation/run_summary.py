"""What a generation run did (`RunSummary`) and where it is written (`<out>.summary.json`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from subjlab.atomic import write_json_atomic


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


def summary_path(out_path: str | Path) -> Path:
    """Return where the run summary of `out_path` is written: `<out>.summary.json`."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".summary.json")


def write_summary(summary: RunSummary, path: str | Path) -> None:
    """Write the summary as indented JSON, atomically (`subjlab.atomic`)."""
    write_json_atomic(path, summary.to_dict())
