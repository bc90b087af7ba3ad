"""What the admin study page shows about data quality, built on `annotation_server.quality`.

- `exclusion_overview(db, study)` (cheap: a few queries, no model fitting): every worker's quality figures,
  the workers the exclusion rules flag with their reasons, and what `--exclude-flagged` leaves out.
- `compare_models(db, study)` (slow: fits Dawid-Skene and MACE, seconds on a real study): the
  worker-quality models next to majority vote, with how often each agrees with the reference
  aggregation and how well each does on the study's gold items.

Labeling studies: majority vote (all workers; the reference), majority vote without the flagged workers,
Dawid-Skene and MACE (crowd-kit, via `crowd_models.compare_label_models`). The workers' answers to gold items
are aggregated together with the data (as item "#gold <key>", never a valid data item id), so every
method gives each answered gold item a label: accuracy on gold = share of answered gold items whose
aggregated label is the known answer. Agreement with majority vote = share of data items (gold left
out) where the method chose majority vote's label.

Pairwise studies: Bradley-Terry fitted with choix (`analysis.ranking.BradleyTerryRanker`, the ranking of
the dashboard and of `subjlab rank`; the reference), the same without the flagged workers, win rate,
crowd-kit's Bradley-Terry (tol=0) and noisy Bradley-Terry (with a skill per worker). Gold pairs are
left out of the fits (they are the check): accuracy on gold = share of the study's gold pairs whose
known answer has the higher score (a tie counts as a miss). Agreement = Spearman correlation of the
task scores with the reference's.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from annotation_server import crowd_models, quality
from annotation_server.export import export_records
from annotation_server.models import LABELING, GoldAnswer, GoldItem, StudyTask, Worker
from annotation_server.studies import get_study
from subjlab.records import Judgment, Label

#: Item id under which a gold item's answers are aggregated (a data item id never starts with "#").
GOLD_PREFIX = "#gold "


# ------------------------------------------------------------------------------------ exclusion overview
@dataclass(frozen=True)
class ExclusionOverview:
    """Per-worker quality, the flagged workers and the exclusion report of one study (default rules
    unless others are given), plus `n_gold_answers` (answers to gold items, all workers)."""

    study: str
    kind: str
    workers: tuple[quality.WorkerQuality, ...]
    flagged: tuple[quality.FlaggedWorker, ...]
    report: quality.ExclusionReport
    n_gold_answers: int

    @property
    def fingerprint(self) -> tuple[int, int]:
        """(data answers, gold answers): changes whenever a worker answers anything (answers are never deleted)."""
        return self.report.n_records, self.n_gold_answers

    def flagged_rows(self) -> list[dict[str, Any]]:
        """One row per flagged worker: worker, records (all excluded), reasons [(code, message)]."""
        units = {q.worker: q.units for q in self.workers}
        return [{"worker": f.worker, "records": units.get(f.worker, 0),
                 "reasons": [(r.code, r.message) for r in f.reasons]} for f in self.flagged]


def exclusion_overview(db: Session, study_name: str, rules: quality.ExclusionRules | None = None,
                       worker_rows: Sequence[dict[str, Any]] | None = None) -> ExclusionOverview:
    """Return the study's ExclusionOverview (no model is fitted; 404 ApiError for an unknown study).

    `worker_rows`: the study's `reports.workers(...)["workers"]` if the caller has them already (for the
    median seconds per unit); read here otherwise.
    """
    study = get_study(db, study_name)
    what = "labels" if study.kind == LABELING else "judgments"
    records = export_records(db, study.name, what)
    gold = quality.gold_results(db, study.name)
    if worker_rows is None:
        from annotation_server.reports import workers as worker_table

        worker_rows = worker_table(db, study.name)["workers"]
    seconds = {row["worker_id"]: row.get("median_seconds") for row in worker_rows}
    workers = quality.summarize_workers(records, gold, seconds)
    flagged = quality.flag_workers(workers, rules)
    _, report = quality.exclude_records(records, flagged, study.name, study.kind)
    return ExclusionOverview(study=study.name, kind=study.kind, workers=tuple(workers), flagged=tuple(flagged),
                             report=report, n_gold_answers=len(gold))


def describe_rules(rules: quality.ExclusionRules | None = None) -> list[str]:
    """Return the exclusion rules in words, one line per rule in force."""
    r = rules or quality.ExclusionRules()
    out = [f"more than {r.max_failed_attention} failed attention check(s)"]
    if r.min_gold_accuracy is not None:
        out.append(f"gold accuracy below {r.min_gold_accuracy:.2f} once {r.min_gold_answered} gold items were answered")
    if r.min_median_seconds is not None:
        out.append(f"median time per unit below {r.min_median_seconds:.1f} s")
    if r.min_agreement is not None:
        out.append(f"agreement with the majority of the others below {r.min_agreement:.2f} "
                   f"over at least {r.min_agreement_units} units")
    return out


# ------------------------------------------------------------------------------------ model comparison
@dataclass(frozen=True)
class MethodResult:
    """One aggregation method: its agreement with the reference method and its record on gold."""

    method: str
    name: str
    agreement: float | None
    gold_correct: int
    gold_n: int

    @property
    def gold_accuracy(self) -> float | None:
        """Share of gold items (labels) or gold pairs (pairwise) the method gets right; None without gold."""
        return self.gold_correct / self.gold_n if self.gold_n else None

    def to_json(self) -> dict[str, Any]:
        """Return the row as JSON."""
        return {"method": self.method, "name": self.name, "agreement": self.agreement,
                "gold_correct": self.gold_correct, "gold_n": self.gold_n, "gold_accuracy": self.gold_accuracy}


@dataclass(frozen=True)
class ModelComparison:
    """The methods compared on one study: `methods` (the reference first), what `agreement` measures,
    `skills[method][worker]`, the number of units aggregated and of gold items/pairs checked."""

    study: str
    kind: str
    agreement_measure: str
    methods: tuple[MethodResult, ...]
    skills: dict[str, dict[str, float]]
    skill_names: dict[str, str]
    n_units: int
    n_gold: int
    flagged: tuple[str, ...]

    def worker_rows(self) -> list[dict[str, Any]]:
        """One row per worker: worker, flagged (bool), skills {method: value or None}."""
        workers = sorted({w for sk in self.skills.values() for w in sk})
        return [{"worker": w, "flagged": w in self.flagged,
                 "skills": {m: self.skills[m].get(w) for m in self.skills}} for w in workers]

    def to_json(self) -> dict[str, Any]:
        """Return the comparison as JSON."""
        return {"study": self.study, "kind": self.kind, "agreement_measure": self.agreement_measure,
                "methods": [m.to_json() for m in self.methods], "skills": self.skills, "n_units": self.n_units,
                "n_gold": self.n_gold, "flagged": list(self.flagged)}


def gold_label_answers(db: Session, study_name: str) -> tuple[list[Label], dict[str, str]]:
    """Return the workers' answers to a labeling study's gold items as Labels (item "#gold <key>") and
    the known answers {item: label} of the gold items that were answered."""
    study = get_study(db, study_name)
    rows = db.execute(
        select(GoldItem.key, GoldItem.answer, Worker.external_id, GoldAnswer.answer)
        .join(GoldItem, GoldItem.id == GoldAnswer.gold_id)
        .join(Worker, Worker.id == GoldAnswer.worker_id)
        .where(GoldAnswer.study_id == study.id)
        .order_by(GoldAnswer.id)
    ).all()
    labels = [Label(item=GOLD_PREFIX + key, worker=worker, label=given) for key, _, worker, given in rows]
    truth = {GOLD_PREFIX + key: answer for key, answer, _, _ in rows}
    return labels, truth


def gold_pairs(db: Session, study_name: str) -> list[tuple[str, str, str]]:
    """Return a pairwise study's gold pairs as (left task, right task, known more objective task)."""
    study = get_study(db, study_name)
    left, right = aliased(StudyTask), aliased(StudyTask)
    rows = db.execute(
        select(left.key, right.key, GoldItem.answer)
        .join(left, left.id == GoldItem.left_task_id)
        .join(right, right.id == GoldItem.right_task_id)
        .where(GoldItem.study_id == study.id)
        .order_by(GoldItem.id)
    ).all()
    return [(a, b, answer) for a, b, answer in rows]


