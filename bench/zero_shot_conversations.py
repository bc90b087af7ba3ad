"""Zero-shot conversations on the packaged model: what the paper's diversity turns cost and give.

Runs the demo's generation step (subjlab/configs/demo.toml, [generation]) on the local SmolLM2-135M
and, in the same run, the baseline it replaces:

  before  zero-shot in one-turn conversations (max_turns = 1: the diversity prompt is never sent),
          each round generated as one batch padded to its longest prompt
  after   the demo's zero-shot conversations (a diversity turn after every `diversity_every` texts),
          rounds cut into batches of similar prompt length (`generation.backends.local.plan_batches`)
  long    (--long) the paper's shape on the same model: one conversation per label of up to 12 turns,
          a diversity turn every 5 (shows how the small model degrades along a conversation)

and few-shot before/after (one batch per round vs batches of similar length; same prompts). Each
task runs its arms one after the other, in alternating order from task to task, on one torch thread
(so CPU seconds are comparable on a machine shared with other jobs). Per run: texts written,
requests, diversity requests and the texts they gave, CPU seconds per text, rejections (meta-talk,
duplicates and near duplicates), abandoned conversations and Remote Clique (mean cosine distance
between the texts of a label, averaged over labels; higher = more diverse). The load average is
printed at the start and the end.

Run: `python bench/zero_shot_conversations.py --data DIR` (about 20 minutes on a quiet 2-core CPU);
--tasks to choose tasks, --per-label to change the size, --long to add the long-conversation arm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from generation.backends import local as local_module  # noqa: E402
from generation.config import GenerationConfig  # noqa: E402
from generation.engine import generate_async  # noqa: E402
from generation.prompts import DIVERSITY_PROMPT  # noqa: E402
from subjlab.runner.config import load_config  # noqa: E402
from subjlab.runner.demo import demo_config_path  # noqa: E402
from subjlab.runner.task_steps import generation_config  # noqa: E402
from subjlab.tasks import get_task  # noqa: E402

#: A per-call cost no padding can outweigh: every round goes into one batch (the code before).
ONE_BATCH = 10**9


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def remote_clique(rows: list[dict]) -> float:
    """Mean over labels of the Remote Clique of the label's texts (cosine distance, MiniLM)."""
    from analysis.diversity import remote_clique as clique
    from analysis.embeddings import embed_texts

    values = []
    for label in sorted({r["label"] for r in rows}):
        texts = [r["text"] for r in rows if r["label"] == label]
        if len(texts) >= 2:
            values.append(clique(embed_texts(texts)))
    return float(np.mean(values)) if values else float("nan")


