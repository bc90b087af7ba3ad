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
    process's CPU time. Torch threads: the idle cores at start (`subjlab.runner.threads.auto_threads`, as
    `subjlab run` uses), or --threads. Decoding one conversation is memory-bandwidth bound (every step
    reads all weights for one row), 16 at once is compute bound, so a second idle core helps the
    batched side only: on an idle 2-core machine 2 threads gave 3.6x, 1 thread 2.8x. Target >= 3x.

(c) The whole engine at a real API's rate limit: the loopback endpoint (own process, 200 ms latency,
    `tests.support.openai_server.CannedReplies`) behind `tests.support.openai_server.RateLimit`: 8
    requests/s and 90,000 tokens/min (token buckets holding one second of each; a request costs
    its prompt tokens + max_tokens, so as the zero-shot conversations grow the token limit binds
    too). Beyond them: 429 at once with `retry-after` in whole seconds (as OpenAI sends it), a
    quarter of them with no header at all. Once with OpenAI's `x-ratelimit-*` headers on every
    reply, once without (as vLLM or Ollama behind a proxy). 2 x 120 texts at --concurrency 16: the
    adaptive limit (default) and today's fixed concurrency (`adaptive_concurrency=False`: 16 in
    flight, 429s retried with backoff up to --max-retries 6) alternate, 3 runs each, each on a fresh
    endpoint; then one fixed run with --max-retries 30 (which finishes). Printed: texts/s as a share
    of what the endpoint allowed over the run (its buckets' refill over the elapsed time plus their
    initial contents, the token bucket in requests of the run's mean cost; target >= 0.9), 429s per
    text written (target <= 0.2), client CPU per text, and runs that gave up.
(d) A 30 s storm of 429s (every request; Retry-After 1 s, or no header for a quarter) from 10 s into
    an adaptive run of 2 x 100 texts at an endpoint allowing 8 requests/s (no token limit, no budget
    headers), and the same for a fixed run: when the endpoint serves again after the storm's end,
    when it is back to 80% of the allowed rate (over 2 s), and whether the run ends with exactly 100
    texts per label.

(e) `--case serve` only: the packaged model served by `transformers serve` (Hugging Face's own
    OpenAI-compatible server; needs `transformers[serving]`: fastapi, uvicorn) with continuous
    batching, talked to by the `openai` backend, vs today's `local` backend, on the demo's zero-shot
    generation step for sms_spam (same config, same prompts, same per_label, cache off), runs
    alternating, medians of texts/s and CPU seconds per text (for serve: this process plus the
    server's process tree). Both sides get the same OpenMP/torch threads.

Both baselines are measured in the same run; the load average is printed with the results.
Run: `python bench/generation_throughput.py` (runs at nice 10; about 20 minutes on a 2-core CPU,
(c) about 13 of them, (d) 2; --quick for smaller sizes; --case to run one of them).
"""

from __future__ import annotations

import argparse
import contextlib
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
from generation.limiter import describe  # noqa: E402
from generation.prompts import ZeroShotConversation  # noqa: E402
from subjlab.tasks import get_task  # noqa: E402
from tests.support.openai_server import CannedReplies, ChatCompletionServer, RateLimit  # noqa: E402

def _serve(latency: float, port_queue) -> None:
    server = ChatCompletionServer(CannedReplies(latency))
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


class _Switch:
    """The responder of the rate-limited endpoint process: the current `RateLimit` (replaced for
    each run, so each starts with full buckets)."""

    def __init__(self) -> None:
        self.current: RateLimit | None = None

    def __call__(self, body: dict):
        assert self.current is not None
        return self.current(body)


def _serve_rate_limited(latency: float, conn) -> None:
    """Serve `CannedReplies(latency)` behind a `RateLimit`; commands come over `conn`:
    ("limit", kwargs) starts a fresh limit, ("storm", start, end) adds a storm, ("stats",) answers
    the limit's counters and log."""
    switch = _Switch()
    server = ChatCompletionServer(switch)
    server.start()
    conn.send(server.port)
    while True:
        try:
            command = conn.recv()
        except EOFError:
            return
        if command[0] == "limit":
            switch.current = RateLimit(CannedReplies(latency), **command[1])
            conn.send(None)
        elif command[0] == "storm":
            switch.current.storm(command[1], command[2])
            conn.send(None)
        elif command[0] == "stats":
            lim = switch.current
            conn.send({"admitted": lim.admitted, "rejected": lim.rejected, "tokens_charged": lim.tokens_charged,
                       "log": list(lim.log)})


def _allowed_texts(limit: dict, stats: dict, elapsed: float) -> float:
    """Requests the endpoint could have admitted over `elapsed` seconds: its buckets' initial
    contents plus their refill, the token bucket in requests of the run's mean charge."""
    requests = limit["requests_per_s"] * (limit.get("burst_s", 1.0) + elapsed)
    if limit.get("tokens_per_min") is None or not stats["admitted"]:
        return requests
    per_request = stats["tokens_charged"] / stats["admitted"]
    tokens = limit["tokens_per_min"] / 60.0 * (limit.get("burst_s", 1.0) + elapsed)
    return min(requests, tokens / per_request)


def _rate_limited_run(conn, url: str, limit: dict, per_label: int, adaptive: bool, out: Path,
                      storm: tuple[float, float] | None = None, max_retries: int = 6) -> dict:
    """One engine run (2 labels x `per_label` texts, --concurrency 16) against a fresh limit;
    returns what the bench prints."""
    import asyncio

    from generation.engine import GenerationError, generate_async, summary_path

    conn.send(("limit", limit))
    conn.recv()
    config = GenerationConfig(
        task="sms_spam", per_label=per_label, backend="openai", base_url=url, api_key="bench", model="bench",
        concurrency=16, adaptive_concurrency=adaptive, cache=False, near_duplicate_threshold=None, progress=False,
        max_retries=max_retries,
    )
    start, cpu_start = time.monotonic(), time.process_time()
    if storm is not None:
        conn.send(("storm", start + storm[0], start + storm[0] + storm[1]))
        conn.recv()
    gave_up = None
    try:
        asyncio.run(generate_async(config, out))
    except GenerationError as exc:
        gave_up = str(exc)
    elapsed, cpu = time.monotonic() - start, time.process_time() - cpu_start
    summary = json.loads(summary_path(out).read_text())
    conn.send(("stats",))
    stats = conn.recv()
    written = summary["written"]
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {
        "written": written, "per_label": summary["per_label"], "elapsed": elapsed, "gave_up": gave_up,
        "rows_per_label": {lab: sum(r["label"] == lab for r in rows) for lab in summary["per_label"]},
        "share": written / _allowed_texts(limit, stats, elapsed), "rejected": stats["rejected"],
        "per_text": stats["rejected"] / max(written, 1), "cpu_ms": 1000 * cpu / written if written else None,
        "rate_limit": summary.get("rate_limit"), "log": stats["log"], "start": start,
    }


def _describe_run(name: str, run: dict, share: bool = True) -> str:
    end = f"GAVE UP after {run['written']} texts ({run['gave_up'][:90]})" if run["gave_up"] else \
        f"{run['written']} texts"
    limit = run["rate_limit"]
    settled = "" if not limit else f"; limit: {describe(limit)}"
    of_allowed = f" = {run['share']:.2f} of allowed" if share else ""
    return (f"  {name} {end} in {run['elapsed']:.1f} s = {run['written'] / run['elapsed']:.2f} texts/s{of_allowed}; "
            f"{run['rejected']} x 429 = {run['per_text']:.2f} per text; "
            + (f"{run['cpu_ms']:.1f} ms CPU per text" if run["written"] else "no text to count CPU per text") + settled)


@contextlib.contextmanager
def _limited_endpoint(latency: float = 0.2):
    """Start the rate-limited endpoint process (`_serve_rate_limited`); yield (pipe, base URL)
    after a warm-up run (the first run in a process pays about 2 s of imports)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_rate_limited, args=(latency, child), daemon=True)
    proc.start()
    try:
        url = f"http://127.0.0.1:{parent.recv()}/v1"
        with tempfile.TemporaryDirectory() as tmp:
            _rate_limited_run(parent, url, dict(requests_per_s=1000.0), 2, True, Path(tmp) / "warm-up.jsonl")
        yield parent, url
    finally:
        parent.close()
        proc.terminate()
        proc.join(timeout=10)


def bench_rate_limited(conn, url: str, per_label: int, repeats: int) -> dict:
    """(c) adaptive vs fixed concurrency at a rate limit, with and without budget headers.
    Returns {variant: {"adaptive": [runs], "fixed": [runs], "fixed, --max-retries 30": [run]}}."""
    import statistics

    variants = {
        "headers": dict(requests_per_s=8.0, tokens_per_min=90_000, headers=True, bare_share=0.25),
        "no headers": dict(requests_per_s=8.0, tokens_per_min=90_000, headers=False, bare_share=0.25),
    }
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant, limit in variants.items():
            print(f"  {variant}: 8 requests/s, 90,000 tokens/min, 2 x {per_label} texts at --concurrency 16", flush=True)
            runs: dict[str, list] = {"adaptive": [], "fixed": []}
            for rep in range(repeats):
                for name in ("adaptive", "fixed") if rep % 2 == 0 else ("fixed", "adaptive"):
                    out = Path(tmp) / f"{variant.replace(' ', '_')}-{name}-{rep}.jsonl"
                    run = _rate_limited_run(conn, url, dict(limit, seed=rep), per_label, name == "adaptive", out)
                    runs[name].append(run)
                    print(_describe_run(name, run), flush=True)
            # today's engine gives up with the default --max-retries 6; with 30 it finishes
            out = Path(tmp) / f"{variant.replace(' ', '_')}-fixed-30.jsonl"
            runs["fixed, --max-retries 30"] = [_rate_limited_run(conn, url, dict(limit, seed=7), per_label, False, out,
                                                                 max_retries=30)]
            print(_describe_run("fixed, --max-retries 30", runs["fixed, --max-retries 30"][0]), flush=True)
            for name, done_runs in runs.items():
                done = [r for r in done_runs if not r["gave_up"]]
                if done:
                    print(f"  {variant} {name}, medians: {statistics.median(r['share'] for r in done):.2f} of the "
                          f"allowed rate, {statistics.median(r['per_text'] for r in done):.2f} x 429 per text "
                          f"({len(done_runs) - len(done)} of {len(done_runs)} runs gave up)", flush=True)
                else:
                    print(f"  {variant} {name}: every run gave up ({len(done_runs)} of {len(done_runs)})", flush=True)
            results[variant] = runs
    return results


def bench_storm(conn, url: str, storm_s: float, storm_at: float = 10.0, after_s: float = 15.0) -> dict:
    """(d) a storm of 429s of `storm_s` seconds from `storm_at` seconds into a run, at an endpoint
    allowing 8 requests/s (no token limit, no budget headers): adaptive, then fixed."""
    rate = 8.0
    limit = dict(requests_per_s=rate, headers=False, bare_share=0.25, seed=99)
    n = int(rate * (storm_at + after_s) / 2)
    print(f"(d) a {storm_s:.0f} s storm of 429s from {storm_at:.0f} s into a run of 2 x {n} texts at an endpoint "
          f"allowing {rate:g} requests/s (no budget headers)", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("adaptive", "fixed"):
            out = Path(tmp) / f"storm-{name}.jsonl"
            run = _rate_limited_run(conn, url, limit, n, name == "adaptive", out, storm=(storm_at, storm_s))
            end = run["start"] + storm_at + storm_s
            served = sorted(t for t, status in run["log"] if status == 200 and t >= end)
            run["first_after"] = served[0] - end if served else None
            run["back_to_80"] = _back_to(served, end, 0.8 * rate)
            run["exact"] = run["rows_per_label"] == {lab: n for lab in run["rows_per_label"]}
            print(_describe_run(name, run, share=False), flush=True)
            if not run["gave_up"]:
                first = "never" if run["first_after"] is None else f"{run['first_after']:.2f} s"
                back = "never" if run["back_to_80"] is None else f"{run['back_to_80']:.1f} s"
                print(f"  {name} after the storm: first request served {first} after its end, 80% of the allowed "
                      f"rate (over 2 s) {back} after; texts per label {run['rows_per_label']} "
                      f"({'exact' if run['exact'] else 'NOT exact'})", flush=True)
            results[name] = run
    return results


def _back_to(served: list[float], since: float, rate: float, span: float = 2.0) -> float | None:
    """Seconds after `since` until `span` seconds in a row served at least `rate` requests/s."""
    for i, t in enumerate(served):
        if sum(1 for u in served[i:] if u < t + span) >= rate * span:
            return t - since
    return None


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


def _start_transformers_serve(port: int, threads: int):
    """Start `transformers serve` on the packaged SmolLM2 GGUF (its own process, `threads` OpenMP
    threads); return (process, base URL, model id) once it answers, or raise RuntimeError."""
    import subprocess
    import urllib.request

    from subjlab.packaged_models import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    exe = Path(sys.executable).with_name("transformers")
    cmd = [str(exe), "serve", f"{gguf.parent}:{gguf.name}", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
           "--continuous-batching"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    log = tempfile.NamedTemporaryFile("w+", prefix="transformers-serve-", suffix=".log", delete=False)
    print(f"  $ OMP_NUM_THREADS={threads} {' '.join(cmd)}   (log: {log.name})", flush=True)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as resp:
                model = json.loads(resp.read())["data"][0]["id"]
            return proc, f"{url}/v1", model
        except OSError:
            time.sleep(2)
    proc.terminate()
    raise RuntimeError(f"transformers serve did not answer within 900 s; see {log.name}")


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children (serve generates in a child)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def bench_transformers_serve(per_label: int, repeats: int, threads: int, port: int = 8797) -> dict[str, dict]:
    """(e) The demo's zero-shot generation step for sms_spam (subjlab/configs/demo.toml: concurrency
    36, 48 max tokens, a diversity turn after every text, 2-turn conversations), `per_label` texts a
    label, cache off: the `local` backend (in process, the model loaded once beforehand) vs the
    `openai` backend talking to `transformers serve` on the same GGUF (own process, loaded once
    beforehand). Runs alternate; medians of texts/s and of CPU seconds per text (this process plus,
    for serve, the server's process tree)."""
    import dataclasses
    import statistics

    from generation.backends.local import LocalBackend
    from generation.engine import generate
    from subjlab.runner.config import load_config
    from subjlab.runner.demo import demo_config_path
    from subjlab.runner.task_steps import generation_config

    study = load_config(demo_config_path())
    demo = generation_config(GenerationConfig, study, get_task("sms_spam"), "zero_shot", None)
    local_cfg = dataclasses.replace(demo, per_label=per_label, cache=False, progress=False, threads=threads)
    local = LocalBackend(batch_size=local_cfg.concurrency, threads=threads)
    proc, url, model = _start_transformers_serve(port, threads)
    serve_cfg = dataclasses.replace(local_cfg, backend="openai", base_url=url, model=model, api_key="none",
                                    request_timeout=600.0, threads=None)
    runs: dict[str, list[dict]] = {"local": [], "serve": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(repeats):
                for name in ("local", "serve"):
                    out = Path(tmp) / f"{name}-{r}.jsonl"
                    server_cpu = _tree_cpu(proc.pid) if name == "serve" else 0.0
                    start, cpu = time.perf_counter(), time.process_time()
                    summary = generate(local_cfg if name == "local" else serve_cfg, out,
                                       backend=local if name == "local" else None)
                    wall = time.perf_counter() - start
                    cpu = time.process_time() - cpu + (_tree_cpu(proc.pid) - server_cpu if name == "serve" else 0.0)
                    texts = max(1, summary.written)
                    run = {"texts": summary.written, "wall": wall, "cpu": cpu, "rate": summary.written / wall,
                           "cpu_per_text": cpu / texts, "requests": summary.requests, "stopped": summary.stopped,
                           "rejected": {k: v for k, v in summary.filters.items() if v and k != "accepted"},
                           "sample": [rec["text"] for rec in map(json.loads, out.read_text().splitlines()[:2])]}
                    runs[name].append(run)
                    print(f"  {name:5s} run {r + 1}: {run['texts']} texts in {wall:.1f} s = {run['rate']:.3f} texts/s, "
                          f"{run['cpu_per_text']:.2f} CPU s/text, {run['requests']} requests, "
                          f"rejected {run['rejected']}, stopped: {run['stopped']}", flush=True)
    finally:
        proc.terminate()
        with contextlib.suppress(Exception):
            proc.wait(timeout=30)
    out = {}
    for name, rs in runs.items():
        out[name] = {"rate": statistics.median(r["rate"] for r in rs),
                     "cpu_per_text": statistics.median(r["cpu_per_text"] for r in rs), "sample": rs[0]["sample"]}
        print(f"  {name}: median {out[name]['rate']:.3f} texts/s, {out[name]['cpu_per_text']:.2f} CPU s/text; "
              f"first texts: {out[name]['sample']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for (b) (default: the idle cores at start, as `subjlab run` chooses)")
    parser.add_argument("--case", choices=("concurrency", "local", "rate-limit", "storm", "serve"), default=None,
                        help="run only (a) concurrency, (b) local, (c) rate-limit, (d) storm or (e) serve "
                        "(default: all but serve)")
    args = parser.parse_args()
    try:
        os.nice(10)
    except OSError:
        pass
    if args.case in (None, "concurrency"):
        texts = {1: 16, 16: 64} if args.quick else {1: 48, 16: 160}
        repeats = {1: 1, 16: 1} if args.quick else {1: 3, 16: 5}
        print(f"(a) engine vs a loopback endpoint with 200 ms latency: {texts[16]} texts at concurrency 16 "
              f"(median of {repeats[16]}), {texts[1]} at 1 (median of {repeats[1]}); load average {load_average()}")
        rates = bench_concurrency(0.2, texts, repeats)
        print(f"concurrency 16 vs 1 (medians): {rates[16] / rates[1]:.1f}x texts/s (target >= 12x, ideal 16x); "
              f"load average {load_average()}")
        if not args.quick:
            print("(a') the same with a 1 s latency (closer to a real chat model's), 32 texts, one run each")
            slow = bench_concurrency(1.0, {1: 32, 16: 32}, {1: 1, 16: 1})
            print(f"concurrency 16 vs 1 at 1 s latency: {slow[16] / slow[1]:.1f}x texts/s (ideal 16x)")
    if args.case in (None, "local"):
        if args.threads is None:
            from subjlab.runner.threads import auto_threads

            args.threads = auto_threads()
        n_local = 4 if args.quick else 16
        print(f"(b) local SmolLM2-135M-Instruct, {n_local} texts, 48 max tokens, greedy, {args.threads} thread(s)")
        local = bench_local_batching(n_local, n_local, 48, args.threads)
        (single, batched), (single_cpu, batched_cpu) = local["wall"], local["cpu"]
        print(f"local batched ({n_local} conversations) vs one at a time: {batched / single:.1f}x texts/s wall, "
              f"{batched_cpu / single_cpu:.1f}x texts per CPU-second (target >= 3x); load average {load_average()}")
    if args.case in (None, "rate-limit", "storm"):
        with _limited_endpoint() as (conn, url):
            if args.case in (None, "rate-limit"):
                per_label, repeats = (40, 1) if args.quick else (120, 3)
                print(f"(c) engine vs a rate-limited loopback endpoint (200 ms latency), adaptive limit vs fixed "
                      f"concurrency, {repeats} run(s) each, alternating; load average {load_average()}", flush=True)
                bench_rate_limited(conn, url, per_label, repeats)
            if args.case in (None, "storm"):
                print(f"load average {load_average()}", flush=True)
                bench_storm(conn, url, 10.0 if args.quick else 30.0)
        print(f"load average {load_average()}")
    if args.case == "serve":
        if args.threads is None:
            from subjlab.runner.util import auto_threads

            args.threads = auto_threads()
        per_label, repeats = (2, 1) if args.quick else (6, 3)
        print(f"(e) the demo's zero-shot generation step (sms_spam, {per_label} texts a label, cache off): local "
              f"backend vs transformers serve + the openai backend, {repeats} run(s) each, alternating, "
              f"{args.threads} thread(s) each; load average {load_average()}", flush=True)
        res = bench_transformers_serve(per_label, repeats, args.threads)
        print(f"serve vs local (medians): {res['serve']['rate'] / res['local']['rate']:.2f}x texts/s, "
              f"{res['serve']['cpu_per_text'] / res['local']['cpu_per_text']:.2f}x CPU s per text; "
              f"load average {load_average()}")


if __name__ == "__main__":
    main()
