"""The verdicts on the paper's findings: decided by the intervals only, one line per scope.

The reports here hold hand-written TEST contrasts; they stand for no real study.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from analysis.correlation import correlate
from analysis.evaluation import GammaScore
from analysis.intervals import Estimate
from analysis.ranking import RankedTask
from subjlab.runner.findings import CLOSER, DIVERSE, ORDER, RISE, STEEPER, SUBJECTIVITY, judge_findings, verdict
from subjlab.runner.report_model import (
    Contrast,
    GammaCurve,
    GapCorrelation,
    Provenance,
    Ranking,
    StudyReport,
    TaskInfo,
)


def est(low: float, high: float, value: float | None = None, n: int = 100) -> Estimate:
    return Estimate(value=(low + high) / 2 if value is None else value, low=low, high=high, n=n)


def test_verdict_needs_every_interval_above_zero_and_one_below_contradicts():
    assert verdict([est(0.01, 0.2), est(0.3, 0.5)]) == "supported"
    assert verdict([est(0.01, 0.2), est(-0.1, 0.5)]) == "undetermined"
    assert verdict([est(0.01, 0.2), est(-0.5, -0.1)]) == "contradicted"
    # a large point estimate with an interval across 0 decides nothing
    assert verdict([est(-0.01, 0.6, value=0.4)]) == "undetermined"
    assert verdict([est(0.0, 0.2)]) == "undetermined"  # touching 0 is not above it
    with pytest.raises(ValueError):
        verdict([])


def report(contrasts=(), crowd=None, correlations=(), curves=()) -> StudyReport:
    provenance = Provenance(study="t", config_path="t.toml", started_at="", wall_seconds=0.0, generation_backend="local",
                            generation_model="m", backbones=("minilm",), seeds=(1,), data_dir="", packages={}, steps=())
    return StudyReport(title="t", tasks=(TaskInfo("a", "A", ("x", "y"), 10, 10), TaskInfo("b", "B", ("x", "y"), 10, 10)),
                       conditions=("real", "zero_shot", "few_shot"), backbones=("minilm",), performance=(), diversity=(),
                       curves=tuple(curves), provenance=provenance, crowd=crowd, correlations=tuple(correlations),
                       contrasts=tuple(contrasts))


def test_each_finding_gets_a_line_per_scope_with_its_evidence():
    curve = GammaCurve("a", "real", "minilm", (GammaScore(0.5, 10, 0.5, 0.5),))
    contrasts = [
        Contrast("gap", "a", "minilm", "macro_f1", "real", "few_shot", est(0.1, 0.3)),
        Contrast("order", "a", "minilm", "macro_f1", "few_shot", "zero_shot", est(0.02, 0.08)),
        Contrast("gap", "b", "minilm", "macro_f1", "real", "few_shot", est(-0.3, -0.1)),  # few-shot beats real on b
        Contrast("order", "b", "minilm", "macro_f1", "few_shot", "zero_shot", est(0.02, 0.08)),
        Contrast("rise", "a", "minilm", "accuracy", "real", "", est(0.05, 0.2), "γ 0.5 (n=10) → γ 1 (n=5)"),
        Contrast("rise", "a", "minilm", "accuracy", "zero_shot", "", est(-0.05, 0.2), "γ 0.5 (n=10) → γ 1 (n=5)"),
        Contrast("steeper", "a", "minilm", "accuracy", "zero_shot", "real", est(-0.2, -0.01), "γ 0.5 → γ 1"),
        Contrast("diversity", "a", "", "remote_clique", "real", "zero_shot", est(0.1, 0.2)),
        Contrast("diversity", "a", "", "remote_clique", "real", "few_shot", est(0.05, 0.1)),
        Contrast("closeness", "b", "", "similarity_top5", "few_shot", "zero_shot", est(-0.05, -0.01)),
    ]
    lines = {(f.claim, f.scope): f for f in judge_findings(report(contrasts, curves=[curve]))}
    assert lines[(ORDER, "a (minilm)")].verdict == "supported"
    assert lines[(ORDER, "b (minilm)")].verdict == "contradicted"
    assert "real − few-shot -20.0 [-30.0, -10.0] points" in lines[(ORDER, "b (minilm)")].evidence
    assert lines[(RISE, "a, real (minilm)")].verdict == "supported"
    assert lines[(RISE, "a, zero-shot (minilm)")].verdict == "undetermined"
    assert lines[(STEEPER, "a, zero-shot vs real (minilm)")].verdict == "contradicted"
    assert lines[(DIVERSE, "a")].verdict == "supported" and "real − few-shot +0.075 [0.050, 0.100]" in lines[(DIVERSE, "a")].evidence
    assert lines[(CLOSER, "b")].verdict == "contradicted"
    assert lines[(SUBJECTIVITY, "all tasks")].verdict == "undetermined"
    assert (DIVERSE, "b") not in lines and (CLOSER, "a") not in lines  # nothing measured there, no line


def test_subjectivity_is_judged_on_the_interval_of_spearman_rho_with_crowd_objectivity():
    crowd = Ranking("crowd", "j.jsonl", 30, tuple(RankedTask(t, s, None, None, rank=i + 1, n=10) for i, (t, s) in
                                                  enumerate([("a", 2.0), ("b", 1.0), ("c", 0.0)])))
    result = correlate({"a": 2.0, "b": 1.0, "c": 0.0}, {"a": 0.1, "b": 0.2, "c": 0.3}, orientation="objectivity")
    negative = GapCorrelation("zero", "minilm", "macro_f1", "zero_shot", result, Estimate(-1.0, -1.0, -0.5, 3))
    straddling = GapCorrelation("few", "minilm", "macro_f1", "few_shot", result, Estimate(-1.0, -1.0, 0.5, 3))
    mixed = GapCorrelation("mix", "minilm", "macro_f1", "small_real_few_shot", result, Estimate(0.5, 0.2, 0.9, 3))
    missing = replace(straddling, synthetic="zero_shot", spearman=None)
    lines = [f for f in judge_findings(report(crowd=crowd, correlations=[negative, straddling, mixed, missing]))
             if f.claim == SUBJECTIVITY]
    assert [(f.scope, f.verdict) for f in lines] == [
        ("real − zero-shot (minilm)", "supported"), ("real − few-shot (minilm)", "undetermined"),
        ("real − zero-shot (minilm)", "undetermined")]  # the small-real mix is not a synthetic-only condition
    assert "-1.00 [-1.00, -0.50] over 3 tasks" in lines[0].evidence
    positive = replace(negative, spearman=Estimate(0.8, 0.4, 1.0, 3))
    assert [f.verdict for f in judge_findings(report(crowd=crowd, correlations=[positive])) if f.claim == SUBJECTIVITY] \
        == ["contradicted"]
    none = [f for f in judge_findings(report(crowd=crowd)) if f.claim == SUBJECTIVITY]
    assert [(f.verdict, f.evidence.startswith("not computed")) for f in none] == [("undetermined", True)]
