"""Collect raw replies of the packaged model for the hand-labelled filter sample (run by hand).

    HF_HUB_OFFLINE=1 .venv/bin/python tests/generation/data/filter_sample/collect.py \
        --data /work/shared/datasets --seed 13 --per-label 8 --split dev --out raw-dev.jsonl

Runs the generation engine exactly as the packaged demo config's [generation] section says (zero-shot
conversations with their diversity turns, and few-shot), on the demo's tasks and both modes, with a
backend wrapper that records every request and its raw reply. Each reply becomes one line, unlabelled
(`"class": null`); README.md says how the lines were labelled. The replies depend on the model, the
prompts and the seed, not on the filters, so the labels stay valid while the filters change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
from pathlib import Path

from generation.backends.base import Backend
from generation.backends.local import LocalBackend
from generation.config import GenerationConfig
from generation.engine import generate_async
from generation.prompts import DIVERSITY_PROMPT, generation_prompt
from subjlab.runner.config import load_config
from subjlab.runner.demo import demo_config_path
from subjlab.runner.task_steps import generation_config
from subjlab.tasks import REGISTRY, TaskSpec, get_task

HERE = Path(__file__).parent
TASKS = ("sms_spam", "financial_phrasebank", "humor", "tweet_sarcasm")
_DEMO_LINE = re.compile(r"^Example \d+ \(label: (?P<label>[^)]*)\): (?P<text>.*)$")


class RecordingBackend(Backend):
    """Passes requests to `inner` and keeps every (request, response) pair in `log`."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name, self.model, self.cache_namespace = inner.name, inner.model, inner.cache_namespace
        self.context_window, self.max_batch = inner.context_window, inner.max_batch
        self.log: list = []

    def count_tokens(self, messages):
        return self.inner.count_tokens(messages)

    async def complete(self, requests):
        responses = await self.inner.complete(requests)
        self.log.extend(zip(requests, responses))
        return responses


def task_spec(name: str) -> TaskSpec:
    """The registry's task, or (tweet_sarcasm before it is registered) the task file beside this script."""
    return REGISTRY[name] if name in REGISTRY else get_task(HERE / f"{name}.toml")


def target_label(task: TaskSpec, request) -> str:
    """The label a request asks for (named by its generation prompt)."""
    text = "\n".join(m.content for m in request.messages if m.role == "user")
    found = [lab for lab in task.labels if generation_prompt(task, lab) in text]
    if len(found) != 1:
        raise ValueError(f"cannot tell the target label of a request: {found}")
    return found[0]


def rows_for(task: TaskSpec, mode: str, log, split: str, seed: int) -> list[dict]:
    rows = []
    for n, (req, resp) in enumerate(log):
        demos = []
        if mode == "few-shot":
            for line in req.messages[-1].content.splitlines():
                m = _DEMO_LINE.match(line)
                if m:
                    demos.append({"label": m["label"], "text": m["text"]})
        rows.append({
            "id": f"{split}:{task.name}:{mode}:{n}",
            "split": split,
            "seed": seed,
            "task": task.name,
            "mode": mode,
            "label": target_label(task, req),
            "turn": (len(req.messages) - 2) // 2 if mode == "zero-shot" else 0,
            "diversity_turn": req.messages[-1].content == DIVERSITY_PROMPT,
            "demonstrations": demos,
            "response": resp.text,
            "finish_reason": resp.finish_reason,
            "class": None,
            "note": "",
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="real data folder (few-shot demonstrations)")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--per-label", type=int, required=True)
    ap.add_argument("--split", required=True, help="a name for this batch (dev, heldout)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--modes", default="zero_shot,few_shot")
    args = ap.parse_args()
    config = load_config(demo_config_path())
    backend = None
    with tempfile.TemporaryDirectory() as tmp, args.out.open("a", encoding="utf-8") as fh:
        for name in args.tasks.split(","):
            task = task_spec(name)
            for mode in args.modes.split(","):
                cfg = generation_config(GenerationConfig, config, task, mode, Path(args.data))
                cfg.per_label, cfg.seed, cfg.cache, cfg.progress = args.per_label, args.seed, False, False
                if backend is None:
                    backend = LocalBackend(batch_size=cfg.concurrency, threads=args.threads)
                rec = RecordingBackend(backend)
                asyncio.run(generate_async(cfg, Path(tmp) / f"{name}-{mode}.jsonl", rec))
                for row in rows_for(task, cfg.mode, rec.log, args.split, args.seed):
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                fh.flush()
                print(f"{name} {cfg.mode}: {len(rec.log)} replies (appended to {args.out})", flush=True)


if __name__ == "__main__":
    main()
