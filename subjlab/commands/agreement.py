"""`subjlab agreement`: per-instance annotation agreement and dataset reliability of crowd labels, or of
a dataset's own human annotations (per-item ratings, documented agreement levels)."""

from __future__ import annotations

import json
from collections import Counter

import click

from subjlab.commands._output import emit_json, emit_table
from subjlab.commands._study_data import EXCLUSION_RULE_OPTIONS, STUDY_SOURCE_OPTIONS, apply_options, check_study_options


@click.command()
@click.argument("labels_file", metavar="[LABELS]", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--from-data",
    "from_data",
    metavar="TASK:SPLIT",
    default=None,
    help="Instead of a LABELS file, the human annotations a task's split carries: per-item 'ratings' "
    "(several labels per example, e.g. tweet_sarcasm:test; treated exactly like crowd labels) or a "
    "documented agreement level (financial_phrasebank: '100'->1.0, '75'->0.75, '66'->2/3, '50'->0.5). "
    "Items are the example ids training uses.",
)
@click.option(
    "--phrasebank",
    "phrasebank_split",
    type=click.Choice(["train", "test"]),
    default=None,
    help="Alias of --from-data financial_phrasebank:SPLIT (Financial PhraseBank's shipped agreement levels).",
)
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Data directory for --from-data / --phrasebank [default: $SUBJLAB_DATA, else the bundled data].")
@click.option(
    "--task",
    "task_name",
    default=None,
    help="Registry task (or task file) whose label order breaks ties in the majority label "
    "[default: alphabetical order].",
)
@click.option(
    "--duplicates",
    type=click.Choice(["last", "error"]),
    default="last",
    show_default=True,
    help="A worker who labeled the same item twice: keep that worker's last label (file order), or stop with an error.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "jsonl"]),
    default="table",
    show_default=True,
    help="table: summary and distribution; json: the full report; jsonl: one {\"item\", \"agreement\"} "
    "line per item (the --agreement input of `subjlab evaluate`).",
)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Also write a histogram of agreement to this PNG.")
@apply_options(STUDY_SOURCE_OPTIONS + EXCLUSION_RULE_OPTIONS)
def agreement(
    labels_file: str | None,
    from_data: str | None,
    phrasebank_split: str | None,
    data_dir: str | None,
    task_name: str | None,
    duplicates: str,
    fmt: str,
    plot_path: str | None,
    study: str | None,
    db_url: str | None,
    exclude_flagged: bool,
    **thresholds: float | int | None,
) -> None:
    """Per-item agreement of crowd labels, with Fleiss' kappa and Krippendorff's alpha.

    LABELS is JSON Lines (or CSV) of {"item", "worker", "label"}. For each item:
    agreement a_i = share of the majority label, the majority label and the number of labels.
    Ties take the tied label that comes first in --task's label order (else alphabetically) and are
    flagged "tie": true. Items with one label are kept (agreement 1.0, "single": true). Dataset:
    mean agreement (all items; mean_agreement_multi leaves single-label items out), Fleiss' kappa
    (only when every item has the same number of labels >= 2, else null with a note) and
    Krippendorff's alpha (nominal, any number of labels per item).

    --study NAME reads the labels of a labeling study straight from the annotation server's database
    (--db); gold items and attention checks are never part of them. --exclude-flagged leaves out the
    labels of the workers the exclusion rules flag (more failed attention checks than
    --max-failed-attention, gold accuracy below --min-gold, median time per unit below --min-seconds;
    optionally agreement below --min-agreement) and reports how many labels were excluded and why
    (table output, the "excluded" key of --format json, stderr with jsonl).

    \b
    Examples:
      subjlab agreement labels.jsonl
      subjlab agreement labels.jsonl --format jsonl > agreement.jsonl
      subjlab agreement --from-data tweet_sarcasm:test
      subjlab agreement --phrasebank test --format jsonl > fpb_agreement.jsonl
      subjlab agreement --study spam-labels --db sqlite:///study.db --exclude-flagged
      subjlab agreement --study spam-labels --exclude-flagged --min-seconds 1 --format json
    """
    sources = [labels_file is not None, from_data is not None, phrasebank_split is not None, study is not None]
    if sum(sources) != 1:
        raise click.UsageError("give exactly one of a LABELS file, --from-data TASK:SPLIT, --phrasebank SPLIT or --study NAME")
    check_study_options(study, db_url, exclude_flagged, thresholds)
    if phrasebank_split is not None:
        from_data = f"financial_phrasebank:{phrasebank_split}"
    if from_data is not None:
        if task_name:
            raise click.UsageError("--task is implied by --from-data TASK:SPLIT (its label order breaks ties)")
        _from_data(from_data, data_dir, fmt, plot_path)
        return

    from analysis.agreement import AgreementAnalyzer

    label_order = None
    if task_name:
        from subjlab.tasks import get_task

        label_order = list(get_task(task_name).labels)
    study_data = None
    if study is not None:
        from subjlab.commands._study_data import read_study

        study_data = read_study("labeling", study, db_url, exclude_flagged, thresholds)
        labels = study_data.records
        source = f"study {study}"
    else:
        from subjlab.records import read_labels

        labels = read_labels(labels_file)
        source = str(labels_file)
    analyzer = AgreementAnalyzer(label_order=label_order, duplicates=duplicates).fit(labels)  # type: ignore[arg-type]
    _emit_report(analyzer.report_, analyzer.agreements(), source, fmt, plot_path, study_data=study_data,
                 study=study)


