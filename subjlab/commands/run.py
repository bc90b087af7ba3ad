"""`subjlab run`, `subjlab demo` and `subjlab judge`: a whole study from one config, the packaged
demo study, and pairwise objectivity judgments made by an LLM."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from subjlab.commands._database import db_option

RUNS_DIR_OPTION = click.option(
    "--runs-dir",
    type=click.Path(file_okay=False),
    default="runs",
    show_default=True,
    help="Where run folders go: <runs-dir>/<study name>/ holds every step's output and the report.",
)
RESUME_OPTION = click.option(
    "--resume",
    is_flag=True,
    help="Also continue steps that crashed half-way from their partial output (generation picks up where "
    "it stopped). Finished steps are always reused when their inputs are unchanged, with or without this flag.",
)
JUDGMENTS_OPTION = click.option(
    "--judgments",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Crowd pairwise judgments (JSONL/CSV of left, right, winner; `subjlab study export` writes them): adds "
    "the subjectivity ranking and its correlation with the real − synthetic gap to the report.",
)
JUDGMENTS_STUDY_OPTION = click.option(
    "--judgments-study",
    metavar="NAME",
    default=None,
    help="Read the crowd judgments of this pairwise study from the annotation database instead of a file "
    "(exported afresh on every run).",
)
DB_OPTION = db_option("Annotation database of --judgments-study")
THREADS_OPTION = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads per model (torch) [default: torch's choice, one per core]. On a machine shared with other "
    "jobs, 1 avoids oversubscribing the cores.",
)
STUDY_THREADS_OPTION = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads per model (torch) [default: the cores not busy with other work when the run starts: "
    "all of them on an idle machine, 1 when other jobs keep the cores busy, where more threads are slower].",
)
LLM_JUDGMENTS_OPTION = click.option(
    "--llm-judgments",
    type=click.Path(dir_okay=False, exists=True),
    multiple=True,
    help="LLM judgments from `subjlab judge` (repeatable): shown as a separate ranking, with Kendall τ against "
    "the crowd ranking when both exist.",
)


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _set_study_threads(threads: int | None) -> None:
    """Set torch's threads for a study: `threads`, else `auto_threads()` (announced on stdout)."""
    if threads is None:
        from subjlab.runner.threads import SAMPLE_SECONDS, auto_threads, busy_cores, usable_cores

        busy = busy_cores()
        threads = auto_threads(busy=busy)
        _echo(f"torch threads: {threads} ({usable_cores()} cores, {busy:.1f} busy with other work over "
              f"{SAMPLE_SECONDS:g} s at start; --threads N to choose)")
    _set_threads(threads)


def _echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


def _finish(outcome) -> None:
    from subjlab.runner.report import table_header, table_rows
    from subjlab.commands._output import emit_table

    report = outcome.report
    for backbone in report.backbones:
        emit_table(f"Macro-F1 (%) on the real test split, backbone {backbone}", table_header(report),
                   table_rows(report, backbone, "macro_f1"))
        emit_table(f"Accuracy (%) on the real test split, backbone {backbone}", table_header(report),
                   table_rows(report, backbone, "accuracy"))
    if report.findings:
        counts = {v: sum(f.verdict == v for f in report.findings) for v in ("supported", "contradicted", "undetermined")}
        click.echo(f"Findings of the paper, judged by 95% intervals: {counts['supported']} supported, "
                   f"{counts['contradicted']} contradicted, {counts['undetermined']} undetermined (one line each in the report)")
    if report.crowd is None:
        click.echo("Task subjectivity: not measured (no crowd judgments); the report says how to collect them.")
    click.echo(f"report: {outcome.files.html}")
    click.echo(f"        {outcome.files.markdown}")


@click.command()
@click.argument("config_file", metavar="CONFIG.toml", type=click.Path(dir_okay=False))
@RESUME_OPTION
@RUNS_DIR_OPTION
@click.option("--only-task", "only_tasks", multiple=True, metavar="TASK",
              help="Run only this task's steps (repeatable); other tasks enter the report if already finished.")
@JUDGMENTS_OPTION
@JUDGMENTS_STUDY_OPTION
@DB_OPTION
@LLM_JUDGMENTS_OPTION
@STUDY_THREADS_OPTION
def run(config_file: str, resume: bool, runs_dir: str, only_tasks: tuple[str, ...], judgments: str | None,
        judgments_study: str | None, db_url: str | None, llm_judgments: tuple[str, ...], threads: int | None) -> None:
    """Run a whole study from one config file and write runs/<name>/report.html and report.md.

    Per task: train on real data; generate zero-shot and few-shot synthetic data and train on each;
    train on a small real set plus few-shot data; evaluate every model on the real test split;
    diversity and similarity of each training set; accuracy by agreement threshold γ where
    per-instance agreement exists. With judgments: the Bradley–Terry subjectivity ranking and the
    correlation of the real − synthetic gap with it.

    Every step is cached under runs/<name>/<task>/<condition>/ by a hash of its inputs: re-running
    skips finished steps, and a changed setting re-runs only what depends on it. The config format
    is documented in docs/runner.md; subjlab/configs/demo.toml and paper.toml are examples.

    Example: subjlab run configs/paper.toml --judgments crowd.jsonl
    """
    from subjlab.runner.config import load_config
    from subjlab.runner.pipeline import run_study

    config = load_config(config_file)
    _set_study_threads(threads)
    outcome = run_study(config, runs_dir=runs_dir, resume=resume, only_tasks=only_tasks, judgments=judgments,
                        llm_judgments=llm_judgments, echo=_echo, rerun_command=f"subjlab run {config_file}",
                        judgments_study=judgments_study, database_url=db_url)
    _finish(outcome)


