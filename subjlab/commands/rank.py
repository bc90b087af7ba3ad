"""`subjlab rank`: Bradley–Terry objectivity ranking of tasks, next pairs to ask, placing a new task."""

from __future__ import annotations

import warnings

import click

from subjlab.commands._output import FORMAT_OPTION, emit_json, emit_table
from subjlab.commands._study_data import EXCLUSION_RULE_OPTIONS, STUDY_SOURCE_OPTIONS, apply_options, check_study_options


@click.command()
@click.argument("judgments_path", metavar="[JUDGMENTS]", required=False, type=click.Path(dir_okay=False))
@FORMAT_OPTION
@click.option("--suggest", "k", type=click.IntRange(min=0), default=0, show_default=True, metavar="K",
              help="Also propose the next K pairs to show workers.")
@click.option("--design", type=click.Choice(["active", "balanced"]), default="active", show_default=True,
              help="How --suggest picks pairs: active (expected drop in misordered pairs under the current "
              "posterior; see docs/rank.md for the benchmark) or balanced (every pair, both orders, evenly).")
@click.option("--new-task", "new_task", metavar="NAME", default=None,
              help="Place this task on the scale of the others: score, interval, neighbours, and the "
              "existing tasks to compare it with next (K of them: --suggest, default 3).")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=0.5, show_default=True,
              help="Regularisation: virtual wins given to each side of every compared pair, so a task "
              "that always wins or always loses keeps a finite score.")
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap resamples of the judgments for the 95% intervals (0: no intervals).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the bootstrap and the suggestions.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, metavar="PNG",
              help="Write a PNG of the ranking with its intervals (with --new-task, that task in red).")
@apply_options(STUDY_SOURCE_OPTIONS + EXCLUSION_RULE_OPTIONS)
def rank(judgments_path: str | None, fmt: str, k: int, design: str, new_task: str | None, alpha: float,
         n_bootstrap: int, seed: int, plot_path: str | None, study: str | None, db_url: str | None,
         exclude_flagged: bool, **thresholds) -> None:
    """Rank tasks from most objective to most subjective from pairwise judgments.

    JUDGMENTS is a JSON Lines (or CSV) file of {"left", "right", "winner"} records, where winner
    is the task judged MORE OBJECTIVE of the two (other fields are allowed). Scores are
    Bradley-Terry log-strengths of objectivity, centred to mean 0: higher = more objective. Each
    task gets a 95% bootstrap interval (resampling judgments), its rank and how many judgments
    involved it. A disconnected comparison graph gets a warning naming its components.

    --format json prints a list of {"task", "score", "ci_low", "ci_high", "rank", "n"}, most
    objective first; with --suggest or --new-task it prints {"ranking": [...], "suggestions":
    [...]} (plus "placement" with --new-task).

    --study NAME reads the judgments of a pairwise study straight from the annotation server's
    database (--db; gold pairs are never part of them) instead of a file. --exclude-flagged leaves out
    the judgments of the workers the exclusion rules flag (--max-failed-attention, --min-gold,
    --min-seconds, --min-agreement) and reports how many were excluded and why; with --study,
    --format json prints {"ranking": [...], "study", "excluded": {"applied", "n", "of", "by_reason",
    "workers"}} (plus "suggestions"/"placement" when asked).

    Examples:

      subjlab rank judgments.jsonl

      subjlab rank judgments.jsonl --suggest 10 --format json

      subjlab rank judgments.jsonl --new-task my_task --plot ranking.png

      subjlab rank --study objectivity --db sqlite:///subjlab.db --exclude-flagged
    """
    from analysis.pair_selection import ActivePairSelector, balanced_random_pairs, shown_counts
    from analysis.placement import place_task
    from analysis.ranking import BradleyTerryRanker
    from subjlab.records import read_judgments

    if (judgments_path is None) == (study is None):
        raise click.UsageError("give either a JUDGMENTS file or --study NAME (not both)")
    check_study_options(study, db_url, exclude_flagged, thresholds)
    study_data = None
    if study is not None:
        from subjlab.commands._study_data import read_study

        study_data = read_study("pairwise", study, db_url, exclude_flagged, thresholds)
        judgments = study_data.records
    else:
        judgments = read_judgments(judgments_path)
        if not judgments:
            raise ValueError(f"{judgments_path}: no judgments in the file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        ranker = BradleyTerryRanker(alpha=alpha, n_bootstrap=n_bootstrap, seed=seed).fit(judgments)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    rows = ranker.ranking()

    placement = None
    suggestions = []
    if new_task:
        placement = place_task(judgments, new_task, k or 3, alpha, n_bootstrap, seed,
                               ranker=ranker if new_task in ranker.tasks_ else None)
        suggestions = [s.to_dict() for s in placement.suggestions]
    elif k:
        if design == "active":
            suggestions = [s.to_dict() for s in ActivePairSelector(alpha=alpha).suggest(judgments, ranker.tasks_, min(k, _n_pairs(ranker.tasks_)), seed)]
        else:
            suggestions = [{"left": a, "right": b} for a, b in balanced_random_pairs(ranker.tasks_, k, seed, shown_counts(judgments))]

    if plot_path:
        from analysis.plots import plot_ranking

        ranked = {r.task for r in rows}
        if new_task and new_task not in ranked:
            click.echo(f"note: {new_task} has no judgments yet, so the plot cannot show it", err=True)
        plot_ranking(rows, plot_path, highlight=new_task if new_task in ranked else None)
        click.echo(f"wrote {plot_path}", err=True)

    if fmt == "json":
        ranking = [r.to_dict() for r in rows]
        if new_task or k or study_data is not None:
            out = {"ranking": ranking}
            if new_task or k:
                out["suggestions"] = suggestions
            if study_data is not None:
                from subjlab.commands._study_data import excluded_json

                out["study"] = study
                out["excluded"] = excluded_json(study_data)
            if not ranker.connected_:
                out["components"] = ranker.components_
            if placement is not None:
                out["placement"] = placement.to_dict()
            emit_json(out)
        else:
            emit_json(ranking)
        return

    emit_table(
        f"Objectivity ranking ({len(judgments)} judgments)",
        ["rank", "task", "score", "95% CI", "n"],
        [[r.rank, r.task, r.score, _interval(r.ci_low, r.ci_high), r.n] for r in rows],
    )
    if study_data is not None:
        from subjlab.commands._study_data import echo_exclusion

        echo_exclusion(study_data)
    if placement is not None:
        if placement.score is None:
            click.echo(f"\n{new_task}: no judgments yet; compare it with the tasks below first.")
        else:
            click.echo(
                f"\n{new_task}: score {placement.score:.3f} {_interval(placement.ci_low, placement.ci_high)}, rank "
                f"{placement.rank} of {placement.n_tasks} (bootstrap ranks {placement.rank_low}-{placement.rank_high}), "
                f"below {placement.above or '(top)'}, above {placement.below or '(bottom)'}; {placement.n} judgments."
            )
    if suggestions:
        emit_table(
            "Next pairs to show",
            ["left", "right", "gain", "P(left more objective)"],
            [[s["left"], s["right"], s.get("gain"), s.get("p_left")] for s in suggestions],
        )


def _n_pairs(tasks: list[str]) -> int:
    return len(tasks) * (len(tasks) - 1) // 2


def _interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    return f"[{low:.3f}, {high:.3f}]"
