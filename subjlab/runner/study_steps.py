"""The study-wide steps: crowd and LLM rankings (Bradley–Terry), judgments exported from the
annotation database, correlations of the real − synthetic gap with crowd objectivity, Kendall τ
between rankings, and the assembly of the typed `subjlab.runner.report_model.StudyReport` (rows with
intervals from `subjlab.runner.evidence`, verdicts from `subjlab.runner.findings`)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from subjlab.records import write_records
from subjlab.runner.config import StudyConfig
from subjlab.runner.steps import Step, StepRecord, StepRunner, code_versions
from subjlab.runner.evidence import TaskResults, TaskRows, task_rows
from subjlab.runner.task_steps import STEP_VERSIONS
from subjlab.runner.run_files import slug, write_json

STUDY_DIR = "_study"
#: Packages whose versions go into the report's provenance.
PROVENANCE_PACKAGES = ("subjlab", "torch", "transformers", "sentence-transformers", "accelerate", "gguf",
                       "openai", "numpy", "scipy", "scikit-learn", "choix", "matplotlib")



def export_study_judgments(study: str, database_url: str | None, out_dir: Path) -> tuple[Path, str]:
    """Export the judgments of a pairwise study from the annotation database to a JSONL file under
    `out_dir`; return (its path, a description of where they came from). ValueError when the study
    is unknown, not pairwise, empty, or the database is not migrated."""
    from annotation_server.db import resolve_url
    from annotation_server.export import export_records
    from annotation_server.schema import migrated_session

    url = resolve_url(database_url)
    with migrated_session(url) as db:
        records = export_records(db, study, "judgments")
    if not records:
        raise ValueError(f"study {study!r} in {url} has no judgments yet; collect some first (subjlab serve)")
    path = out_dir / f"crowd-judgments-{slug(study)}.jsonl"
    write_records(path, records)
    return path, f"study {study!r} in {url} ({len(records)} judgments, exported to {path})"


def ranking_step(config: StudyConfig, run_dir: Path, runner: StepRunner, path: Path, source: str | None,
             origin: str = ""):
    """Fit Bradley–Terry on a judgments file (a cached step); return a `report_model.Ranking`.

    `source` is "crowd" for crowd judgments. With None (LLM judgments) it is read from the
    judgments' `source` field (e.g. "llm:SmolLM2-135M-Instruct"), which every row must carry.
    """
    from subjlab.records import read_judgments

    judgments = read_judgments(path)
    if not judgments:
        raise ValueError(f"{path}: holds no judgments")
    if source is None:
        sources = {str(j.extra.get("source", "")) for j in judgments}
        if len(sources) != 1 or not next(iter(sources)).startswith("llm:"):
            raise ValueError(f"{path}: LLM judgments must all carry the same \"source\": \"llm:<model>\" field "
                             f"(found {sorted(sources)}); write them with `subjlab judge`")
        source = sources.pop()
    else:
        llm_rows = [i for i, j in enumerate(judgments, start=1) if str(j.extra.get("source", "")).startswith("llm:")]
        if llm_rows:
            raise ValueError(f"{path}: judgments {llm_rows[:5]} are LLM judgments (\"source\": \"llm:...\"); "
                             "pass them as --llm-judgments, not as crowd judgments")
    tag = "crowd" if source == "crowd" else slug(source)
    step = Step(
        name=f"{STUDY_DIR}/ranking-{tag}",
        directory=run_dir / STUDY_DIR / f"ranking-{tag}",
        params={"step": STEP_VERSIONS["ranking"], "n_bootstrap": 1000, "seed": config.seed, "source": source},
        inputs={"judgments": path},
        versions=code_versions("subjlab", "choix"),
    )

    def fn(work: Path) -> dict[str, Any]:
        import warnings

        from analysis.ranking import BradleyTerryRanker

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            ranker = BradleyTerryRanker(n_bootstrap=1000, seed=config.seed).fit(judgments)
        rows = [r.to_dict() for r in ranker.ranking()]
        write_json(work / "ranking.json", rows)
        return {"tasks": rows, "n_judgments": len(judgments),
                "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]}

    res = runner.run(step, fn)
    from analysis.ranking import RankedTask
    from subjlab.runner.report_model import Ranking

    return Ranking(
        source=source,
        path=origin or str(path),
        n_judgments=int(res.meta["n_judgments"]),
        tasks=tuple(RankedTask(**row) for row in res.meta["tasks"]),
        warnings=tuple(res.meta.get("warnings", ())),
    )


def assemble_report(config: StudyConfig, results: dict[str, TaskResults], crowd, llm, notes: list[str],
              records: list[StepRecord], started_at: str, wall: float):
    """Build the typed `StudyReport` from the task results and rankings: every score with its interval,
    the contrasts and the paper's findings judged on them."""
    from subjlab.runner.findings import judge_findings
    from subjlab.runner.report_model import Intervals, Provenance, RankingComparison, StepTiming, StudyReport

    settings = Intervals(n_resamples=config.evaluation.bootstrap, seed=config.seed)
    tasks = {t.name: t for t in config.tasks}
    rows = {name: task_rows(tasks[name], res, config.conditions, config.training.backbones,
                            config.evaluation.gammas, settings) for name, res in results.items()}
    notes = list(notes) + [n for r in results.values() for n in r.incomplete]
    correlations = gap_correlations(config, rows, crowd, notes)
    comparisons = []
    for ranking in llm:
        if crowd is None:
            notes.append(f"The {ranking.source} ranking is shown without Kendall τ: there is no crowd ranking to "
                         "compare it with.")
            continue
        comp = compare_rankings(crowd, ranking)
        if comp is None:
            notes.append(f"Kendall τ between the {ranking.source} and crowd rankings needs at least 3 common tasks.")
        else:
            comparisons.append(RankingComparison(llm_source=ranking.source, n_tasks=comp[0],
                                                 kendall_tau=comp[1], kendall_p=comp[2]))
    g = config.generation
    provenance = Provenance(
        study=config.name,
        config_path=str(config.path),
        started_at=started_at,
        wall_seconds=wall,
        generation_backend=g.backend,
        generation_model=", ".join(sorted({m for r in results.values() for m in r.generation_models})) or (g.model or "-"),
        backbones=config.training.backbones,
        seeds=config.train_seeds(),
        data_dir=str(data_dir_of(config)),
        packages=package_versions(),
        steps=tuple(StepTiming(r.name, r.status, r.seconds, r.cpu_seconds) for r in records),
        platform=f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        synthetic_sets=len(config.draws()),
    )
    contrasts = tuple(c for r in rows.values() for c in r.contrasts)
    report = StudyReport(
        title=f"subjlab study: {config.name}",
        tasks=tuple(r.info for r in results.values()),
        conditions=config.conditions,
        backbones=config.training.backbones,
        performance=tuple(c for r in rows.values() for c in r.performance),
        diversity=tuple(d for r in rows.values() for d in r.diversity),
        curves=tuple(c for r in rows.values() for c in r.curves),
        provenance=provenance,
        crowd=crowd,
        llm=tuple(llm),
        correlations=tuple(correlations),
        comparisons=tuple(comparisons),
        notes=tuple(notes),
        contrasts=contrasts,
        intervals=settings,
    )
    from dataclasses import replace

    return replace(report, findings=tuple(judge_findings(report)))


