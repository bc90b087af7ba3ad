"""Generation throughput: concurrency against an endpoint, batching on the local model.

(a) The whole engine (`generation.engine.generate`, real `openai` client, real HTTP) against an
    OpenAI-compatible server on 127.0.0.1 (its own process) that answers every request after a
    fixed latency (200 ms) with a valid, distinct text: texts/s at --concurrency 16 (160 texts:
    ten waves of 16 requests, median of 5 runs, so one slow wave on a busy machine does not decide
    the result) vs 1 (48 texts, median of 3 runs; one request at a time, its rate hardly varies
    with the count), each with its client connections opened before the timed run (steady state).
    Ideal: 16x. What separates the two from it is the client's CPU per request (the `openai`
    client, the engine's parsing, filters and commits); the engine hides its own share by sending
    the next turns while a round finishes and by making each round durable with one fsync.
    (a') repeats the measurement with a 1 s latency (32 texts, one run each), closer to a real
    chat model's, where that CPU matters less.
(b) The local backend (packaged SmolLM2-135M-Instruct): the same requests (first prompts of
    different tasks and labels, 48 max tokens, greedy so both ways write the same texts) generated
    16 conversations per batch vs one conversation at a time: texts/s, by wall time and by the
    process's CPU time. Torch threads: the idle cores at start (`subjlab.runner.util.auto_threads`, as
    `subjlab run` uses), or --threads. Decoding one conversation is memory-bandwidth bound (every step
    reads all weights for one row), 16 at once is compute bound, so a second idle core helps the
    batched side only: on an idle 2-core machine 2 threads gave 3.6x, 1 thread 2.8x. Target >= 3x.

Both baselines are measured in the same run; the load average is printed with the results.
Run: `python bench/generation_throughput.py` (runs at nice 10; about 4 minutes on a 2-core CPU;
--quick for smaller sizes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from generation.backends.base import ChatRequest  # noqa: E402
from generation.engine import GenerationConfig  # noqa: E402
from generation.openai_server import ChatCompletionServer, completion_body  # noqa: E402
from generation.prompts import ZeroShotConversation  # noqa: E402
from subjlab.tasks import get_task  # noqa: E402

WORDS = ("amber basil cedar delta ember fjord grove heron iris juniper kestrel lumen maple nectar onyx "
         "pebble quill raven sable thistle umber vale willow yarrow zephyr").split()


class FixedLatency:
    """Answers each request after `latency` seconds with a distinct 9-word text."""

    def __init__(self, latency: float):
        self.latency = latency

    def __call__(self, body: dict) -> dict:
        time.sleep(self.latency)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
        text = " ".join(WORDS[b % len(WORDS)] for b in digest[:9]).capitalize() + "."
        return completion_body(body.get("model", "bench"), text, 40, 12)


def _serve(latency: float, port_queue) -> None:
    server = ChatCompletionServer(FixedLatency(latency))
    port_queue.put(server.port)
    server.serve_forever()


def bench_concurrency(latency: float, texts: dict[int, int], repeats: dict[int, int]) -> dict[int, float]:
    """Return {concurrency: median texts/s} for each concurrency in `texts` (texts to generate,
    split over two labels) over `repeats[concurrency]` runs. The server runs in its own process,
    so its work does not compete with the client's for the GIL."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(latency, ports), daemon=True)
    proc.start()
    try:
        url = f"http://127.0.0.1:{ports.get(timeout=60)}/v1"
        return _run_concurrency(url, texts, repeats)
    finally:
        proc.terminate()
        proc.join(timeout=10)


async def _warm_then_generate(config: GenerationConfig, out: Path):
    """Open the client's `concurrency` connections (as in any long run after its first second),
    then run the engine on the same client and event loop."""
    from generation.engine import build_backend, generate_async

    backend = build_backend(config)
    try:
        task = get_task("sms_spam")
        req = ChatRequest(tuple(ZeroShotConversation(task, "ham", 0).next_messages()[0]), max_tokens=8)
        await backend.complete([req] * config.concurrency)
        return await generate_async(config, out, backend=backend)
    finally:
        await backend.aclose()


