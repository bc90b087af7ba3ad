"""Bench: judgments needed to rank tasks to Kendall τ ≥ 0.9, active pair selection vs balanced random,
and when the stopping rule says the ranking is settled.

Simulated crowds (`analysis.simulate`) with known latent objectivity scores drawn from N(0, 1);
30 workers per crowd, 20% of them spammers answering at random, the others Bradley–Terry with a
discrimination drawn from U(0.5, 1.5), and every worker leaning to the task shown on the left
(position bias: a logit of +0.3, 57% left on a coin-flip pair). Each seed draws new scores and a new
crowd; every design faces the same workers. Judgments come in rounds (a batch of pairs is proposed,
all are answered, the ranking is refitted with `analysis.ranking.fit_scores`).

Per run we record
- reach: the judgments after the first round whose estimate reaches τ ≥ 0.9 against the latent
  scores (a run that has not reached it after 400 judgments per task counts as that many);
- stop: the judgments after the first round where the stopping rule (`analysis.stopping`:
  P(τ ≥ 0.9 to the settled order) ≥ --stop-at, default 0.9) fires, and the true τ then; "early"
  counts the runs where it fired with the true τ still below 0.9 (the rule promises at most about
  1 − stop-at of them);
- at the paper's fixed budget (540 judgments over 10 tasks, 12 per pair; 10-task runs only): the
  true τ and the rule's P(τ ≥ 0.9).

Designs:
- balanced: `balanced_random_pairs` (every ordered pair shown equally often), the baseline;
- random: pairs drawn uniformly at random with replacement (a weaker baseline);
- active: `ActivePairSelector` with its defaults (it is not told the spammer share or the bias).

Run: nice python bench/active_selection.py [--seeds 20] [--sizes 10,50]
Prints per size and design the median and mean judgments to reach τ ≥ 0.9 and to the rule's stop,
the ratios active / balanced random (targets: mean ≤ 0.7 at 10 tasks, median ≤ 0.5 at 50), and the
fixed-budget figures.

`--calibration` instead checks the stopping rule's probability against the latent order: many
studies of balanced judgments (300 to 4,000 for 10 tasks; 3,000 to 20,000 for 50), and per band of
p_settled the share of studies whose estimated order is actually within τ ≥ 0.9 (docs/rank.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.stats import kendalltau
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.pair_selection import ActivePairSelector, balanced_random_pairs, shown_counts  # noqa: E402
from analysis.ranking import fit_scores, judgment_indices, win_matrix  # noqa: E402
from analysis.simulate import SimulatedCrowd, latent_scores, random_pairs  # noqa: E402
from analysis.stopping import StoppingRule  # noqa: E402

BATCH = {10: 10, 50: 50}
PAPER_JUDGMENTS_PER_PAIR = 12  # the paper: about 540 judgments over the 45 pairs of 10 tasks

def paper_budget(n_tasks: int) -> int:
    """The paper's fixed design, 12 judgments per pair of its 10 tasks (540); 0 for other sizes."""
    return PAPER_JUDGMENTS_PER_PAIR * 45 if n_tasks == 10 else 0


#: propose(judgments, tasks, k, seed, scores) -> k ordered pairs to show next
Proposer = Callable[[list, list, int, int, "np.ndarray | None"], list]


@dataclass
class Trace:
    """One simulated study: when it reached the target, when the stopping rule fired, the fixed budget."""

    reach: int
    reached: bool
    stop: int | None
    tau_at_stop: float | None
    tau_at_budget: float
    p_at_budget: float
    total: int  # judgments when the run ended (the cap when the rule never fired)


def proposers(selector: ActivePairSelector) -> dict[str, Proposer]:
    """The designs the bench compares, by name."""
    return {
        "balanced": lambda js, tasks, k, seed, scores: balanced_random_pairs(tasks, k, seed, shown_counts(js)),
        "random": lambda js, tasks, k, seed, scores: random_pairs(tasks, k, seed),
        "active": lambda js, tasks, k, seed, scores: [(s.left, s.right) for s in selector.suggest(js, tasks, k, seed, scores)],
    }