def _emit_report(report, agreements, source: str, fmt: str, plot_path: str | None, study_data=None,
                 study: str | None = None, extra_json: dict | None = None, extra_rows: list | None = None) -> None:
    """Print an AgreementReport as a table, JSON or JSONL (and draw its histogram)."""
    if plot_path:
        from analysis.plots import plot_agreement_hist

        plot_agreement_hist([it.agreement for it in report.items], plot_path, title=f"Agreement of {source}")
    if fmt == "jsonl":
        for rec in agreements:
            click.echo(json.dumps({"item": rec.item, "agreement": rec.agreement}, ensure_ascii=False))
        if study_data is not None:
            from subjlab.commands._study_data import echo_exclusion

            echo_exclusion(study_data, err=True)
        return
    if fmt == "json":
        out = report.to_dict()
        out.update(extra_json or {})
        if study_data is not None:
            from subjlab.commands._study_data import excluded_json

            out["study"] = study
            out["excluded"] = excluded_json(study_data)
        emit_json(out)
        return
    summary = [
        ["items", report.n_items],
        ["labels", report.n_labels],
        ["workers", report.n_workers],
        ["categories", ", ".join(report.categories)],
        ["mean agreement", report.mean_agreement],
        ["mean agreement (items with >= 2 labels)", report.mean_agreement_multi],
        ["Fleiss' kappa", report.fleiss_kappa if report.fleiss_kappa is not None else f"- ({report.fleiss_kappa_note})"],
        [
            "Krippendorff's alpha (nominal)",
            report.krippendorff_alpha if report.krippendorff_alpha is not None else f"- ({report.krippendorff_alpha_note})",
        ],
        ["items with a tie", report.n_ties],
        ["items with a single label", report.n_single_label],
        ["duplicate labels replaced", report.n_duplicates_replaced],
    ] + (extra_rows or [])
    emit_table(f"Agreement of {source}", ["statistic", "value"], summary)
    n_labels = Counter(it.n_labels for it in report.items)
    emit_table(
        "Items per agreement value",
        ["agreement", "items", "share"],
        [[f"{a:.3f}", c, c / report.n_items] for a, c in report.distribution()],
    )
    emit_table("Items per number of labels", ["labels", "items"], [[k, n_labels[k]] for k in sorted(n_labels)])
    if study_data is not None:
        from subjlab.commands._study_data import echo_exclusion

        echo_exclusion(study_data)


def _from_data(spec: str, data_dir: str | None, fmt: str, plot_path: str | None) -> None:
    """Agreement from the annotations a task's split carries (ratings, or documented levels)."""
    from analysis.data_agreement import data_agreement
    from subjlab.data import load_split
    from subjlab.tasks import get_task

    task_name, sep, split = spec.rpartition(":")
    if not sep or not task_name or split not in ("train", "test"):
        raise click.BadParameter(f"{spec!r}: expected TASK:SPLIT with SPLIT train or test, e.g. tweet_sarcasm:test",
                                 param_hint="--from-data")
    task = get_task(task_name)
    examples = load_split(task, split, data_dir)
    result = data_agreement(examples, task)
    if result.kind == "levels":
        _levels(result, examples, split, fmt, plot_path)
        return
    _emit_report(
        result.report, result.agreements, f"{task.name} {split} (the dataset's ratings; workers = rating positions)", fmt, plot_path,
        extra_json={"from_data": f"{task.name}:{split}", "majority_matches_gold": result.majority_matches_gold},
        extra_rows=[["majority rating = the split's gold label", result.majority_matches_gold]],
    )


def _levels(result, examples, split: str, fmt: str, plot_path: str | None) -> None:
    """Agreement records from a dataset's documented levels (no per-rater labels exist)."""
    levels = result.levels
    records = result.agreements
    if plot_path:
        from analysis.plots import plot_agreement_hist

        plot_agreement_hist([r.agreement for r in records], plot_path, title=f"{levels.title} {split}")
    if fmt == "jsonl":
        for rec in records:
            click.echo(json.dumps({"item": rec.item, "agreement": rec.agreement}, ensure_ascii=False))
        return
    mean = sum(r.agreement for r in records) / len(records)
    if fmt == "json":
        note = f"{levels.title} ships agreement levels, not per-rater labels"
        emit_json(
            {
                "items": [
                    {"item": r.item, "agreement": r.agreement, "majority": ex.label, "n_labels": None,
                     "level": ex.extra[levels.field]}
                    for r, ex in zip(records, examples)
                ],
                "mean_agreement": mean,
                "fleiss_kappa": None,
                "fleiss_kappa_note": note,
                "krippendorff_alpha": None,
                "krippendorff_alpha_note": note,
                "n_items": len(records),
            }
        )
        return
    counts = Counter(str(ex.extra[levels.field]) for ex in examples)
    rows = [
        [lvl, levels.agreement(lvl), counts[lvl], counts[lvl] / len(records)]
        for lvl in sorted(counts, key=levels.agreement, reverse=True)
    ]
    rows.append(["(all)", mean, len(records), 1.0])
    emit_table(f"{levels.title} {split}", ["level", "agreement", "items", "share"], rows)
