"""From a task's finished steps to the report's rows, each number with its interval.

`TaskResults` holds what the steps of one task produced (trained models per condition, backbone and
seed; γ steps; diversity steps; the agreement step). `task_rows` turns it into the report's typed
rows: Table-1 cells (mean over seeds, 95% interval from a bootstrap over the test items pooled with
the spread over seeds), γ curves with bands, and the contrasts the Findings are judged on:

- gap       real − each other condition (Macro-F1 and accuracy), paired over test items
- order     few-shot − zero-shot (Macro-F1), paired
- rise      accuracy on items with a_i >= the highest γ that still holds `MIN_RISE_ITEMS` items (and
            fewer than all) minus accuracy on items with a_i >= the lowest γ; stratified by agreement
- steeper   rise of each synthetic condition − rise of real, paired
- diversity Remote Clique of real − of each synthetic set (independent sets, per-text mean distances)
- closeness top-5 similarity to the real set of few-shot − of zero-shot, paired over real texts

All statistics are `analysis.intervals`; this module only reads step outputs and names things.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from analysis.intervals import (
    EPS,
    Bootstrap,
    difference_bootstrap,
    mean_difference_estimate,
    mean_estimate,
    rise_difference_estimate,
    rise_estimate,
    score_estimate,
)
from subjlab.records import Prediction, read_agreements, read_predictions
from subjlab.runner.report_model import (
    Contrast,
    DiversityRow,
    GammaBand,
    GammaCurve,
    Interval,
    Intervals,
    PerformanceCell,
    TaskInfo,
)
from subjlab.runner.steps import StepResult
from subjlab.runner.task_steps import DIVERSITY_ITEMS, SYNTHETIC
from subjlab.tasks import TaskSpec

#: The high-agreement subset of a "rise" must hold at least this many test items.
MIN_RISE_ITEMS = 20


@dataclass
class TaskResults:
    """What the steps of one task produced: its info, trained models per (condition, backbone) (one
    result per seed), γ steps per (condition, backbone), diversity steps per condition, the agreement
    step, the generation models used and notes about incomplete generation."""

    info: TaskInfo | None = None
    trained: dict[tuple[str, str], list[StepResult]] = field(default_factory=dict)
    stratified: dict[tuple[str, str], StepResult] = field(default_factory=dict)
    diversity: dict[str, StepResult] = field(default_factory=dict)
    agreement: StepResult | None = None
    generation_models: set[str] = field(default_factory=set)
    incomplete: list[str] = field(default_factory=list)


@dataclass
class TaskRows:
    """One task's report rows, plus the bootstrap of each Macro-F1 gap by (backbone, condition) (the
    input of the gap-vs-subjectivity correlation's interval)."""

    performance: list[PerformanceCell] = field(default_factory=list)
    diversity: list[DiversityRow] = field(default_factory=list)
    curves: list[GammaCurve] = field(default_factory=list)
    contrasts: list[Contrast] = field(default_factory=list)
    gap_bootstraps: dict[tuple[str, str], Bootstrap] = field(default_factory=dict)


def task_seed(seed: int, task: str) -> int:
    """A bootstrap seed for `task` derived from the study's `seed` (stable across runs and machines)."""
    return (seed * 1_000_003 + zlib.crc32(task.encode("utf-8"))) % 2**32


def seed_predictions(trained: Sequence[StepResult]) -> list[list[Prediction]]:
    """Return the test predictions of each seed's model."""
    return [read_predictions(r.path("predictions.jsonl")) for r in trained]


def task_rows(task: TaskSpec, results: TaskResults, conditions: Sequence[str], backbones: Sequence[str],
              gammas: Sequence[float], settings: Intervals) -> TaskRows:
    """Return the report rows of one task (see the module docstring); `gammas` is the study's γ grid.

    The bootstrap seed is the study's, mixed with the task's name: tasks get independent resamples (the
    gap-vs-subjectivity interval combines them), the conditions of one task share theirs."""
    settings = replace(settings, seed=task_seed(settings.seed, task.name))
    rows = TaskRows()
    preds = {key: seed_predictions(trained) for key, trained in results.trained.items()}
    for (cond, backbone), per_seed in preds.items():
        rows.performance.append(performance_cell(task, cond, backbone, results.trained[(cond, backbone)], per_seed, settings))
        if (cond, backbone) in results.stratified:
            rows.curves.append(gamma_curve(task, cond, backbone, results.stratified[(cond, backbone)]))
    for cond, res in results.diversity.items():
        rows.diversity.append(diversity_row(task, cond, res, settings))
    for backbone in backbones:
        _score_contrasts(task, backbone, preds, conditions, settings, rows)
        if results.agreement is not None:
            _rise_contrasts(task, backbone, preds, conditions, results.agreement, gammas, settings, rows)
    _diversity_contrasts(task, results.diversity, settings, rows)
    return rows


