"""The study report's data model: plain frozen dataclasses that the runner fills and the templates
render (`subjlab.runner.report`). Nothing here computes; `results.json` is this model as JSON.

Scores are fractions in [0, 1] (the templates show percentages); every interval is a percentile
bootstrap interval (`analysis.intervals`) at `level`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # annotations only: importing the model stays cheap (no scipy / choix)
    from analysis.correlation import CorrelationResult
    from analysis.evaluation import GammaScore
    from analysis.intervals import Estimate
    from analysis.ranking import RankedTask

#: Report column order and headers of the training-data conditions.
CONDITION_TITLES: dict[str, str] = {
    "real": "real",
    "zero_shot": "zero-shot",
    "few_shot": "few-shot",
    "small_real_few_shot": "small real + few-shot",
}

Verdict = Literal["supported", "contradicted", "undetermined"]


@dataclass(frozen=True)
class Interval:
    """A confidence interval [low, high] at `level` (0.95 = 95%)."""

    low: float
    high: float
    level: float = 0.95

    @classmethod
    def of(cls, estimate: Estimate | None) -> "Interval | None":
        """Return the interval of an `analysis.intervals.Estimate` (None for None)."""
        return None if estimate is None else cls(estimate.low, estimate.high, estimate.level)


@dataclass(frozen=True)
class TaskInfo:
    """A task of the study: key, title, labels, and the real data sizes used."""

    name: str
    title: str
    labels: tuple[str, ...]
    n_train_real: int
    n_test: int


@dataclass(frozen=True)
class PerformanceCell:
    """One model family's scores on a task's real test split: the mean over `n_seeds` seeds, with a 95%
    interval (bootstrap over the `eval_size` test items, pooled with the spread over seeds)."""

    task: str
    condition: str
    backbone: str
    accuracy: float
    macro_f1: float
    train_size: int
    eval_size: int
    n_seeds: int = 1
    accuracy_interval: Interval | None = None
    macro_f1_interval: Interval | None = None


@dataclass(frozen=True)
class Contrast:
    """A difference between two things measured on the same data, with its bootstrap interval.

    kind: "gap" (score of `a` − score of `b`, paired over test items: real − synthetic),
    "order" (few-shot − zero-shot, paired), "rise" (score of `a` on items with a_i >= the high γ minus
    on items with a_i >= the low γ), "steeper" (rise of `a` − rise of `b`, paired), "diversity"
    (Remote Clique of `a` − of `b`, independent sets), "closeness" (top-5 similarity to the real set of
    `a` − of `b`, paired over real texts). `metric` names what is compared; `detail` says on what.
    """

    kind: str
    task: str
    backbone: str
    metric: str
    a: str
    b: str
    estimate: Estimate
    detail: str = ""


@dataclass(frozen=True)
class DiversityRow:
    """Diversity of one training set (cosine distance) and its top-5 similarity to the real one."""

    task: str
    condition: str
    n: int
    remote_clique: float
    chamfer: float
    similarity_top5: float | None
    remote_clique_interval: Interval | None = None
    similarity_interval: Interval | None = None


@dataclass(frozen=True)
class GammaBand:
    """The intervals of one γ point (None where no item reaches γ)."""

    gamma: float
    accuracy: Interval | None
    macro_f1: Interval | None


@dataclass(frozen=True)
class GammaCurve:
    """Stratified scores of one model family on one task, one point per γ, with their bands."""

    task: str
    condition: str
    backbone: str
    scores: tuple[GammaScore, ...]
    agreement_source: str = ""
    bands: tuple[GammaBand, ...] = ()


@dataclass(frozen=True)
class Ranking:
    """A ranking fitted from one judgments file; `source` says whose judgments (crowd or llm:<model>)."""

    source: str
    path: str
    n_judgments: int
    tasks: tuple[RankedTask, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class GapCorrelation:
    """Correlation of crowd objectivity with one real − synthetic gap (e.g. Macro-F1, zero-shot);
    `spearman` carries ρ with an interval from the per-task gaps' bootstrap replicates."""

    label: str
    backbone: str
    metric: str
    synthetic: str
    result: CorrelationResult
    spearman: Estimate | None = None


@dataclass(frozen=True)
class RankingComparison:
    """Kendall τ between an LLM's ranking and the crowd's over their common tasks."""

    llm_source: str
    n_tasks: int
    kendall_tau: float
    kendall_p: float


@dataclass(frozen=True)
class Finding:
    """One of the paper's findings checked against this run: the claim, where (task / backbone), the
    verdict the intervals give, and the evidence in words."""

    claim: str
    scope: str
    verdict: Verdict
    evidence: str


@dataclass(frozen=True)
class StepTiming:
    """One step of the run: its name, whether it ran or came from the cache, its wall time and the
    CPU time of the run's process meanwhile (for a cached step, the times of the run that made it;
    0.0 CPU for steps logged before CPU time was recorded)."""

    name: str
    status: str
    seconds: float
    cpu_seconds: float = 0.0


@dataclass(frozen=True)
class Provenance:
    """Where the numbers come from: config, models, backends, seeds, versions, timings."""

    study: str
    config_path: str
    started_at: str
    wall_seconds: float
    generation_backend: str
    generation_model: str
    backbones: tuple[str, ...]
    seeds: tuple[int, ...]
    data_dir: str
    packages: dict[str, str]
    steps: tuple[StepTiming, ...]
    platform: str = ""
    #: synthetic training sets per task and mode: 1, or one per training seed ([generation] set_per_seed)
    synthetic_sets: int = 1


@dataclass(frozen=True)
class Intervals:
    """How the report's intervals were made: resamples, level and the bootstrap's random seed."""

    n_resamples: int = 2000
    level: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class StudyReport:
    """Everything the report shows. Optional parts (crowd ranking, LLM ranking, curves) may be empty."""

    title: str
    tasks: tuple[TaskInfo, ...]
    conditions: tuple[str, ...]
    backbones: tuple[str, ...]
    performance: tuple[PerformanceCell, ...]
    diversity: tuple[DiversityRow, ...]
    curves: tuple[GammaCurve, ...]
    provenance: Provenance
    crowd: Ranking | None = None
    llm: tuple[Ranking, ...] = ()
    correlations: tuple[GapCorrelation, ...] = ()
    comparisons: tuple[RankingComparison, ...] = ()
    notes: tuple[str, ...] = ()
    contrasts: tuple[Contrast, ...] = ()
    findings: tuple[Finding, ...] = ()
    intervals: Intervals = field(default_factory=Intervals)


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by `write_report`."""

    html: Path
    markdown: Path
    plots: dict[str, Path] = field(default_factory=dict)
