"""Worker models next to the simple aggregates: crowd-kit's Dawid-Skene and MACE for labels and its noisy
Bradley-Terry for pairs, next to majority vote (labels) and win rates / plain Bradley-Terry (pairs).
crowd-kit 1.4.2's `BradleyTerry` stops after two iterations under its default tolerance, so it runs with
`tol=0`. Shown by the admin quality page (`quality.quality_report`)."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from typing import (
    Any,
    Mapping,
    Sequence,
    Union,
)


from subjlab.records import Judgment, Label

Record = Union[Judgment, Label]

#: Gold items whose key starts with this are attention checks (an obvious answer; any miss counts).


@dataclass(frozen=True)
class LabelAggregation:
    """Consensus labels from majority vote, Dawid-Skene and MACE, with worker skills and comparisons.

    `labels[method][item]`; `skills[method][worker]` (MV: agreement with the majority; DS: prior-weighted
    probability of answering the true class; MACE: probability of not spamming); `accuracy[method]`
    against a truth when one is given; `agreement_with_mv[method]`: share of items where the method
    chose what majority vote chose.
    """

    labels: dict[str, dict[str, str]]
    skills: dict[str, dict[str, float]]
    agreement_with_mv: dict[str, float]
    accuracy: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the comparison as JSON (labels per method omitted; skills rounded)."""
        return {"methods": list(self.labels), "n_items": len(next(iter(self.labels.values()), {})),
                "agreement_with_mv": self.agreement_with_mv, "accuracy": self.accuracy,
                "skills": {m: {w: round(s, 4) for w, s in sk.items()} for m, sk in self.skills.items()}}


def _label_frame(labels: Sequence[Label]):
    import pandas as pd

    if not labels:
        raise ValueError("no labels to aggregate")
    return pd.DataFrame({"task": [l.item for l in labels], "worker": [l.worker for l in labels],
                         "label": [l.label for l in labels]})


def _first_seen_categories(df):
    """The frame with `worker` and `label` as categoricals in order of first appearance.

    crowd-kit 1.4.2's MACE indexes its parameters by first appearance (`pd.factorize`) but builds its
    per-(worker, label) count table with a sorted `groupby(...).unstack()` and reads it by position; when
    the two orders differ the counts land on the wrong workers/labels and the model can collapse to a
    single label. Categoricals whose categories are in first-appearance order make the two orders equal.
    """
    import pandas as pd

    out = df.copy()
    for col in ("worker", "label"):
        values = list(out[col])
        out[col] = pd.Categorical(values, categories=list(dict.fromkeys(values)))
    return out


def compare_label_models(labels: Sequence[Label], truth: Mapping[str, str] | None = None, seed: int = 0,
                         mace_restarts: int = 5, mace_iterations: int = 50) -> LabelAggregation:
    """Aggregate labels with majority vote, Dawid-Skene (EM, at most 100 iterations) and MACE (variational,
    `mace_restarts` x `mace_iterations`, seeded); compare them, and score them against `truth` if given."""
    from crowdkit.aggregation import MACE, DawidSkene, MajorityVote

    df = _label_frame(labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mv = MajorityVote().fit(df)
        ds = DawidSkene(n_iter=100).fit(df)
        mace = MACE(n_restarts=mace_restarts, n_iter=mace_iterations, random_state=seed).fit(_first_seen_categories(df))
    out_labels = {"majority_vote": _series(mv.labels_), "dawid_skene": _series(ds.labels_), "mace": _series(mace.labels_)}
    workers_in_order = list(dict.fromkeys(df["worker"]))
    skills = {
        "majority_vote": {str(w): float(s) for w, s in mv.skills_.items()},
        "dawid_skene": _ds_skills(ds),
        "mace": {str(w): float(mace.spamming_[i, 1]) for i, w in enumerate(workers_in_order)},
    }
    mv_labels = out_labels["majority_vote"]
    agreement = {m: sum(lab.get(i) == l for i, l in mv_labels.items()) / len(mv_labels) for m, lab in out_labels.items()}
    accuracy = None
    if truth is not None:
        items = [i for i in mv_labels if i in truth]
        if not items:
            raise ValueError("the truth mapping shares no item with the labels")
        accuracy = {m: sum(lab[i] == truth[i] for i in items) / len(items) for m, lab in out_labels.items()}
    return LabelAggregation(labels=out_labels, skills=skills, agreement_with_mv=agreement, accuracy=accuracy)


def _series(series) -> dict[str, str]:
    return {str(k): str(v) for k, v in series.items()}


def _ds_skills(ds) -> dict[str, float]:
    errors, priors = ds.errors_, ds.priors_
    out: dict[str, float] = {}
    for worker in errors.index.get_level_values(0).unique():
        m = errors.loc[worker]
        out[str(worker)] = float(sum(priors[k] * m.loc[k, k] for k in priors.index if k in m.index and k in m.columns))
    return out


@dataclass(frozen=True)
class PairAggregation:
    """Task scores from win rates (majority), plain Bradley-Terry and noisy Bradley-Terry (crowd-kit),
    the noisy model's worker skills, and Spearman correlations of each ranking with the win rates."""

    scores: dict[str, dict[str, float]]
    skills: dict[str, float]
    spearman_with_win_rate: dict[str, float | None]

    def ranking(self, method: str) -> list[str]:
        """Tasks from most to least objective under `method`."""
        return sorted(self.scores[method], key=lambda t: -self.scores[method][t])

    def to_json(self) -> dict[str, Any]:
        """Return the comparison as JSON."""
        return {"methods": list(self.scores), "scores": self.scores, "skills": self.skills,
                "spearman_with_win_rate": self.spearman_with_win_rate}


def compare_pair_models(judgments: Sequence[Judgment], seed: int = 0) -> PairAggregation:
    """Score tasks from judgments with win rates, Bradley-Terry (tol=0) and noisy Bradley-Terry."""
    import pandas as pd
    from crowdkit.aggregation import BradleyTerry, NoisyBradleyTerry
    from scipy.stats import spearmanr

    if not judgments:
        raise ValueError("no judgments to aggregate")
    df = pd.DataFrame({"worker": [j.worker for j in judgments], "left": [j.left for j in judgments],
                       "right": [j.right for j in judgments], "label": [j.winner for j in judgments]})
    wins: Counter[str] = Counter(j.winner for j in judgments)
    seen: Counter[str] = Counter()
    for j in judgments:
        seen.update((j.left, j.right))
    win_rate = {t: wins.get(t, 0) / n for t, n in seen.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = BradleyTerry(n_iter=200, tol=0).fit(df)
        noisy = NoisyBradleyTerry(n_iter=200, random_state=seed).fit(df)
    scores = {"win_rate": win_rate, "bradley_terry": {str(k): float(v) for k, v in bt.scores_.items()},
              "noisy_bradley_terry": {str(k): float(v) for k, v in noisy.scores_.items()}}
    tasks = sorted(win_rate)
    spearman: dict[str, float | None] = {}
    for method, sc in scores.items():
        a = [win_rate[t] for t in tasks]
        b = [sc.get(t, 0.0) for t in tasks]
        if len(tasks) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
            spearman[method] = None
        else:
            spearman[method] = float(spearmanr(a, b).statistic)
    return PairAggregation(scores=scores, skills={str(k): float(v) for k, v in noisy.skills_.items()},
                           spearman_with_win_rate=spearman)
