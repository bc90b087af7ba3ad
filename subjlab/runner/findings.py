"""The paper's findings checked against one study run, one line each, by the intervals alone.

A finding's line lists the contrasts it rests on (`report_model.Contrast`, oriented so that the
finding predicts a positive value) and gets a verdict:

- supported     every contrast's 95% interval lies above 0
- contradicted  at least one contrast's interval lies below 0 (the opposite is shown)
- undetermined  otherwise (an interval covers 0), or the run cannot test it (says why)

Point estimates never decide a verdict. The findings (Li et al., 2023):

1. real > few-shot > zero-shot, per task and backbone (Macro-F1; real − few-shot and few-shot −
   zero-shot, both paired over test items);
2. the real − synthetic gap grows with task subjectivity, per backbone and synthetic condition: the
   Spearman ρ between crowd objectivity and the gap is negative (needs a crowd ranking);
3. accuracy rises with the agreement threshold γ, per task, condition and backbone;
4. ... more steeply for models trained on synthetic data (rise of synthetic − rise of real, paired);
5. real data is the most diverse (Remote Clique of real − of each synthetic set);
6. few-shot data is closer to real data than zero-shot (top-5 similarity, paired over real texts).

Many lines are tested at 95% each, without a multiple-comparison correction: about one line in
twenty may be supported or contradicted by chance. The report says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from analysis.intervals import Estimate
from subjlab.runner.report_model import CONDITION_TITLES, Contrast, Finding, StudyReport, Verdict

ORDER = "real > few-shot > zero-shot (Macro-F1)"
SUBJECTIVITY = "the real − synthetic gap grows with task subjectivity"
RISE = "accuracy rises with agreement γ"
STEEPER = "accuracy rises more steeply with γ for synthetic-trained models"
DIVERSE = "real data is the most diverse (Remote Clique)"
CLOSER = "few-shot data is closer to real data than zero-shot (top-5 similarity)"
CLAIMS = (ORDER, SUBJECTIVITY, RISE, STEEPER, DIVERSE, CLOSER)
SYNTHETIC = ("zero_shot", "few_shot")


def verdict(estimates: Sequence[Estimate]) -> Verdict:
    """Return the verdict of contrasts that a finding predicts to be positive (see the module docstring)."""
    if not estimates:
        raise ValueError("a verdict needs at least one estimate")
    if any(e.below(0.0) for e in estimates):
        return "contradicted"
    if all(e.above(0.0) for e in estimates):
        return "supported"
    return "undetermined"


def judge_findings(report: StudyReport) -> list[Finding]:
    """Return one line per finding and scope (task / backbone / condition) that this run can speak to."""
    return (_order(report) + _subjectivity(report) + _gamma(report) + _diversity(report))


def _find(report: StudyReport, kind: str, task: str, backbone: str, a: str, b: str, metric: str) -> Contrast | None:
    return next((c for c in report.contrasts if (c.kind, c.task, c.backbone, c.a, c.b, c.metric)
                 == (kind, task, backbone, a, b, metric)), None)


def _title(cond: str) -> str:
    return CONDITION_TITLES.get(cond, cond)


def points(e: Estimate, scale: float = 100.0, digits: int = 1) -> str:
    """Format an estimate as '+12.3 [8.1, 16.0]' (scaled, e.g. to percentage points)."""
    return f"{e.value * scale:+.{digits}f} [{e.low * scale:.{digits}f}, {e.high * scale:.{digits}f}]"


def _sample(e: Estimate) -> str:
    return f"n = {e.n} test items" + (f", {e.n_seeds} seeds" if e.n_seeds > 1 else "")


def _order(report: StudyReport) -> list[Finding]:
    out = []
    for task in report.tasks:
        for backbone in report.backbones:
            gap = _find(report, "gap", task.name, backbone, "real", "few_shot", "macro_f1")
            order = _find(report, "order", task.name, backbone, "few_shot", "zero_shot", "macro_f1")
            if gap is None or order is None:
                continue
            evidence = (f"real − few-shot {points(gap.estimate)} points; few-shot − zero-shot "
                        f"{points(order.estimate)} points ({_sample(gap.estimate)})")
            out.append(Finding(ORDER, f"{task.name} ({backbone})", verdict([gap.estimate, order.estimate]), evidence))
    return out


def _subjectivity(report: StudyReport) -> list[Finding]:
    if report.crowd is None:
        return [Finding(SUBJECTIVITY, "all tasks", "undetermined",
                        "not testable in this run: no crowd ranking, so task subjectivity is not measured "
                        "(see below)")]
    out = []
    for corr in report.correlations:
        if corr.synthetic not in SYNTHETIC:
            continue
        scope = f"real − {_title(corr.synthetic)} ({corr.backbone})"
        if corr.spearman is None:
            out.append(Finding(SUBJECTIVITY, scope, "undetermined", "no interval for Spearman's ρ (see the notes)"))
            continue
        rho = corr.spearman
        # the finding predicts a negative ρ with objectivity: judge −ρ > 0
        flipped = replace(rho, value=-rho.value, low=-rho.high, high=-rho.low)
        out.append(Finding(SUBJECTIVITY, scope, verdict([flipped]),
                           f"Spearman ρ(objectivity, Macro-F1 gap) = {points(rho, 1.0, 2)} over {rho.n} tasks "
                           "(predicted: ρ < 0; interval from resampling each task's test items)"))
    if not out:
        out.append(Finding(SUBJECTIVITY, "all tasks", "undetermined",
                           "not computed: needs at least 3 tasks with a crowd score, real and synthetic models"))
    return out


def _gamma(report: StudyReport) -> list[Finding]:
    out = []
    for task in sorted({c.task for c in report.curves}):
        for backbone in report.backbones:
            rises = [c for c in report.contrasts if c.kind == "rise" and c.task == task and c.backbone == backbone]
            if not rises:
                if any(c.task == task and c.backbone == backbone for c in report.curves):
                    out.append(Finding(RISE, f"{task} ({backbone})", "undetermined",
                                       "too few test items at high agreement to compare (fewer than 20 above the "
                                       "lowest γ's subset)"))
                continue
            for c in rises:
                out.append(Finding(RISE, f"{task}, {_title(c.a)} ({backbone})", verdict([c.estimate]),
                                   f"accuracy {points(c.estimate)} points from {c.detail}"))
            for c in report.contrasts:
                if c.kind == "steeper" and c.task == task and c.backbone == backbone:
                    out.append(Finding(STEEPER, f"{task}, {_title(c.a)} vs real ({backbone})", verdict([c.estimate]),
                                       f"rise of {_title(c.a)} − rise of real {points(c.estimate)} points ({c.detail})"))
    return out


def _diversity(report: StudyReport) -> list[Finding]:
    out = []
    for task in report.tasks:
        diverse = [c for c in report.contrasts if c.kind == "diversity" and c.task == task.name]
        if diverse:
            evidence = "; ".join(f"real − {_title(c.b)} {points(c.estimate, 1.0, 3)}" for c in diverse)
            out.append(Finding(DIVERSE, task.name, verdict([c.estimate for c in diverse]),
                               f"Remote Clique {evidence} (cosine distance; {diverse[0].estimate.n}+ texts per set)"))
        close = next((c for c in report.contrasts if c.kind == "closeness" and c.task == task.name), None)
        if close is not None:
            out.append(Finding(CLOSER, task.name, verdict([close.estimate]),
                               f"top-5 similarity to the real texts, few-shot − zero-shot {points(close.estimate, 1.0, 3)} "
                               f"(paired over {close.estimate.n} real texts)"))
    return out