def performance_cell(task: TaskSpec, cond: str, backbone: str, trained: Sequence[StepResult],
                     per_seed: Sequence[Sequence[Prediction]], settings: Intervals) -> PerformanceCell:
    """Return the Table-1 cell of one condition and backbone: mean over seeds and 95% intervals."""
    acc = score_estimate(per_seed, "accuracy", settings.n_resamples, settings.seed, settings.level)
    f1 = score_estimate(per_seed, "macro_f1", settings.n_resamples, settings.seed, settings.level)
    meta = trained[0].meta
    return PerformanceCell(
        task=task.name, condition=cond, backbone=backbone, accuracy=acc.value, macro_f1=f1.value,
        train_size=int(meta["train_size"]) + int(meta.get("val_size", 0)), eval_size=acc.n, n_seeds=len(trained),
        accuracy_interval=Interval.of(acc), macro_f1_interval=Interval.of(f1),
    )


def _score_contrasts(task: TaskSpec, backbone: str, preds: dict, conditions: Sequence[str], settings: Intervals,
                     rows: TaskRows) -> None:
    def diff(a: str, b: str, metric: str) -> Bootstrap:
        return difference_bootstrap(preds[(a, backbone)], preds[(b, backbone)], metric,  # type: ignore[arg-type]
                                    settings.n_resamples, settings.seed)

    if ("real", backbone) in preds:
        for cond in [c for c in conditions if c != "real" and (c, backbone) in preds]:
            for metric in ("macro_f1", "accuracy"):
                boot = diff("real", cond, metric)
                rows.contrasts.append(Contrast("gap", task.name, backbone, metric, "real", cond, boot.estimate(settings.level)))
                if metric == "macro_f1":
                    rows.gap_bootstraps[(backbone, cond)] = boot
    if ("few_shot", backbone) in preds and ("zero_shot", backbone) in preds:
        rows.contrasts.append(Contrast("order", task.name, backbone, "macro_f1", "few_shot", "zero_shot",
                                       diff("few_shot", "zero_shot", "macro_f1").estimate(settings.level)))


def rise_gammas(agreements: dict[str, float], items: Sequence[str], gammas: Sequence[float]) -> tuple[float, float] | None:
    """Return (lowest γ, the highest γ whose subset of `items` holds >= MIN_RISE_ITEMS items and fewer than
    the lowest γ's subset), or None when no γ qualifies."""
    low = min(gammas)
    n_low = sum(agreements[i] >= low - EPS for i in items)
    fit = [g for g in gammas if g > low and MIN_RISE_ITEMS <= sum(agreements[i] >= g - EPS for i in items) < n_low]
    return (low, max(fit)) if fit else None


def _rise_contrasts(task: TaskSpec, backbone: str, preds: dict, conditions: Sequence[str], agreement: StepResult,
                    gammas: Sequence[float], settings: Intervals, rows: TaskRows) -> None:
    amap = {a.item: a.agreement for a in read_agreements(agreement.path("agreement.jsonl"))}
    ran = [c for c in conditions if (c, backbone) in preds]
    if not ran:
        return
    items = [p.id for p in preds[(ran[0], backbone)][0] if p.id in amap]
    pair = rise_gammas(amap, items, gammas)
    if pair is None:
        return
    low, high = pair
    covered = {c: [[p for p in run if p.id in amap] for run in preds[(c, backbone)]] for c in ran}
    for cond in ran:
        rise = rise_estimate(covered[cond], amap, low, high, "accuracy", settings.n_resamples, settings.seed, settings.level)
        detail = f"γ {low:g} (n={rise.n_low}) → γ {high:g} (n={rise.n_high})"
        rows.contrasts.append(Contrast("rise", task.name, backbone, "accuracy", cond, "", rise.estimate, detail))
    if "real" in covered:
        for cond in [c for c in SYNTHETIC if c in covered]:
            est = rise_difference_estimate(covered[cond], covered["real"], amap, low, high, "accuracy",
                                           settings.n_resamples, settings.seed, settings.level)
            rows.contrasts.append(Contrast("steeper", task.name, backbone, "accuracy", cond, "real", est,
                                           f"γ {low:g} → γ {high:g}"))