@dataclass(frozen=True)
class ModelInputs:
    """What the comparison needs from the database (read it in a session, fit outside it): the study's
    records, the gold answers as Labels with their known answers (labeling) or the gold pairs (pairwise),
    and the flagged workers."""

    study: str
    kind: str
    records: tuple
    gold_labels: tuple[Label, ...]
    truth: dict[str, str]
    gold_pairs: tuple[tuple[str, str, str], ...]
    flagged: frozenset[str]


def model_inputs(db: Session, study_name: str, flagged: Iterable[str] | None = None,
                 rules: quality.ExclusionRules | None = None) -> ModelInputs:
    """Read the ModelInputs of a study; `flagged` workers (default: those `rules` flag) are the ones left
    out by the "flagged workers excluded" methods."""
    study = get_study(db, study_name)
    if flagged is None:
        flagged = [f.worker for f in exclusion_overview(db, study.name, rules).flagged]
    if study.kind == LABELING:
        gold_labels, truth = gold_label_answers(db, study.name)
        return ModelInputs(study.name, study.kind, tuple(export_records(db, study.name, "labels")), tuple(gold_labels),
                           truth, (), frozenset(flagged))
    return ModelInputs(study.name, study.kind, tuple(export_records(db, study.name, "judgments")), (), {},
                       tuple(gold_pairs(db, study.name)), frozenset(flagged))


