"""`subjlab rank`: Bradley–Terry objectivity ranking of tasks, whether it is settled enough to stop,
next pairs to ask, placing a new task."""

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
              help="How --suggest picks pairs: active (the pairs whose next judgment most lowers the expected "
              "number of misordered pairs, looking one judgment ahead under the current posterior; see "
              "docs/rank.md for the benchmark) or balanced (every pair, both orders, evenly).")
@click.option("--new-task", "new_task", metavar="NAME", default=None,
              help="Place this task on the scale of the others: score, interval, neighbours, and the "
              "existing tasks to compare it with next (K of them: --suggest, default 3).")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=0.5, show_default=True,
              help="Regularisation: virtual wins given to each side of every compared pair, so a task "
              "that always wins or always loses keeps a finite score.")
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap resamples of the judgments for the 95% intervals (0: no intervals).")
@click.option("--stop-at", "stop_at", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.9,
              show_default=True, metavar="P",
              help="Stopping rule: say \"you can stop\" once the probability that this order is within Kendall "
              "tau >= --stop-tau of the order more judgments would give reaches P (see docs/rank.md).")
@click.option("--stop-tau", "stop_tau", type=click.FloatRange(-1, 1, min_open=True), default=0.9, show_default=True,
              metavar="TAU", help="Stopping rule: the Kendall tau to the settled order that counts as the same answer.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the bootstrap, the suggestions and the stopping rule's draws.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, metavar="PNG",
              help="Write a PNG of the ranking with its intervals (with --new-task, that task in red).")
@apply_options(STUDY_SOURCE_OPTIONS + EXCLUSION_RULE_OPTIONS)
@click.pass_context
def rank(ctx: click.Context, judgments_path: str | None, fmt: str, k: int, design: str, new_task: str | None,
         alpha: float, n_bootstrap: int, stop_at: float, stop_tau: float, seed: int, plot_path: str | None,
         study: str | None, db_url: str | None, exclude_flagged: bool, **thresholds) -> None:
    """Rank tasks from most objective to most subjective from pairwise judgments.

    JUDGMENTS is a JSON Lines (or CSV) file of {"left", "right", "winner"} records, where winner
    is the task judged MORE OBJECTIVE of the two (other fields are allowed). Scores are
    Bradley-Terry log-strengths of objectivity, centred to mean 0: higher = more objective. Each
    task gets a 95% bootstrap interval (resampling judgments), its rank and how many judgments
    involved it. A disconnected comparison graph gets a warning naming its components.

    Stopping rule: below the table, the posterior probability that this order is within Kendall
    tau >= --stop-tau (0.9) of the order that more judgments would settle on, the expected number of
    misordered pairs, the least settled pairs, and "You can stop" once the probability reaches
    --stop-at (0.9); otherwise "Keep collecting".

    --format json prints a list of {"task", "score", "ci_low", "ci_high", "rank", "n"}, most
    objective first; with --suggest or --new-task it prints {"ranking": [...], "suggestions":
    [...]} (plus "placement" with --new-task). Every object form, and --stop-at or --stop-tau
    given on the command line, adds "stopping": {"p_settled", "can_stop", "expected_misordered",
    "allowed_misordered", "tau", "stop_at", "open_pairs", ...}.

    --study NAME reads the judgments of a pairwise study straight from the annotation server's
    database (--db; gold pairs are never part of them) instead of a file. --exclude-flagged leaves out
    the judgments of the workers the exclusion rules flag (--max-failed-attention, --min-gold,
    --min-seconds, --min-agreement) and reports how many were excluded and why; with --study,
    --format json prints {"ranking": [...], "study", "excluded": {"applied", "n", "of", "by_reason",
    "workers"}} (plus "suggestions"/"placement" when asked).

    Examples:

      subjlab rank judgments.jsonl

      subjlab rank judgments.jsonl --suggest 10 --format json

      subjlab rank judgments.jsonl --stop-at 0.95 --format json

      subjlab rank judgments.jsonl --new-task my_task --plot ranking.png

      subjlab rank --study objectivity --db sqlite:///subjlab.db --exclude-flagged
    """
    from analysis.pair_selection import ActivePairSelector, balanced_random_pairs, shown_counts
    from analysis.placement import place_task
    from analysis.ranking import BradleyTerryRanker
    from analysis.stopping import StoppingRule
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
    stopping = StoppingRule(tau=stop_tau, stop_at=stop_at, alpha=alpha, seed=seed).fit(judgments, ranker=ranker).report()

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
        asked_stop = any(ctx.get_parameter_source(p) != click.core.ParameterSource.DEFAULT for p in ("stop_at", "stop_tau"))
        if new_task or k or study_data is not None or asked_stop:
            out = {"ranking": ranking, "stopping": stopping.to_dict()}
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
    _echo_stopping(stopping)
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


def _echo_stopping(stopping) -> None:
    """The stopping rule under the ranking table: the verdict, then the least settled pairs."""
    click.echo(f"\n{stopping.summary()}\n{stopping.verdict()}")
    shaky = [p for p in stopping.open_pairs if p.p_misordered >= 0.05]
    if shaky and not stopping.can_stop:
        click.echo("Least settled: " + "; ".join(f"{p.above} above {p.below} (P wrong {p.p_misordered:.2f})" for p in shaky))


def _n_pairs(tasks: list[str]) -> int:
    return len(tasks) * (len(tasks) - 1) // 2


def _interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    return f"[{low:.3f}, {high:.3f}]"