def _diversity_contrasts(task: TaskSpec, steps: dict[str, StepResult], settings: Intervals, rows: TaskRows) -> None:
    items = {cond: diversity_items(res) for cond, res in steps.items()}
    if "real" in items:
        for cond in [c for c in SYNTHETIC if c in items]:
            est = mean_difference_estimate(items["real"]["remote_clique"], items[cond]["remote_clique"], paired=False,
                                           n_resamples=settings.n_resamples, seed=settings.seed, level=settings.level)
            rows.contrasts.append(Contrast("diversity", task.name, "", "remote_clique", "real", cond, est))
    if all(c in items and items[c].get("similarity_top5") for c in SYNTHETIC):
        est = mean_difference_estimate(items["few_shot"]["similarity_top5"], items["zero_shot"]["similarity_top5"],
                                       paired=True, n_resamples=settings.n_resamples, seed=settings.seed,
                                       level=settings.level)
        rows.contrasts.append(Contrast("closeness", task.name, "", "similarity_top5", "few_shot", "zero_shot", est))


def diversity_items(res: StepResult) -> dict[str, list[float]]:
    """Return the per-text values a diversity step wrote: remote_clique (per text of the set) and,
    for synthetic sets, similarity_top5 (per real text)."""
    return json.loads(res.path(DIVERSITY_ITEMS).read_text(encoding="utf-8"))


def gamma_curve(task: TaskSpec, cond: str, backbone: str, res: StepResult) -> GammaCurve:
    """Return the report's GammaCurve (points and bands) from a finished stratified step."""
    from analysis.evaluation import GammaScore

    points = res.meta["points"]

    def band(p: dict[str, Any], metric: str) -> Interval | None:
        low, high = p.get(f"{metric}_low"), p.get(f"{metric}_high")
        return None if low is None or high is None else Interval(low, high, res.meta.get("level", 0.95))

    return GammaCurve(
        task=task.name, condition=cond, backbone=backbone,
        scores=tuple(GammaScore(gamma=p["gamma"], n=p["n"], accuracy=p["accuracy"], macro_f1=p["macro_f1"]) for p in points),
        agreement_source=res.meta.get("source", ""),
        bands=tuple(GammaBand(p["gamma"], band(p, "accuracy"), band(p, "macro_f1")) for p in points),
    )


def diversity_row(task: TaskSpec, cond: str, res: StepResult, settings: Intervals) -> DiversityRow:
    """Return the report's DiversityRow (with intervals over texts) from a finished diversity step;
    ValueError if diversity is undefined (fewer than 2 texts)."""
    m = res.meta
    if m["remote_clique"] is None or m["chamfer"] is None:
        raise ValueError(f"{res.directory}: diversity is undefined for {m['n']} text(s)")
    items = diversity_items(res)
    rc = mean_estimate(items["remote_clique"], settings.n_resamples, settings.seed, settings.level)
    sim = items.get("similarity_top5")
    sim_interval = Interval.of(mean_estimate(sim, settings.n_resamples, settings.seed, settings.level)) if sim else None
    return DiversityRow(task=task.name, condition=cond, n=int(m["n"]), remote_clique=float(m["remote_clique"]),
                        chamfer=float(m["chamfer"]), similarity_top5=m["similarity_top5"],
                        remote_clique_interval=Interval.of(rc), similarity_interval=sim_interval)


def task_info(task: TaskSpec, n_train: int, n_test: int) -> TaskInfo:
    """Return the report's TaskInfo of a task."""
    return TaskInfo(name=task.name, title=task.title, labels=task.labels, n_train_real=n_train, n_test=n_test)