def compare_inputs(inputs: ModelInputs, mace_restarts: int = 5, mace_iterations: int = 50) -> ModelComparison | None:
    """Compare the aggregation methods (see the module doc); None before there is anything to aggregate
    (no labels, or fewer than two tasks judged)."""
    if inputs.kind == LABELING:
        if not inputs.records:
            return None
        return compare_label_methods(inputs.study, inputs.records, inputs.gold_labels, inputs.truth, inputs.flagged,
                                     mace_restarts, mace_iterations)
    if len({j.left for j in inputs.records} | {j.right for j in inputs.records}) < 2:
        return None
    return compare_pair_methods(inputs.study, inputs.records, inputs.gold_pairs, inputs.flagged)


def compare_models(db: Session, study_name: str, rules: quality.ExclusionRules | None = None,
                   mace_restarts: int = 5, mace_iterations: int = 50) -> ModelComparison | None:
    """`compare_inputs(model_inputs(db, study_name, rules=rules))`: the comparison in one call."""
    return compare_inputs(model_inputs(db, study_name, rules=rules), mace_restarts, mace_iterations)


def compare_label_methods(study: str, labels: Sequence[Label], gold_labels: Sequence[Label], truth: dict[str, str],
                          flagged: frozenset[str] = frozenset(), mace_restarts: int = 5,
                          mace_iterations: int = 50) -> ModelComparison:
    """Majority vote, majority vote without `flagged`, Dawid-Skene and MACE on labels + gold answers."""
    import pandas as pd
    from crowdkit.aggregation import MajorityVote

    everything = list(labels) + list(gold_labels)
    agg = crowd_models.compare_label_models(everything, truth or None, mace_restarts=mace_restarts,
                                       mace_iterations=mace_iterations)
    results = dict(agg.labels)
    kept = [r for r in everything if r.worker not in flagged]
    if kept:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pd.DataFrame({"task": [r.item for r in kept], "worker": [r.worker for r in kept],
                                  "label": [r.label for r in kept]})
            mv_kept = MajorityVote().fit(frame).labels_
        results["majority_vote_kept"] = {str(k): str(v) for k, v in mv_kept.items()}
    else:
        results["majority_vote_kept"] = {}
    names = {"majority_vote": "Majority vote (all workers)",
             "majority_vote_kept": "Majority vote, flagged workers excluded",
             "dawid_skene": "Dawid–Skene (crowd-kit)", "mace": "MACE (crowd-kit)"}
    reference = results["majority_vote"]
    data_items = [i for i in reference if not i.startswith(GOLD_PREFIX)]
    methods = []
    for key in ("majority_vote", "majority_vote_kept", "dawid_skene", "mace"):
        lab = results[key]
        common = [i for i in data_items if i in lab]
        agreement = sum(lab[i] == reference[i] for i in common) / len(common) if common else None
        gold = [i for i in truth if i in lab]
        methods.append(MethodResult(key, names[key], agreement, sum(lab[i] == truth[i] for i in gold), len(gold)))
    skills = {"majority_vote": agg.skills["majority_vote"], "dawid_skene": agg.skills["dawid_skene"],
              "mace": agg.skills["mace"]}
    skill_names = {"majority_vote": "agreement with majority vote", "dawid_skene": "Dawid–Skene: P(correct)",
                   "mace": "MACE: P(not spamming)"}
    return ModelComparison(study=study, kind="labeling", agreement_measure="agreement with majority vote (data items)",
                           methods=tuple(methods), skills=skills, skill_names=skill_names, n_units=len(data_items),
                           n_gold=len(truth), flagged=tuple(sorted(flagged)))


