"""Bench: judgments needed to rank tasks to Kendall τ ≥ 0.9, active pair selection vs balanced random.

Simulated crowds (`analysis.simulate`) with known latent objectivity scores drawn from N(0, 1);
30 workers per crowd, 20% of them spammers answering at random, the others Bradley–Terry with a
discrimination drawn from U(0.5, 1.5). Each seed draws new scores and a new crowd; every design
faces the same workers. Judgments come in rounds (a batch of pairs is proposed, all are answered, the
ranking is refitted with `analysis.ranking.fit_scores`); we record the number of judgments after
the first round whose estimate reaches τ ≥ 0.9 against the latent scores (a run that has not
reached it after 400 judgments per task stops there and counts as that many).

Designs:
- balanced: `balanced_random_pairs` (every ordered pair shown equally often), the baseline;
- random: pairs drawn uniformly at random with replacement (a weaker baseline, reported too);
- active: `ActivePairSelector` with its defaults (lapse 0.1, explore 0.1, tolerance 0.25, prior sd
  2; it is not told the true spammer share).

Run: nice python bench/active_selection.py [--seeds 20] [--sizes 10,50]
Prints per size the median and mean judgments over seeds for each design and the ratios
active / balanced random (target ≤ 0.7).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.pair_selection import ActivePairSelector, balanced_random_pairs, shown_counts  # noqa: E402
from analysis.ranking import fit_scores, win_matrix, judgment_indices  # noqa: E402
from analysis.simulate import SimulatedCrowd, latent_scores, random_pairs  # noqa: E402

BATCH = {10: 10, 50: 50}


@dataclass
class Outcome:
    judgments: int
    reached: bool


def judgments_to_reach(n_tasks: int, seed: int, design: str, target: float, cap: int, selector: ActivePairSelector, sd: float = 1.0) -> Outcome:
    """Run one simulated study; return how many judgments the `design` needed to reach τ ≥ target."""
    truth = latent_scores(n_tasks, seed, sd=sd)
    tasks = sorted(truth)
    true_vec = np.array([truth[t] for t in tasks])
    crowd = SimulatedCrowd(truth, seed=10_000 + seed)
    batch = BATCH.get(n_tasks, 10)
    judgments = []
    scores = None
    rng = np.random.default_rng(20_000 + seed)
    while len(judgments) < cap:
        round_seed = int(rng.integers(2**31))
        if design == "active":
            pairs = [(s.left, s.right) for s in selector.suggest(judgments, tasks, batch, round_seed, scores)]
        elif design == "balanced":
            pairs = balanced_random_pairs(tasks, batch, round_seed, shown_counts(judgments))
        else:
            pairs = random_pairs(tasks, batch, round_seed)
        judgments += crowd.judge_pairs(pairs)
        winners, losers = judgment_indices(judgments, tasks)
        scores = fit_scores(win_matrix(winners, losers, n_tasks), initial=scores)
        if kendalltau(true_vec, np.round(scores, 9)).statistic >= target:
            return Outcome(len(judgments), True)
    return Outcome(len(judgments), False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--sizes", default="10,50")
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--designs", default="balanced,active,random")
    ap.add_argument("--lapse", type=float, default=0.1)
    ap.add_argument("--explore", type=float, default=0.1)
    ap.add_argument("--prior-sd", type=float, default=2.0)
    ap.add_argument("--tolerance", type=float, default=0.25)
    ap.add_argument("--sd", type=float, default=1.0, help="sd of the latent scores (spread of the tasks)")
    args = ap.parse_args(argv)
    selector = ActivePairSelector(prior_sd=args.prior_sd, lapse=args.lapse, explore=args.explore, tolerance=args.tolerance)
    designs = args.designs.split(",")
    print(f"target Kendall tau >= {args.target}, {args.seeds} seeds, latent scores N(0, {args.sd:g}^2), 30 workers, 20% spammers")
    for n in (int(s) for s in args.sizes.split(",")):
        cap = 400 * n
        results: dict[str, list[Outcome]] = {d: [] for d in designs}
        started = time.perf_counter()
        for seed in tqdm(range(args.seeds), desc=f"{n} tasks", file=sys.stderr):
            for d in designs:
                results[d].append(judgments_to_reach(n, seed, d, args.target, cap, selector, args.sd))
        took = time.perf_counter() - started
        print(f"\n{n} tasks (batches of {BATCH.get(n, 10)}, cap {cap} judgments; {took:.0f}s)")
        stats = {}
        for d in designs:
            j = np.array([o.judgments for o in results[d]])
            missed = sum(not o.reached for o in results[d])
            stats[d] = (float(np.median(j)), float(np.mean(j)))
            print(f"  {d:9s} median {stats[d][0]:8.0f}  mean {stats[d][1]:8.1f}  not reached {missed}")
            print(f"            per seed: {' '.join(str(x) for x in j)}")
        if "active" in stats and "balanced" in stats:
            med = stats["active"][0] / stats["balanced"][0]
            mean = stats["active"][1] / stats["balanced"][1]
            paired = np.array([a.judgments / b.judgments for a, b in zip(results["active"], results["balanced"])])
            print(f"  ratio active/balanced: median {med:.2f}  mean {mean:.2f}  per-seed geometric mean {np.exp(np.log(paired).mean()):.2f}")
        if "active" in stats and "random" in stats:
            print(f"  ratio active/uniform random: median {stats['active'][0] / stats['random'][0]:.2f}  mean {stats['active'][1] / stats['random'][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
