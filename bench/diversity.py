"""Benchmark: blocked diversity/similarity (analysis.diversity) vs a naive full n x n matrix.

    python bench/diversity.py [--n 10000] [--big 50000] [--reference-rows 5000] [--dim 384]

(it renices itself to 10). Cost: about 2.5 TFLOP of float32 matrix products in all, most of it the
50,000-text Chamfer run (2 n^2 d = 1.9 TFLOP); a few minutes on two idle cores, several times that on
a busy machine.

On the same embeddings (seeded random vectors around topic centres, unit length, 384-d like
all-MiniLM-L6-v2), each metric is computed both ways:

- blocked: the library (Remote Clique by the exact ||sum v||^2 identity; Chamfer and top-5 similarity
  by blocked matrix products with a running minimum / partial sort);
- naive: the whole similarity matrix at once (S = E @ E.T, n^2 float32), written carefully in place
  so that its memory is the matrix itself and little more (a fair, not a strawman, baseline).

Printed: wall time of each (the fastest of --repeat runs, default 3), the speed ratio naive/blocked,
the peak memory of each, and the largest difference between the two (must be <= 1e-5). Peak memory
is measured with tracemalloc, which numpy reports every array buffer to, in a separate run from the
timing, as the peak above the memory held before the call (inputs excluded). BLAS scratch space is
not seen by tracemalloc; it is bounded and the same for both.

Then the blocked version runs on --big texts' worth of embeddings (default 50,000) in a fresh
process: time, traced peak and that whole process's peak RSS. The naive version is NOT run there:
its matrix alone would take big^2 * 4 bytes (9.3 GiB at 50,000); that figure is extrapolated from
the naive peak measured at --n by (big/n)^2 and labelled as such.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.diversity import chamfer, remote_clique, top_k_similarity  # noqa: E402

MiB = 1024 * 1024
TOLERANCE = 1e-5


def clustered_embeddings(n: int, dim: int, seed: int, topics: int = 200) -> np.ndarray:
    """Return n unit vectors scattered around `topics` random centres (like texts on a few topics)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dim), dtype=np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 10_000
    for start in range(0, n, step):
        stop = min(n, start + step)
        which = rng.integers(0, topics, stop - start)
        out[start:stop] = centres[which] + rng.standard_normal((stop - start, dim), dtype=np.float32) * 0.9
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


# --- the naive baseline: one full similarity matrix --------------------------------------------

def naive_remote_clique(emb: np.ndarray) -> float:
    """Mean cosine distance over pairs i != j from the full n x n distance matrix."""
    n = emb.shape[0]
    dist = emb @ emb.T
    np.subtract(1.0, dist, out=dist)
    np.fill_diagonal(dist, 0.0)
    return float(dist.sum(dtype=np.float64) / (n * (n - 1)))


def naive_chamfer(emb: np.ndarray) -> float:
    """Mean distance to the nearest other instance from the full n x n similarity matrix."""
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    return float(np.clip(1.0 - sims.max(axis=1), 0.0, 2.0).mean(dtype=np.float64))


def naive_top5(reference: np.ndarray, candidates: np.ndarray, k: int = 5) -> float:
    """Mean over reference rows of the mean of the top-k similarities, from the full r x m matrix."""
    sims = reference @ candidates.T
    m = sims.shape[1]
    sims.partition(m - k, axis=1)  # in place
    return float(sims[:, m - k :].mean(axis=1).mean(dtype=np.float64))


# --- measurement -------------------------------------------------------------------------------

def timed(fn: Callable[[], float], repeat: int = 1) -> tuple[float, float]:
    """Return (value, wall seconds): the fastest of `repeat` calls (robust to a busy machine)."""
    best = float("inf")
    value = float("nan")
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return value, best