def run_study(n_tasks: int, seed: int, propose: Proposer, rule: StoppingRule, target: float = 0.9,
              position_bias: float = 0.3, sd: float = 1.0, cap_per_task: int = 400) -> Trace:
    """Run one simulated study with the design `propose` until it has reached τ ≥ `target`, the
    stopping rule has fired and the paper's budget is spent (or 400 judgments per task)."""
    truth = latent_scores(n_tasks, seed, sd=sd)
    tasks = sorted(truth)
    true_vec = np.array([truth[t] for t in tasks])
    crowd = SimulatedCrowd(truth, seed=10_000 + seed, position_bias=position_bias)
    batch = BATCH.get(n_tasks, 10)
    budget = paper_budget(n_tasks)
    cap = cap_per_task * n_tasks
    rng = np.random.default_rng(20_000 + seed)
    judgments: list = []
    scores = None
    reach = stop = tau_at_stop = tau_at_budget = p_at_budget = None
    while len(judgments) < cap and (reach is None or stop is None or (budget and tau_at_budget is None)):
        judgments += crowd.judge_pairs(propose(judgments, tasks, batch, int(rng.integers(2**31)), scores))
        winners, losers = judgment_indices(judgments, tasks)
        wins = win_matrix(winners, losers, n_tasks)
        scores = fit_scores(wins, initial=scores)
        tau = float(kendalltau(true_vec, np.round(scores, 9)).statistic)
        if reach is None and tau >= target:
            reach = len(judgments)
        if stop is None or (budget and tau_at_budget is None):
            rule.fit_arrays(tasks, scores, wins)
            if stop is None and rule.can_stop_:
                stop, tau_at_stop = len(judgments), tau
            if budget and tau_at_budget is None and len(judgments) >= budget:
                tau_at_budget, p_at_budget = tau, rule.p_settled_
    return Trace(reach or len(judgments), reach is not None, stop, tau_at_stop,
                 tau_at_budget if tau_at_budget is not None else float("nan"),
                 p_at_budget if p_at_budget is not None else float("nan"), len(judgments))


def _summary(traces: list[Trace]) -> dict[str, float]:
    """Medians and means over seeds; a run whose rule never fired counts with all its judgments."""
    reach = np.array([t.reach for t in traces], dtype=float)
    stops = np.array([t.stop if t.stop is not None else t.total for t in traces], dtype=float)
    fired = [t for t in traces if t.stop is not None]
    return {
        "reach_median": float(np.median(reach)), "reach_mean": float(reach.mean()),
        "missed": sum(not t.reached for t in traces), "fired": len(fired),
        "stop_median": float(np.median(stops)), "stop_mean": float(stops.mean()),
        "early": sum(t.tau_at_stop < 0.9 for t in fired),
        "tau_at_stop": float(np.mean([t.tau_at_stop for t in fired])) if fired else float("nan"),
        "tau_at_budget": float(np.mean([t.tau_at_budget for t in traces])),
        "p_at_budget": float(np.mean([t.p_at_budget for t in traces])),
    }


CALIBRATION_CHECKPOINTS = {10: (300, 800, 1500, 2500, 4000), 50: (3000, 6000, 10000, 15000, 20000)}


