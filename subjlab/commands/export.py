"""`subjlab export generated|labels|judgments`: outputs as Hugging Face `datasets` datasets with a card
(the conversion is subjlab.export.dataset's; this module parses arguments and prints what was written)."""

from __future__ import annotations

from pathlib import Path

import click

from subjlab.commands._output import FORMAT_OPTION, emit_json, emit_table
from subjlab.commands._study_data import EXCLUSION_RULE_OPTIONS, STUDY_SOURCE_OPTIONS, apply_options, check_study_options
from subjlab.export.provenance import HUB_LICENCES

_COMMON = [
    click.option("--out", "out", required=True, type=click.Path(file_okay=False),
                 help="Folder to write (README.md card, subjlab_export.json, a folder per config with the "
                      "save_to_disk dataset and <split>.parquet)."),
    click.option("--license", "licence", type=click.Choice(HUB_LICENCES), default=None,
                 help="Licence id in the card's metadata (a Hugging Face Hub id) [default: generated sets: the "
                      "licence of the real data few-shot demonstrations came from, else unknown; crowd: unknown]."),
    click.option("--title", default=None, help="The card's title (pretty_name) [default: from the contents]."),
    click.option("--force", is_flag=True, help="Replace OUT if it exists and is not empty."),
    FORMAT_OPTION,
]


@click.group(context_settings={"max_content_width": 100})
def export() -> None:
    """Write generated sets or crowd records as Hugging Face datasets others can load.

    Each export is a folder: README.md (a dataset card whose YAML metadata the Hub reads: license,
    task_categories, configs and their parquet files per split; then the provenance in prose),
    subjlab_export.json (the same provenance, machine-readable), and per config a DatasetDict saved
    with save_to_disk beside one parquet file per split. Upload the folder as a Hub dataset repository
    as it is, or load it with datasets.load_from_disk / load_dataset("parquet", ...). Nothing is
    downloaded or uploaded.
    """


@export.command("generated")
@click.argument("sets", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True), metavar="SET.jsonl...")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Few-shot sets: the data directory the demonstrations came from [default: the data_dir the run "
                   "recorded, else $SUBJLAB_DATA, else the slices bundled with subjlab]. Its licence goes in the card.")
@click.option("--tasks-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="TOML/YAML task file defining tasks of the sets that are not in the registry.")
@apply_options(_COMMON)
def export_generated_cmd(sets: tuple[str, ...], data_dir: str | None, tasks_file: str | None, out: str,
                         licence: str | None, title: str | None, force: bool, fmt: str) -> None:
    """Export sets written by `subjlab generate` (each with its SET.jsonl.summary.json) as one dataset.

    One config per task, named for the task's data folder, split `train`; `label` is a ClassLabel of the
    task's labels and every field of the records is kept (prompt_hash, demonstration_ids, conversation,
    ...). The card carries the provenance: task, mode, model and backend, settings, prompt hashes, the
    run's filter counts, and for few-shot sets the real data the demonstrations came from (checked by
    their ids) with its licence and attribution. OUT then works as task data: `--data OUT`.

    \b
    Examples:
      subjlab export generated spam.jsonl --out spam_synthetic/
      subjlab export generated fpb_fewshot.jsonl humor_fewshot.jsonl --out synthetic/ --data ../shared/datasets
      subjlab train --task sms_spam --data spam_synthetic/ --train real --eval real_test.jsonl --out run/
    """
    from generation.engine import summary_path
    from subjlab.export.dataset import export_generated
    from subjlab.tasks import load_task_file

    tasks = {spec.name: spec for spec in load_task_file(tasks_file)} if tasks_file else None
    written, provenances, chosen = export_generated([(s, summary_path(s)) for s in sets], out, data_dir=data_dir,
                                                    licence=licence, title=title, tasks=tasks, force=force)
    warnings = [f"{p.config}: {w}" for p in provenances for w in p.warnings]
    _report(written.to_dict(), chosen, warnings, fmt)


def _crowd_command(kind: str, study_kind: str, reader: str, example: str) -> click.Command:
    @click.argument("records_file", metavar=f"[{kind.upper()}]", required=False, type=click.Path(dir_okay=False, exists=True))
    @apply_options(STUDY_SOURCE_OPTIONS + EXCLUSION_RULE_OPTIONS + _COMMON)
    def command(records_file: str | None, study: str | None, db_url: str | None, exclude_flagged: bool, out: str,
                licence: str | None, title: str | None, force: bool, fmt: str, **thresholds) -> None:
        from subjlab import records as record_files
        from subjlab.export.dataset import export_crowd
        from subjlab.export.provenance import file_sha256

        if (records_file is None) == (study is None):
            raise click.UsageError(f"give either a {kind.upper()} file or --study NAME (not both)")
        check_study_options(study, db_url, exclude_flagged, thresholds)
        excluded = None
        if study is not None:
            from sqlalchemy.engine import make_url

            from subjlab.commands._study_data import excluded_json, read_study, resolve_db_url

            data = read_study(study_kind, study, db_url, exclude_flagged, thresholds)
            records, excluded = data.records, excluded_json(data)
            source = f"study {study!r} in {make_url(resolve_db_url(db_url)).render_as_string(hide_password=True)}"
        else:
            records = getattr(record_files, reader)(records_file)
            source = f"file {Path(records_file).name} (sha256 {file_sha256(records_file)})"
        written, chosen = export_crowd(kind, records, source, out, excluded=excluded, licence=licence, title=title,
                                       force=force)
        _report(written.to_dict(), chosen, [], fmt)

    command.__doc__ = f"""Export crowd {kind} (a `subjlab study export` file, or --study NAME) as a dataset.

    One config `{kind}`, split `train`, a row per record with every field kept. The card says where the
    records came from (file and sha256, or study and database), how many workers and
    {"items" if kind == "labels" else "tasks"}, and, with --study, which workers the exclusion rules
    flag and whether they were left out (--exclude-flagged).

    \b
    Example:
      {example}
    """
    return export.command(kind)(command)


export_labels_cmd = _crowd_command("labels", "labeling", "read_labels",
                                   "subjlab export labels --study sms-labels --db sqlite:///subjlab.db --out sms_labels/")
export_judgments_cmd = _crowd_command("judgments", "pairwise", "read_judgments",
                                      "subjlab export judgments judgments.jsonl --out objectivity_judgments/")


def _report(written: dict, licence, warnings: list[str], fmt: str) -> None:
    if fmt == "json":
        emit_json({**written, "licence": {"hub_id": licence.hub_id, "name": licence.name}, "warnings": warnings})
        return
    rows = [[name, split, n, f"{name}/{split}.parquet, {name}/{split}/"]
            for name, c in written["configs"].items() for split, n in c["splits"].items()]
    emit_table(f"{written['out']}: README.md card, licence {licence.hub_id}",
               ["config", "split", "rows", "files"], rows)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