def traced_peak(fn: Callable[[], object]) -> int:
    """Return the peak bytes numpy/Python allocated during fn() above what was held before it."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux: VmHWM of /proc/self/status (per address space, so a fresh exec starts from zero; ru_maxrss
    would carry over the parent's peak at fork). Elsewhere ru_maxrss.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MiB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def compare(n: int, dim: int, seed: int, repeat: int) -> tuple[bool, int]:
    """Blocked vs naive on n embeddings: print the table; return (agree to TOLERANCE, naive peak bytes)."""
    emb = clustered_embeddings(n, dim, seed)
    ref = clustered_embeddings(max(5, n // 4), dim, seed + 1)
    print(f"embeddings: {n} x {dim} float32 (+ {ref.shape[0]} reference rows for top-5); "
          f"numpy {np.__version__}, {os.cpu_count()} CPUs, nice {os.nice(0)}; times: best of {repeat}", flush=True)
    remote_clique(emb[:100]), chamfer(emb[:100]), naive_chamfer(emb[:100])  # warm BLAS up

    cases = [
        ("remote_clique", lambda: remote_clique(emb), lambda: naive_remote_clique(emb)),
        ("chamfer", lambda: chamfer(emb), lambda: naive_chamfer(emb)),
        ("similarity_top5", lambda: top_k_similarity(ref, emb, 5), lambda: naive_top5(ref, emb, 5)),
    ]
    header = f"{'metric':<16}{'blocked s':>10}{'naive s':>10}{'speed x':>9}{'blocked MiB':>13}{'naive MiB':>11}{'memory x':>10}{'|diff|':>10}"
    print(header)
    print("-" * len(header))
    times = np.zeros(2)
    b_peak = n_peak = 0
    worst = 0.0
    for name, blocked, naive in cases:
        b_val, b_s = timed(blocked, repeat)
        n_val, n_s = timed(naive, repeat)
        b_mem = traced_peak(blocked)
        n_mem = traced_peak(naive)
        diff = abs(b_val - n_val)
        worst = max(worst, diff)
        b_peak, n_peak = max(b_peak, b_mem), max(n_peak, n_mem)
        times += (b_s, n_s)
        print(f"{name:<16}{b_s:>10.3f}{n_s:>10.3f}{n_s / b_s:>9.1f}{b_mem / MiB:>13.1f}{n_mem / MiB:>11.1f}"
              f"{n_mem / max(b_mem, 1):>10.1f}{diff:>10.1e}", flush=True)
    b_s, n_s = times
    print(f"{'all three':<16}{b_s:>10.3f}{n_s:>10.3f}{n_s / b_s:>9.1f}{b_peak / MiB:>13.1f}{n_peak / MiB:>11.1f}"
          f"{n_peak / max(b_peak, 1):>10.1f}{worst:>10.1e}")
    print(f"\nspeed ratio naive/blocked (all three metrics): {n_s / b_s:.2f}x; "
          f"peak memory: blocked {b_peak / MiB:.1f} MiB vs naive {n_peak / MiB:.1f} MiB ({n_peak / max(b_peak, 1):.1f}x less)")
    ok = worst <= TOLERANCE
    print(f"agree to {TOLERANCE}: {'yes' if ok else 'NO'} (largest difference {worst:.1e})", flush=True)
    return ok, n_peak


def scale(big: int, dim: int, seed: int, reference_rows: int) -> None:
    """Blocked only, on `big` embeddings: value, time and traced peak of each metric, and peak RSS."""
    emb = clustered_embeddings(big, dim, seed + 2)
    ref = clustered_embeddings(reference_rows, dim, seed + 3)
    print(f"scale: {big} x {dim} embeddings ({emb.nbytes / MiB:.0f} MiB) + {reference_rows} reference rows, "
          f"blocked only, in a fresh process", flush=True)
    for name, fn in [
        ("remote_clique", lambda: remote_clique(emb)),
        ("chamfer", lambda: chamfer(emb)),
        ("similarity_top5", lambda: top_k_similarity(ref, emb, 5)),
    ]:
        holder: list[tuple[float, float]] = []
        mem = traced_peak(lambda: holder.append(timed(fn)))  # one run: time and traced peak
        value, secs = holder[0]
        print(f"  {name:<16} {value:.5f}  {secs:8.2f} s  peak above inputs {mem / MiB:7.1f} MiB", flush=True)
    print(f"  whole process peak RSS (interpreter, numpy, making the inputs, all three): {peak_rss_mib():.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="texts for the blocked-vs-naive comparison (naive needs n^2*4 bytes)")
    parser.add_argument("--big", type=int, default=50_000, help="texts for the blocked-only scale run (0 to skip)")
    parser.add_argument("--reference-rows", type=int, default=5_000, help="reference (real) rows for top-5 in the scale run")
    parser.add_argument("--dim", type=int, default=384, help="embedding dimension (all-MiniLM-L6-v2: 384)")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs per variant in the comparison (the fastest counts)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if os.nice(0) < 10:
        os.nice(10 - os.nice(0))

    if args.scale_only:
        scale(args.big, args.dim, args.seed, args.reference_rows)
        return 0
    ok, naive_peak = compare(args.n, args.dim, args.seed, args.repeat)
    if args.big:
        print()
        child = [sys.executable, __file__, "--scale-only", "--big", str(args.big), "--dim", str(args.dim),
                 "--seed", str(args.seed), "--reference-rows", str(args.reference_rows)]
        subprocess.run(child, check=True)
        extrapolated = naive_peak * (args.big / args.n) ** 2
        print(f"  naive at {args.big}: NOT run. Extrapolated from its measured {naive_peak / MiB:.0f} MiB at "
              f"n={args.n} by ({args.big}/{args.n})^2: {extrapolated / MiB / 1024:.1f} GiB "
              f"(its n x n float32 matrix alone: {args.big ** 2 * 4 / MiB / 1024:.1f} GiB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