def calibration(n_tasks: int, n_studies: int, rule: StoppingRule, position_bias: float = 0.3, sd: float = 1.0) -> None:
    """Print, per band of p_settled, how often the estimated order is within τ* of the latent order."""
    checkpoints = CALIBRATION_CHECKPOINTS.get(n_tasks, tuple(m * n_tasks * (n_tasks - 1) // 90 for m in (300, 800, 1500, 2500, 4000)))
    rows = []
    for seed in tqdm(range(n_studies), desc=f"{n_tasks} tasks", file=sys.stderr):
        truth = latent_scores(n_tasks, seed, sd=sd)
        tasks = sorted(truth)
        true_vec = np.array([truth[t] for t in tasks])
        crowd = SimulatedCrowd(truth, seed=1000 + seed, position_bias=position_bias)
        judgments: list = []
        for m in checkpoints:
            judgments += crowd.judge_pairs(balanced_random_pairs(tasks, m - len(judgments), seed * 7 + m, shown_counts(judgments)))
            wins = win_matrix(*judgment_indices(judgments, tasks), n_tasks)
            rule.fit_arrays(tasks, fit_scores(wins), wins)
            in_order = true_vec[[tasks.index(t) for t in rule.tasks_]]
            wrong = sum(int((in_order[i] < in_order[i + 1:]).sum()) for i in range(n_tasks - 1))
            rows.append((rule.p_settled_, wrong <= rule.allowed_misordered_, rule.expected_misordered_, wrong))
    p, settled, expected, wrong = np.array(rows, dtype=float).T
    print(f"\n{n_tasks} tasks, {n_studies} studies at {', '.join(map(str, checkpoints))} balanced judgments; "
          f"tau* = {rule.tau:g}")
    print("  p_settled   studies  mean p  share within tau*")
    for low, high in [(0, 0.1), (0.1, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.01)]:
        band = (p >= low) & (p < high)
        if band.any():
            print(f"  [{low:.1f}, {min(high, 1):.1f})  {band.sum():7d}  {p[band].mean():6.3f}  {settled[band].mean():6.3f}")
    print(f"  expected misordered pairs {expected.mean():.2f}, actually misordered {wrong.mean():.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--sizes", default="10,50")
    ap.add_argument("--target", type=float, default=0.9, help="Kendall tau to reach (and tau* of the stopping rule)")
    ap.add_argument("--stop-at", type=float, default=0.9, help="the stopping rule's threshold on P(tau >= target)")
    ap.add_argument("--designs", default="balanced,active,random")
    ap.add_argument("--position-bias", type=float, default=0.3, help="logit every worker adds for the left task")
    ap.add_argument("--sd", type=float, default=1.0, help="sd of the latent scores (spread of the tasks)")
    ap.add_argument("--calibration", type=int, default=0, metavar="STUDIES",
                    help="check the stopping rule's calibration on this many studies per size instead")
    args = ap.parse_args(argv)
    if args.calibration:
        rule = StoppingRule(tau=args.target, n_draws=2000)
        for n in (int(s) for s in args.sizes.split(",")):
            calibration(n, args.calibration, rule, args.position_bias, args.sd)
        return 0
    designs = args.designs.split(",")
    table = proposers(ActivePairSelector())
    unknown = [d for d in designs if d not in table]
    if unknown:
        ap.error(f"unknown design(s) {unknown}; choose from {sorted(table)}")
    rule = StoppingRule(tau=args.target, stop_at=args.stop_at, n_draws=2000)
    print(f"target Kendall tau >= {args.target}, {args.seeds} seeds, latent scores N(0, {args.sd:g}^2), 30 workers, "
          f"20% spammers, position bias {args.position_bias:g}; stopping rule P(tau >= {args.target:g}) >= {args.stop_at:g}")
    for n in (int(s) for s in args.sizes.split(",")):
        budget = paper_budget(n)
        results: dict[str, list[Trace]] = {d: [] for d in designs}
        cpu, started = time.process_time(), time.perf_counter()
        for seed in tqdm(range(args.seeds), desc=f"{n} tasks", file=sys.stderr):
            for d in designs:
                results[d].append(run_study(n, seed, table[d], rule, args.target, args.position_bias, args.sd))
        print(f"\n{n} tasks (batches of {BATCH.get(n, 10)}, cap {400 * n} judgments; "
              f"{time.perf_counter() - started:.0f}s wall, {time.process_time() - cpu:.0f}s CPU)")
        stats = {d: _summary(results[d]) for d in designs}
        for d in designs:
            s = stats[d]
            print(f"  {d:9s} reach tau>={args.target:g}: median {s['reach_median']:6.0f} mean {s['reach_mean']:7.1f} "
                  f"(not reached {s['missed']})  |  rule stops: median {s['stop_median']:6.0f} mean {s['stop_mean']:7.1f} "
                  f"(fired {s['fired']}/{args.seeds}, early {s['early']}, mean tau then {s['tau_at_stop']:.3f})"
                  + (f"  |  at {budget}: tau {s['tau_at_budget']:.3f}, P {s['p_at_budget']:.2f}" if budget else ""))
            print(f"            reach per seed: {' '.join(str(t.reach) for t in results[d])}")
            print(f"            stop per seed:  {' '.join(str(t.stop or '-') for t in results[d])}")
        for d in designs:
            if d == "balanced" or "balanced" not in stats:
                continue
            base = stats["balanced"]
            paired = np.array([a.reach / b.reach for a, b in zip(results[d], results["balanced"])])
            print(f"  ratio {d}/balanced, reach: median {stats[d]['reach_median'] / base['reach_median']:.2f}  "
                  f"mean {stats[d]['reach_mean'] / base['reach_mean']:.2f}  per-seed geometric mean "
                  f"{np.exp(np.log(paired).mean()):.2f}; rule's stop: median "
                  f"{stats[d]['stop_median'] / base['stop_median']:.2f}  mean {stats[d]['stop_mean'] / base['stop_mean']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