def _run_concurrency(url: str, texts: dict[int, int], repeats: dict[int, int]) -> dict[int, float]:
    import asyncio
    import statistics

    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency, n in texts.items():
            config = GenerationConfig(
                task="sms_spam", per_label=n // 2, backend="openai", base_url=url, api_key="bench",
                model="bench", concurrency=concurrency, cache=False, near_duplicate_threshold=None, progress=False,
            )
            runs = []
            for rep in range(repeats[concurrency]):
                summary = asyncio.run(_warm_then_generate(config, Path(tmp) / f"c{concurrency}-{rep}.jsonl"))
                assert summary.complete and summary.written == 2 * (n // 2), summary.to_dict()
                runs.append(summary.texts_per_s)
                print(f"  concurrency {concurrency:2d}, run {rep + 1}: {summary.written} texts, {summary.requests} requests "
                      f"({summary.unused_requests} sent ahead unused) in {summary.elapsed_s:.2f} s = "
                      f"{summary.texts_per_s:.1f} texts/s", flush=True)
            rates[concurrency] = statistics.median(runs)
    return rates


def load_average() -> str:
    """Return the 1/5/15-minute load averages as text (what else the machine was doing)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_local_batching(n_texts: int, batch: int, max_tokens: int, threads: int) -> dict[str, tuple[float, float]]:
    """Return {"wall": (texts/s one at a time, texts/s batched), "cpu": (texts per CPU-second, ...)}.

    The requests are the first zero-shot prompts of different (task, label) pairs, decoded greedily,
    so both ways produce exactly the same texts (checked) and the comparison is like for like.
    With one torch thread the process's CPU time is what the work costs on an idle core; wall time
    on a shared machine also measures the neighbours' load, so both are reported.
    """
    from generation.backends.local import LocalBackend
    from subjlab.tasks import REGISTRY

    pairs = [(task, label) for task in REGISTRY.values() for label in task.labels]
    pairs = [pairs[(i * 7) % len(pairs)] for i in range(n_texts)]  # spread over tasks
    requests = [
        ChatRequest(tuple(ZeroShotConversation(task, label, i).next_messages()[0]), max_tokens=max_tokens,
                    temperature=0.0, sample_index=i)
        for i, (task, label) in enumerate(pairs)
    ]
    backend = LocalBackend(batch_size=1, threads=threads)
    backend.complete_sync(requests[:1])  # warm-up
    wall, cpu, texts = {}, {}, {}
    for size in (1, batch):
        backend.max_batch = size
        start, cpu_start = time.perf_counter(), time.process_time()
        responses = backend.complete_sync(requests)
        elapsed, cpu_used = time.perf_counter() - start, time.process_time() - cpu_start
        tokens = sum(r.tokens_out for r in responses)
        wall[size], cpu[size] = len(responses) / elapsed, len(responses) / cpu_used
        texts[size] = [r.text for r in responses]
        print(f"  {size:2d} conversation(s) per batch: {len(responses)} texts, {tokens} tokens in {elapsed:.1f} s wall "
              f"({cpu_used:.1f} s CPU) = {wall[size]:.3f} texts/s", flush=True)
    same = sum(a == b for a, b in zip(texts[1], texts[batch]))
    print(f"  identical texts both ways: {same}/{n_texts}")
    return {"wall": (wall[1], wall[batch]), "cpu": (cpu[1], cpu[batch])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for (b) (default: the idle cores at start, as `subjlab run` chooses)")
    args = parser.parse_args()
    try:
        os.nice(10)
    except OSError:
        pass
    texts = {1: 16, 16: 64} if args.quick else {1: 48, 16: 160}
    repeats = {1: 1, 16: 1} if args.quick else {1: 3, 16: 5}
    n_local = 4 if args.quick else 16
    print(f"(a) engine vs a loopback endpoint with 200 ms latency: {texts[16]} texts at concurrency 16 "
          f"(median of {repeats[16]}), {texts[1]} at 1 (median of {repeats[1]}); load average {load_average()}")
    rates = bench_concurrency(0.2, texts, repeats)
    print(f"concurrency 16 vs 1 (medians): {rates[16] / rates[1]:.1f}x texts/s (target >= 12x, ideal 16x); "
          f"load average {load_average()}")
    if not args.quick:
        print("(a') the same with a 1 s latency (closer to a real chat model's), 32 texts, one run each")
        slow = bench_concurrency(1.0, {1: 32, 16: 32}, {1: 1, 16: 1})
        print(f"concurrency 16 vs 1 at 1 s latency: {slow[16] / slow[1]:.1f}x texts/s (ideal 16x)")
    if args.threads is None:
        from subjlab.runner.util import auto_threads

        args.threads = auto_threads()
    print(f"(b) local SmolLM2-135M-Instruct, {n_local} texts, 48 max tokens, greedy, {args.threads} thread(s)")
    local = bench_local_batching(n_local, n_local, 48, args.threads)
    (single, batched), (single_cpu, batched_cpu) = local["wall"], local["cpu"]
    print(f"local batched ({n_local} conversations) vs one at a time: {batched / single:.1f}x texts/s wall, "
          f"{batched_cpu / single_cpu:.1f}x texts per CPU-second (target >= 3x); load average {load_average()}")


if __name__ == "__main__":
    main()
