"""analysis: the pure algorithms of a subjectivity study, over records (layer 2: imports only the
`subjlab` vocabulary below it; the services and the application import it).

One module per algorithm family, plain functions where there is no state and estimators with
`fit(data)` returning self (fitted state in `scores_` / `labels_`) where there is:

- `ranking`: Bradley–Terry objectivity scores from pairwise judgments (`BradleyTerryRanker`, `fit_scores`).
- `pair_selection`: which task pairs to show next (`ActivePairSelector`, `balanced_random_pairs`, `suggest_pairs`).
- `stopping`: how settled a ranking is, and whether to stop paying for judgments (`StoppingRule`).
- `placement`: placing a new task on an existing scale (`place_task`).
- `agreement`: per-item agreement a_i, Fleiss' kappa, Krippendorff's alpha (`AgreementAnalyzer`, `item_agreement`).
- `data_agreement`: the same from a dataset's own human ratings or agreement levels (`data_agreement.data_agreement`).
- `evaluation`: accuracy and Macro-F1 stratified by agreement γ (`stratified_scores`, `score`).
- `intervals`: bootstrap intervals for scores, paired gaps, γ subsets, pooled over seeds.
- `embeddings`: sentence embeddings with an on-disk cache (`Embedder`, `embed_texts`).
- `diversity`: Remote Clique, Chamfer distance, top-k similarity to real data (`diversity_report`).
- `correlation`: subjectivity vs the real − synthetic gap (`correlate`).
- `simulate`: simulated crowds with known latent scores, for benches and tests (`SimulatedCrowd`).
- `plots`: PNG figures of the above (matplotlib, Agg).

The names below are imported on first use (PEP 562), so `import analysis` stays cheap: numpy, scipy,
torch and matplotlib load only with the module that needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it (never a module's own name: importing the module would
#: replace the attribute)
_PUBLIC = {
    "BradleyTerryRanker": "ranking", "RankedTask": "ranking", "fit_scores": "ranking", "win_matrix": "ranking",
    "ActivePairSelector": "pair_selection", "SuggestedPair": "pair_selection",
    "balanced_random_pairs": "pair_selection", "suggest_pairs": "pair_selection",
    "StoppingRule": "stopping", "StoppingReport": "stopping",
    "Placement": "placement", "place_task": "placement",
    "AgreementAnalyzer": "agreement", "AgreementReport": "agreement", "ItemAgreement": "agreement",
    "item_agreement": "agreement", "fleiss_kappa": "agreement", "krippendorff_alpha_nominal": "agreement",
    "DataAgreement": "data_agreement",
    "Score": "evaluation", "GammaScore": "evaluation", "score": "evaluation", "stratified_scores": "evaluation",
    "Estimate": "intervals", "score_estimate": "intervals", "difference_estimate": "intervals",
    "gamma_estimates": "intervals",
    "Embedder": "embeddings", "embed_texts": "embeddings",
    "DiversityReport": "diversity", "DiversityScores": "diversity", "diversity_report": "diversity",
    "diversity_scores": "diversity", "remote_clique": "diversity", "chamfer": "diversity",
    "top_k_similarity": "diversity",
    "CorrelationResult": "correlation", "correlate": "correlation",
    "SimulatedCrowd": "simulate", "kendall_tau": "simulate",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"analysis.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
