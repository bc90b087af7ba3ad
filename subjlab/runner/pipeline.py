"""The study: from one `StudyConfig` to trained models, analyses and a report, through cached steps.

Per task (folders under `runs/<study>/<task>/`):

- `real/data`           the real train slice, the test slice and the small real set (seeded samples)
- `real/agreement`      per-instance agreement of the test slice, where it exists (the test split's
                        own human ratings or documented levels, or an agreement / crowd-labels file)
- `zero_shot/generate`, `few_shot/generate`   synthetic data (generation engine); with [generation]
                                              set_per_seed one set per training seed, `generate-s<seed>`
- `small_real_few_shot/data`                  the small real set + the few-shot synthetic data (`data-s<seed>`)
- `<condition>/train-<backbone>-s<seed>`      a classifier per condition, backbone and seed, evaluated
                                              on the real test slice (metrics.json, predictions.jsonl)
- `<condition>/diversity`                      Remote Clique / Chamfer, and top-5 similarity to real
- `<condition>/stratified-<backbone>`          accuracy and Macro-F1 per agreement threshold γ

Study-wide (`runs/<study>/_study/`): the Bradley–Terry ranking of the crowd judgments and of any LLM
judgments. Then the report (`subjlab.runner.report`): every score with a bootstrap interval
(`subjlab.runner.evidence`), correlations of the real − synthetic gap with crowd objectivity, Kendall
τ between LLM and crowd rankings, the paper's findings judged by the intervals
(`subjlab.runner.findings`), plots, provenance. The report itself is re-rendered on every run (it is
cheap); everything else is cached by `subjlab.runner.steps`.

Only this module (and the CLI) imports all of `generation`, `training` and `analysis`, lazily inside
the steps, so loading a config or rendering `--help` never imports torch.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from subjlab.records import now_iso
from subjlab.runner.config import StudyConfig
from subjlab.runner.steps import Step, StepRecord, StepResult, StepRunner
from subjlab.runner.study_steps import STUDY_DIR, assemble_report, export_study_judgments, ranking_step
from subjlab.runner.evidence import TaskResults, task_info
from subjlab.runner.task_steps import (
    STEP_VERSIONS,
    SYNTHETIC,
    agreement_kind,
    agreement_step,
    data_step,
    diversity_step,
    draw_suffix,
    generate_step,
    generation_config,
    make_agreement,
    make_real_data,
    mix_step_data,
    stratified_step,
    train_config,
    train_step,
)
from subjlab.runner.run_files import write_json
from subjlab.tasks import TaskSpec


class StepNotCached(RuntimeError):
    """A step of a task left out by --only-task has no finished result yet."""


@dataclass
class StudyOutcome:
    """A finished run: its folder, the report (typed and on disk), every step record, the wall time."""

    run_dir: Path
    report: Any  # subjlab.runner.report_model.StudyReport (imported lazily)
    files: Any  # subjlab.runner.report_model.ReportFiles
    records: list[StepRecord]
    wall_seconds: float

    @property
    def ran(self) -> list[StepRecord]:
        """The steps that ran in this call (not from the cache)."""
        return [r for r in self.records if r.status == "ran"]


def count_steps(config: StudyConfig, tasks: Sequence[TaskSpec] | None = None) -> int:
    """Return how many steps a run of `config` goes through (for "[i/N]" progress)."""
    n = 0
    per_model = len(config.training.backbones) * len(config.train_seeds())
    for task in tasks if tasks is not None else config.tasks:
        conds = config.conditions
        n += 1  # real/data
        has_agreement = agreement_kind(config, task) is not None
        n += 1 if has_agreement else 0
        draws = len(config.draws())
        n += draws if "zero_shot" in conds else 0
        n += draws if ("few_shot" in conds or "small_real_few_shot" in conds) else 0
        n += draws if "small_real_few_shot" in conds else 0
        n += len(conds) * per_model
        n += len(conds) if config.evaluation.diversity else 0
        n += len(conds) * len(config.training.backbones) if has_agreement else 0
    return n


def run_study(
    config: StudyConfig,
    runs_dir: str | Path = "runs",
    resume: bool = False,
    only_tasks: Sequence[str] = (),
    judgments: str | Path | None = None,
    llm_judgments: Sequence[str | Path] = (),
    echo: Callable[[str], None] = print,
    rerun_command: str = "subjlab run CONFIG.toml",
    judgments_study: str | None = None,
    database_url: str | None = None,
) -> StudyOutcome:
    """Run (or re-use) every step of the study and write the report; return the outcome.

    `only_tasks` runs the steps of those tasks only; the other tasks enter the report when their
    steps are already finished (else they are left out, with a note). `judgments` / `llm_judgments`
    override the config's files; `judgments_study` (+ `database_url`) reads the crowd judgments of a
    pairwise study from the annotation database instead (exported afresh on every run). Raises
    ValueError on unknown task names in `only_tasks` or on both a judgments file and a study.
    """
    start = time.perf_counter()
    started_at = now_iso()
    names = [t.name for t in config.tasks]
    unknown = [t for t in only_tasks if t not in names]
    if unknown:
        raise ValueError(f"--only-task {', '.join(unknown)}: not in the study's tasks ({', '.join(names)})")
    selected = [t for t in config.tasks if not only_tasks or t.name in only_tasks]
    if judgments and judgments_study:
        raise ValueError("give crowd judgments either as a file (--judgments) or as a study (--judgments-study), not both")
    crowd_path = Path(judgments) if judgments else None
    db_study = judgments_study or ("" if judgments else config.judgments_study)
    if crowd_path is None and not db_study:
        crowd_path = config.judgments
    llm_paths = [Path(p) for p in llm_judgments] or ([config.llm_judgments] if config.llm_judgments else [])
    for p in ([crowd_path] if crowd_path else []) + llm_paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such judgments file")
    preflight(config)

    run_dir = Path(runs_dir) / config.name
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "study.json", config.snapshot())
    crowd_origin = str(crowd_path) if crowd_path else ""
    if db_study:
        url = database_url or config.database_url or None
        crowd_path, crowd_origin = export_study_judgments(db_study, url, run_dir / STUDY_DIR)
        echo(f"crowd judgments: {crowd_origin}")
    total = count_steps(config) + (1 if crowd_path else 0) + len(llm_paths)
    runner = StepRunner(run_dir / "steps.jsonl", echo=echo, resume=resume, total=total)
    echo(f"study {config.name!r}: {len(selected)} task(s), {total} steps; folder {run_dir}")

    notes: list[str] = []
    results: dict[str, TaskResults] = {}
    for task in config.tasks:
        allow = task in selected
        try:
            results[task.name] = _run_task(config, task, run_dir, runner, allow_run=allow)
        except StepNotCached:
            notes.append(f"Task {task.name} is left out: it was not selected by --only-task and has no finished "
                         "results yet.")

    from subjlab.runner.report_model import Ranking

    crowd: Ranking | None = None
    if crowd_path:
        crowd = ranking_step(config, run_dir, runner, crowd_path, "crowd", origin=crowd_origin)
    llm = [ranking_step(config, run_dir, runner, p, None) for p in llm_paths]

    report = assemble_report(config, results, crowd, llm, notes, runner.records, started_at, time.perf_counter() - start)
    from subjlab.runner.report import write_report

    files = write_report(report, run_dir, rerun_command=rerun_command)
    write_json(run_dir / "results.json", asdict(report))
    wall = time.perf_counter() - start
    echo(f"study {config.name!r} finished in {wall:.1f} s ({len([r for r in runner.records if r.status == 'ran'])} "
         f"step(s) ran, {len([r for r in runner.records if r.status == 'cached'])} cached)")
    return StudyOutcome(run_dir=run_dir, report=report, files=files, records=list(runner.records), wall_seconds=wall)


def preflight(config: StudyConfig) -> None:
    """Build every task's GenerationConfig and TrainConfig once, so a bad option value fails before
    any step runs; raise ConfigError naming the config file and the table."""
    from generation.config import GenerationConfig
    from training.config import TrainConfig

    from subjlab.runner.config import ConfigError

    for task in config.tasks:
        for mode in [m for m in SYNTHETIC if m in config.conditions or (m == "few_shot" and "small_real_few_shot" in config.conditions)]:
            try:
                generation_config(GenerationConfig, config, task, mode, None)
            except (TypeError, ValueError) as exc:
                raise ConfigError(config.path, "generation", f"task {task.name}, {mode}: {exc}") from None
        for backbone in config.training.backbones:
            try:
                train_config(TrainConfig, config, task, backbone, config.train_seeds()[0])
            except (TypeError, ValueError) as exc:
                raise ConfigError(config.path, "training", f"task {task.name}, backbone {backbone}: {exc}") from None


# ----------------------------------------------------------------------------------------------
# One task


def _run_task(config: StudyConfig, task: TaskSpec, run_dir: Path, runner: StepRunner, allow_run: bool) -> TaskResults:
    """Run every step of one task; return its report rows. StepNotCached when `allow_run` is False
    and a step has no finished result."""

    def run(step: Step, fn) -> StepResult:
        if allow_run:
            return runner.run(step, fn)
        cached = runner.lookup(step)
        if cached is None:
            raise StepNotCached(step.name)
        return runner.run(step, fn)  # cached: logs it, runs nothing

    base = run_dir / task.name
    conds = config.conditions
    out = TaskResults()
    real = run(data_step(config, task, base), lambda w: make_real_data(config, task, w))
    train_files: dict[str, Path] = {"real": real.path("train.jsonl")}
    test_file = real.path("test.jsonl")

    agreement: StepResult | None = None
    kind = agreement_kind(config, task)
    if kind is not None:
        agreement = run(agreement_step(config, task, base, real, kind), lambda w: make_agreement(config, task, real, kind, w))

    # the synthetic training sets, by condition and draw (`config.draws()`: one set, or one per training seed)
    draws = config.draws()
    synthetic: dict[str, dict[int | None, Path]] = {}
    modes = [m for m in SYNTHETIC if m in conds or (m == "few_shot" and "small_real_few_shot" in conds)]
    for mode in modes:
        for draw in draws:
            res = run(*generate_step(config, task, base, mode, real, draw))
            synthetic.setdefault(mode, {})[draw] = res.path("data.jsonl")
            out.generation_models.add(str(res.meta['model']))
            if not res.meta.get("complete", True):
                out.incomplete.append(f"{task.name} {mode}{draw_suffix(draw)}: generation stopped "
                                      f"({res.meta.get('stopped')}) with {res.meta.get('per_label')} clean texts per "
                                      f"label of {res.meta.get('per_label_target')} asked for; its models trained on "
                                      "what there was.")
    if "small_real_few_shot" in conds:
        for draw in draws:
            few_shot = synthetic["few_shot"][draw]
            mix = Step(
                name=f"{task.name}/small_real_few_shot/data{draw_suffix(draw)}",
                directory=base / "small_real_few_shot" / f"data{draw_suffix(draw)}",
                params={"step": STEP_VERSIONS["mix"]},
                inputs={"small": real.path("small.jsonl"), "few_shot": few_shot},
            )
            mixed = run(mix, lambda w, f=few_shot: mix_step_data(real.path("small.jsonl"), f, w))
            synthetic.setdefault("small_real_few_shot", {})[draw] = mixed.path("train.jsonl")

    def training_set(cond: str, seed: int) -> Path:
        """The set a model of `cond` with training seed `seed` trains on."""
        if cond == "real":
            return train_files["real"]
        return synthetic[cond][seed if config.generation.set_per_seed else None]

    for cond, sets in synthetic.items():  # diversity and similarity: of the first draw's set
        train_files[cond] = sets[draws[0]]

    n_test = real.meta["test_size"]
    out.info = task_info(task, real.meta["train_size"], n_test)
    out.agreement = agreement
    for cond in conds:
        for backbone in config.training.backbones:
            trained = []
            for seed in config.train_seeds():
                step, fn = train_step(config, task, base, cond, backbone, seed, training_set(cond, seed), test_file)
                trained.append(run(step, fn))
            out.trained[(cond, backbone)] = trained
            if agreement is not None:
                out.stratified[(cond, backbone)] = run(*stratified_step(config, task, base, cond, backbone, trained, agreement))
        if config.evaluation.diversity:
            out.diversity[cond] = run(*diversity_step(config, task, base, cond, train_files[cond], train_files["real"]))
    return out