@click.command()
@RUNS_DIR_OPTION
@JUDGMENTS_OPTION
@JUDGMENTS_STUDY_OPTION
@DB_OPTION
@LLM_JUDGMENTS_OPTION
@RESUME_OPTION
@STUDY_THREADS_OPTION
def demo(runs_dir: str, judgments: str | None, judgments_study: str | None, db_url: str | None,
         llm_judgments: tuple[str, ...], resume: bool, threads: int | None) -> None:
    """Run the demo study on the embedded defaults and write runs/demo/report.html.

    Four tasks across the paper's subjectivity scale, on the data bundled with subjlab: SMS spam,
    Financial PhraseBank, humor and tweet sarcasm. The real human agreement of Financial PhraseBank's
    and tweet sarcasm's test texts gives the accuracy-by-γ curves. Zero-shot data from conversations
    with the paper's diversity prompt, few-shot data from real demonstrations (the packaged
    SmolLM2-135M-Instruct); all-MiniLM-L6-v2 classifiers, two seeds; every number of the report with
    a 95% interval, and a Findings section. Offline, CPU only: about 13 minutes cold on an idle 2-core
    machine, generation a little over half of it. A second run reuses every finished step (and
    --resume continues one that was interrupted).

    Task subjectivity needs real crowd judgments: without --judgments (or --judgments-study) the
    report says so and how to collect them (`subjlab study ...`, `subjlab serve`, `subjlab rank`).
    The config is subjlab/configs/demo.toml (copy it to change sizes, then `subjlab run my.toml`).

    Example: subjlab demo --judgments judgments.jsonl
    """
    from subjlab.runner.demo import demo_config_path
    from subjlab.runner.config import load_config
    from subjlab.runner.pipeline import run_study

    config = load_config(demo_config_path())
    _set_study_threads(threads)
    outcome = run_study(config, runs_dir=runs_dir, resume=resume, judgments=judgments,
                        llm_judgments=llm_judgments, echo=_echo, rerun_command="subjlab demo",
                        judgments_study=judgments_study, database_url=db_url)
    _finish(outcome)


@click.command()
@click.option("--tasks", "tasks_csv", required=True, metavar="A,B,C",
              help="Comma-separated tasks (registry keys or .toml/.yaml task files), at least 2.")
@click.option("--backend", type=click.Choice(["local", "openai"]), default="local", show_default=True,
              help="local = the packaged SmolLM2-135M-Instruct (or --model PATH); openai = any OpenAI-compatible endpoint.")
@click.option("--model", default=None, help="Model name (openai) or local model path [default: the backend's default].")
@click.option("--base-url", default=None, help="OpenAI-compatible endpoint (openai backend) [default: $OPENAI_BASE_URL or OpenAI].")
@click.option("--per-pair", type=click.IntRange(min=1), default=2, show_default=True,
              help="Judgments per unordered pair of tasks; left/right order alternates.")
@click.option("--examples", "n_examples", type=click.IntRange(min=0), default=3, show_default=True,
              help="Example texts shown per task (the task's own examples, else sampled from its training data).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for example sampling and order.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Data directory for example texts [default: $SUBJLAB_DATA, else the slices bundled with subjlab].")
@click.option("--no-cache", is_flag=True, help="Do not read or write the generation response cache (ask the model anew).")
@THREADS_OPTION
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False),
              help="Output JSON Lines of judgments, each marked \"source\": \"llm:<model>\".")
def judge(tasks_csv: str, backend: str, model: str | None, base_url: str | None, per_pair: int, n_examples: int,
          seed: int, data_dir: str | None, no_cache: bool, threads: int | None, out_file: str) -> None:
    """Ask an LLM which of two tasks is more objective, with the page a crowd worker sees.

    For every pair of tasks the model gets the definition of objectivity, both tasks' descriptions,
    label descriptions and example texts, and answers A or B. Answers are written as pairwise
    judgments marked "source": "llm:<model>", so `subjlab rank` ranks them and `subjlab run
    --llm-judgments` compares the LLM's ranking with the crowd's (Kendall τ). Answers that name
    neither task are retried, then counted as unparsed and left out.

    Example: subjlab judge --tasks sms_spam,financial_phrasebank,humor --backend local --out llm.jsonl
    """
    from generation.judge import JudgeConfig, judge_tasks
    from subjlab.tasks import get_task

    _set_threads(threads)
    names = [t.strip() for t in tasks_csv.split(",") if t.strip()]
    specs = [get_task(n) for n in names]
    config = JudgeConfig(backend=backend, model=model or "", base_url=base_url or "", per_pair=per_pair,
                         n_examples=n_examples, seed=seed, data_dir=Path(data_dir) if data_dir else None,
                         cache=not no_cache)
    summary = judge_tasks(specs, config, Path(out_file))
    click.echo(f"{summary.written} judgments by {summary.source} written to {out_file} "
               f"({summary.unparsed} unparsed answer(s) left out, {summary.seconds:.1f} s)")