def run_arm(backend, cfg: GenerationConfig, step_cost: int, out: Path) -> dict:
    """Generate with `cfg` on `backend`; return the run's figures."""
    turns: Counter[int] = Counter()
    diversity = 0
    complete_sync = backend.complete_sync

    def recording(requests):
        nonlocal diversity
        for r in requests:
            turns[(len(r.messages) - 2) // 2] += 1
            diversity += r.messages[-1].content == DIVERSITY_PROMPT
        return complete_sync(requests)

    backend.complete_sync = recording
    local_module.STEP_COST_TOKENS = step_cost
    start = cpu_seconds()
    try:
        summary = asyncio.run(generate_async(cfg, out, backend))
    finally:
        del backend.complete_sync
        local_module.STEP_COST_TOKENS = DEFAULT_STEP_COST
    cpu = cpu_seconds() - start
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    kept_by_turn = Counter(r["conversation_turn"] for r in rows)
    div_kept = sum(1 for r in rows if cfg.mode == "zero-shot" and cfg.diversity_every > 0
                   and r["conversation_turn"] > 0 and r["conversation_turn"] % cfg.diversity_every == 0)
    f = summary.filters
    return {
        "written": summary.written, "requests": summary.requests, "diversity_requests": diversity,
        "diversity_texts": div_kept, "cpu_s": cpu, "cpu_per_text": cpu / max(1, summary.written),
        "tokens_in": summary.tokens_in, "meta": f["meta"], "dups": f["duplicate"] + f["near_duplicate"],
        "abandoned": summary.abandoned_conversations, "remote_clique": remote_clique(rows),
        "requests_by_turn": dict(sorted(turns.items())), "kept_by_turn": dict(sorted(kept_by_turn.items())),
    }


DEFAULT_STEP_COST = local_module.STEP_COST_TOKENS


def arms(task, data: Path, per_label: int, long: bool) -> list[tuple[str, GenerationConfig, int]]:
    study = load_config(demo_config_path())
    demo = {m: generation_config(GenerationConfig, study, task, m, data) for m in ("zero_shot", "few_shot")}
    for cfg in demo.values():
        cfg.per_label, cfg.cache, cfg.progress, cfg.threads = per_label, False, False, 1
    before_zero = generation_config(GenerationConfig, study, task, "zero_shot", data)
    before_zero.per_label, before_zero.cache, before_zero.progress, before_zero.max_turns = per_label, False, False, 1
    out = [("zero-shot before", before_zero, ONE_BATCH), ("zero-shot after", demo["zero_shot"], DEFAULT_STEP_COST),
           ("few-shot before", demo["few_shot"], ONE_BATCH), ("few-shot after", demo["few_shot"], DEFAULT_STEP_COST)]
    if long:
        paper = generation_config(GenerationConfig, study, task, "zero_shot", data)
        paper.per_label, paper.cache, paper.progress = per_label, False, False
        paper.diversity_every, paper.max_turns, paper.conversations = 5, 12, len(task.labels)
        out.append(("zero-shot long", paper, DEFAULT_STEP_COST))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="real data (few-shot demonstrations)")
    ap.add_argument("--tasks", default="sms_spam,financial_phrasebank,humor")
    ap.add_argument("--per-label", type=int, default=12)
    ap.add_argument("--long", action="store_true", help="add the long-conversation arm")
    ap.add_argument("--json", type=Path, help="also write every run's figures here")
    args = ap.parse_args()
    os.nice(10)
    from generation.backends.local import LocalBackend

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    backend = LocalBackend(batch_size=36, threads=1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for t, name in enumerate(args.tasks.split(",")):
            task = get_task(name)
            runs = arms(task, args.data, args.per_label, args.long)
            pairs = [runs[0:2], runs[2:4]] + ([runs[4:]] if args.long else [])
            for pair in pairs:
                for label, cfg, step_cost in (pair if t % 2 == 0 else pair[::-1]):
                    res = run_arm(backend, cfg, step_cost, Path(tmp) / f"{name}-{label.replace(' ', '-')}.jsonl")
                    res.update(task=name, arm=label)
                    results.append(res)
                    print(f"{name:22s} {label:17s} {res['written']:3d} texts {res['requests']:3d} requests "
                          f"({res['diversity_requests']:2d} diversity -> {res['diversity_texts']:2d} texts) "
                          f"{res['cpu_per_text']:5.2f} s CPU/text  meta {res['meta']:2d}  dup {res['dups']:2d}  "
                          f"abandoned {res['abandoned']:2d}  Remote Clique {res['remote_clique']:.3f}", flush=True)
                    if label == "zero-shot long":
                        print(f"{'':22s} requests by turn {res['requests_by_turn']}\n{'':22s} texts by turn    "
                              f"{res['kept_by_turn']}", flush=True)
    for mode in ("zero-shot", "few-shot"):
        before = [r for r in results if r["arm"] == f"{mode} before"]
        after = [r for r in results if r["arm"] == f"{mode} after"]
        per_text = [sum(r["cpu_s"] for r in rs) / max(1, sum(r["written"] for r in rs)) for rs in (before, after)]
        clique = [float(np.mean([r["remote_clique"] for r in rs])) for rs in (before, after)]
        print(f"{mode}: CPU s/text before {per_text[0]:.2f}, after {per_text[1]:.2f} (after/before "
              f"{per_text[1] / per_text[0]:.2f}x); Remote Clique before {clique[0]:.3f}, after {clique[1]:.3f}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