def compare_pair_methods(study: str, judgments: Sequence[Judgment], gold: Sequence[tuple[str, str, str]],
                         flagged: frozenset[str] = frozenset()) -> ModelComparison:
    """Bradley-Terry (choix; with and without `flagged`), win rate, crowd-kit BT and noisy BT on judgments."""
    from scipy.stats import spearmanr

    reference = _choix_scores(judgments)
    kept = [j for j in judgments if j.worker not in flagged]
    agg = crowd_models.compare_pair_models(judgments)
    scores = {"bradley_terry_choix": reference, "bradley_terry_choix_kept": _choix_scores(kept),
              "win_rate": agg.scores["win_rate"], "bradley_terry": agg.scores["bradley_terry"],
              "noisy_bradley_terry": agg.scores["noisy_bradley_terry"]}
    names = {"bradley_terry_choix": "Bradley–Terry (choix; the ranking above)",
             "bradley_terry_choix_kept": "Bradley–Terry (choix), flagged workers excluded",
             "win_rate": "Win rate", "bradley_terry": "Bradley–Terry (crowd-kit, tol=0)",
             "noisy_bradley_terry": "Noisy Bradley–Terry (crowd-kit)"}
    methods = []
    for key, sc in scores.items():
        tasks = sorted(t for t in reference if t in sc)
        a, b = [reference[t] for t in tasks], [sc[t] for t in tasks]
        rho = float(spearmanr(a, b).statistic) if len(tasks) >= 3 and len(set(a)) > 1 and len(set(b)) > 1 else None
        checked = [(left, right, ans) for left, right, ans in gold if left in sc and right in sc]
        correct = sum(sc[ans] > sc[right if ans == left else left] for left, right, ans in checked)
        methods.append(MethodResult(key, names[key], rho, int(correct), len(checked)))
    return ModelComparison(study=study, kind="pairwise",
                           agreement_measure="Spearman correlation of task scores with Bradley–Terry (choix)",
                           methods=tuple(methods), skills={"noisy_bradley_terry": agg.skills},
                           skill_names={"noisy_bradley_terry": "noisy Bradley–Terry skill"},
                           n_units=len(reference), n_gold=len(gold), flagged=tuple(sorted(flagged)))


def _choix_scores(judgments: Sequence[Judgment]) -> dict[str, float]:
    """Bradley-Terry scores from choix (as ranked on the dashboard); {} with fewer than two tasks."""
    from analysis.ranking import BradleyTerryRanker

    if len({j.left for j in judgments} | {j.right for j in judgments}) < 2:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a disconnected graph: scores per component
        return dict(BradleyTerryRanker(n_bootstrap=0).fit(judgments).scores_)
