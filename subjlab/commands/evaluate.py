"""`subjlab evaluate`: accuracy / Macro-F1 by agreement threshold, and subjectivity-gap correlations."""

from __future__ import annotations

from pathlib import Path

import click

from subjlab.commands._output import FORMAT_OPTION, emit_json, emit_table


@click.command()
@click.argument("prediction_files", metavar="[PREDICTIONS]...", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--agreement",
    "agreement_file",
    type=click.Path(dir_okay=False),
    help="JSON Lines (or CSV) of {\"item\", \"agreement\"}; item = the prediction's id "
    "(`subjlab agreement --format jsonl` writes this).",
)
@click.option(
    "--gammas",
    default="0.5,0.6,0.7,0.8,0.9,1.0",
    show_default=True,
    help="Comma-separated agreement thresholds γ in [0, 1]; each row scores the instances with a_i >= γ "
    "(with a 1e-6 tolerance: a stored 0.666667 reaches γ=2/3; Financial PhraseBank's '66' level, 2/3, "
    "is kept at γ=0.66 and dropped at 0.7).",
)
@click.option(
    "--label",
    "curve_labels",
    multiple=True,
    help="Name of each PREDICTIONS file's curve, in the same order (e.g. real, zero-shot, few-shot) "
    "[default: the file names].",
)
@click.option(
    "--missing",
    type=click.Choice(["error", "drop"]),
    default="error",
    show_default=True,
    help="Predictions whose id has no agreement value: stop with an error listing some, or leave them out.",
)
@click.option("--correlate", is_flag=True, help="Correlate task scores with real-minus-synthetic gaps instead (needs --subjectivity and --gaps).")
@click.option(
    "--subjectivity",
    "scores_file",
    type=click.Path(dir_okay=False),
    help="With --correlate: per-task scores, either the output of `subjlab rank --format json` (OBJECTIVITY: "
    "higher = more objective) or JSON/JSONL of {\"task\", \"score\"}.",
)
@click.option(
    "--gaps",
    "gaps_file",
    type=click.Path(dir_okay=False),
    help="With --correlate: JSON/JSONL of {\"task\", \"gap\"}, gap = metric trained on real data minus "
    "metric trained on synthetic data.",
)
@click.option(
    "--orientation",
    type=click.Choice(["objectivity", "subjectivity"]),
    default="objectivity",
    show_default=True,
    help="With --correlate: what the scores measure. objectivity (rank's scores): the paper's finding "
    "(gap grows with subjectivity) means a NEGATIVE correlation; subjectivity: a POSITIVE one.",
)
@FORMAT_OPTION
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Also write a PNG: accuracy/Macro-F1 vs γ, or gap vs score with --correlate.")
def evaluate(
    prediction_files: tuple[str, ...],
    agreement_file: str | None,
    gammas: str,
    curve_labels: tuple[str, ...],
    missing: str,
    correlate: bool,
    scores_file: str | None,
    gaps_file: str | None,
    orientation: str,
    fmt: str,
    plot_path: str | None,
) -> None:
    """Accuracy and Macro-F1 on the instances whose annotation agreement reaches each γ.

    PREDICTIONS are JSON Lines (or CSV) of {"id", "label", "prediction"} (label = gold). Give several
    files (with --label NAME each) to compare models trained on real, zero-shot and few-shot data in
    one table and one plot. Macro-F1 averages over the gold labels present at that γ. A γ that no
    instance reaches gives n = 0 and null scores.

    With --correlate: Spearman and Kendall correlations (scipy, with p-values) between per-task scores
    and per-task gaps. Scores from `subjlab rank` are OBJECTIVITY (higher = more objective); the
    paper finds the gap GROWS WITH SUBJECTIVITY, i.e. a NEGATIVE correlation with objectivity scores.

    \b
    Examples:
      subjlab agreement --phrasebank test --format jsonl > fpb_agreement.jsonl
      subjlab evaluate real.jsonl zero.jsonl --label real --label zero-shot \\
          --agreement fpb_agreement.jsonl --plot gamma.png
      subjlab evaluate --correlate --subjectivity rank.json --gaps gaps.jsonl --format json
    """
    if correlate:
        if prediction_files or agreement_file:
            raise click.UsageError("--correlate takes --subjectivity and --gaps, not PREDICTIONS/--agreement")
        if not scores_file or not gaps_file:
            raise click.UsageError("--correlate needs --subjectivity SCORES and --gaps GAPS")
        _correlate(scores_file, gaps_file, orientation, fmt, plot_path)
        return
    if not prediction_files:
        raise click.UsageError("give at least one PREDICTIONS file (or --correlate)")
    if not agreement_file:
        raise click.UsageError("--agreement AGREEMENT.jsonl is required")
    if curve_labels and len(curve_labels) != len(prediction_files):
        raise click.UsageError(f"{len(curve_labels)} --label value(s) for {len(prediction_files)} PREDICTIONS file(s)")

    from analysis.evaluation import parse_gammas, stratified_scores
    from subjlab.records import read_agreements, read_predictions

    thresholds = parse_gammas(gammas)
    agreements = read_agreements(agreement_file)
    names = list(curve_labels) or _names(prediction_files)
    curves = {}
    for name, path in zip(names, prediction_files):
        try:
            curves[name] = stratified_scores(read_predictions(path), agreements, thresholds, missing=missing)  # type: ignore[arg-type]
        except ValueError as exc:
            if type(exc) is ValueError:  # RecordError already names its file
                raise ValueError(f"{path}: {exc}") from None
            raise
    if plot_path:
        from analysis.plots import plot_gamma_curves

        plot_gamma_curves(curves, plot_path)
    rows = [dict(s.to_dict(), curve=name) for name, scores in curves.items() for s in scores]
    if fmt == "json":
        emit_json(rows)
        return
    emit_table(
        f"Scores by agreement threshold (agreement: {agreement_file})",
        ["curve", "γ", "n", "accuracy", "macro_f1"],
        [[r["curve"], f"{r['gamma']:g}", r["n"], r["accuracy"], r["macro_f1"]] for r in rows],
    )


def _names(paths: tuple[str, ...]) -> list[str]:
    """Curve names from file names: the stem, or the full path where stems collide."""
    stems = [Path(p).stem for p in paths]
    return stems if len(set(stems)) == len(stems) else list(paths)


def _correlate(scores_file: str, gaps_file: str, orientation: str, fmt: str, plot_path: str | None) -> None:
    from analysis.correlation import correlate, read_task_values

    result = correlate(read_task_values(scores_file, "score"), read_task_values(gaps_file, "gap"), orientation=orientation)  # type: ignore[arg-type]
    if plot_path:
        from analysis.plots import plot_gap_vs_subjectivity

        plot_gap_vs_subjectivity(result, plot_path)
    if fmt == "json":
        emit_json(result.to_dict())
        return
    emit_table(
        f"Gap vs {orientation} over {result.n} tasks (paper's finding predicts a {result.expected_sign} correlation)",
        ["statistic", "value", "p-value"],
        [["Spearman ρ", result.spearman_rho, f"{result.spearman_p:.3g}"], ["Kendall τ", result.kendall_tau, f"{result.kendall_p:.3g}"]],
    )
    emit_table(
        "Tasks",
        ["task", f"{orientation} score", "gap"],
        [[t, x, y] for t, x, y in sorted(zip(result.tasks, result.scores, result.gaps), key=lambda r: -r[1])],
    )
    left_out = result.only_in_scores + result.only_in_gaps
    if left_out:
        click.echo(f"note: left out (score or gap missing): {', '.join(left_out)}", err=True)