def gap_correlations(config: StudyConfig, rows: dict[str, TaskRows], crowd, notes: list[str]) -> list[Any]:
    """Correlate crowd objectivity with the real − synthetic Macro-F1 gap, per backbone and synthetic
    condition; Spearman's ρ gets an interval from the per-task gaps' bootstrap replicates."""
    from analysis.correlation import correlate
    from analysis.intervals import spearman_estimate
    from subjlab.runner.report_model import CONDITION_TITLES, GapCorrelation

    if crowd is None or "real" not in config.conditions:
        return []
    scores = {t.task: t.score for t in crowd.tasks}
    out = []
    for backbone in config.training.backbones:
        for synth in [c for c in config.conditions if c != "real"]:
            boots = {task: r.gap_bootstraps[(backbone, synth)] for task, r in rows.items()
                     if (backbone, synth) in r.gap_bootstraps}
            gaps = {task: b.value for task, b in boots.items()}
            label = f"Macro-F1 gap: real − {CONDITION_TITLES[synth]} ({backbone})"
            try:
                result = correlate(scores, gaps, orientation="objectivity")
            except ValueError as exc:
                notes.append(f"{label}: not computed: {exc}")
                continue
            try:
                rho = spearman_estimate(scores, boots)
            except ValueError as exc:
                notes.append(f"{label}: no interval for Spearman's ρ: {exc}")
                rho = None
            out.append(GapCorrelation(label=label, backbone=backbone, metric="macro_f1", synthetic=synth,
                                      result=result, spearman=rho))
    return out


def compare_rankings(crowd, llm) -> tuple[int, float, float] | None:
    """Return (n common tasks, Kendall τ, p) between two rankings' scores, or None under 3 common tasks."""
    from scipy.stats import kendalltau

    a = {t.task: t.score for t in crowd.tasks}
    b = {t.task: t.score for t in llm.tasks}
    common = sorted(set(a) & set(b))
    if len(common) < 3:
        return None
    tau, p = kendalltau([a[t] for t in common], [b[t] for t in common])
    if tau != tau:  # NaN: one side constant
        return None
    return len(common), float(tau), float(p)


def package_versions() -> dict[str, str]:
    """Return the installed versions of the provenance packages."""
    return {k: v for k, v in code_versions(*PROVENANCE_PACKAGES).items() if v != "not installed"}


def data_dir_of(config: StudyConfig) -> Path:
    """Return the data folder the study reads."""
    from subjlab.data import resolve_data_dir

    return resolve_data_dir(config.data_dir)
