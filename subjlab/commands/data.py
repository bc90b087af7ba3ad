"""`subjlab data list|path|fetch` and `subjlab tasks`: what tasks exist, what data they have, getting full data."""

from __future__ import annotations

import click

from subjlab.commands._output import FORMAT_OPTION, emit_json, emit_table

DATA_OPTION = click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Data directory holding <task>/train.jsonl and <task>/test.jsonl "
    "[default: $SUBJLAB_DATA, else the slices bundled with subjlab].",
)


@click.group()
def data() -> None:
    """Inspect task data, or fetch the full datasets from their public sources."""


@data.command("list")
@DATA_OPTION
@click.option("--task", "task_names", multiple=True, help="Only these tasks (registry key or task file); repeatable.")
@click.option("--tasks-file", type=click.Path(dir_okay=False, exists=True), help="Also list the tasks of this TOML/YAML file.")
@FORMAT_OPTION
def data_list(data_dir: str | None, task_names: tuple[str, ...], tasks_file: str | None, fmt: str) -> None:
    """Show each task's example counts per split and label.

    Example: subjlab data list --task sms_spam --task humor
    """
    from subjlab.data import SPLITS, count_split, data_source, resolve_data_dir
    from subjlab.tasks import REGISTRY, get_task, load_task_file

    root = resolve_data_dir(data_dir)
    specs = [get_task(n) for n in task_names] if task_names else list(REGISTRY.values())
    if tasks_file:
        specs += load_task_file(tasks_file)
    result = []
    for spec in specs:
        entry = {"task": spec.name, "labels": list(spec.labels)}
        for split in SPLITS:
            try:
                c = count_split(spec, split, root)
                entry[split] = {"total": c.total, "per_label": c.per_label}
            except FileNotFoundError:
                entry[split] = None
        result.append(entry)
    if fmt == "json":
        emit_json({"data_dir": str(root), "tasks": result})
        return
    rows = []
    for e in result:
        for lab in e["labels"]:
            rows.append([e["task"], lab] + [e[s]["per_label"][lab] if e[s] else "missing" for s in SPLITS])
        rows.append([e["task"], "(total)"] + [e[s]["total"] if e[s] else "missing" for s in SPLITS])
    emit_table(f"Tasks in {data_source(data_dir)}", ["task", "label", *SPLITS], rows)


@data.command("path")
@click.argument("task", required=False)
@click.argument("split", required=False, type=click.Choice(["train", "test"]))
@DATA_OPTION
def data_path(task: str | None, split: str | None, data_dir: str | None) -> None:
    """Print where the data is: the data directory in use, or TASK's split file.

    The data directory is --data, else $SUBJLAB_DATA, else the slices bundled with subjlab; the path
    is printed alone on stdout (which one was picked and why goes to stderr), for use in scripts.

    \b
    Examples:
      subjlab data path                      # the data directory in use
      subjlab data path sms_spam train       # that split's file
      head -n 200 "$(subjlab data path sms_spam train)" > sms_train200.jsonl
    """
    from subjlab.data import data_source, resolve_data_dir, split_path
    from subjlab.tasks import get_task

    root = resolve_data_dir(data_dir)
    click.echo(f"data: {data_source(data_dir)}", err=True)
    if task is None:
        if split is not None:
            raise click.UsageError("give a TASK before the SPLIT")
        click.echo(str(root))
        return
    spec = get_task(task)
    click.echo(str(split_path(spec, split, data_dir)) if split else str(root / spec.name))


@data.command("fetch")
@click.argument("tasks", nargs=-1, metavar="TASK...")
@click.option("--all", "all_tasks", is_flag=True, help="Every fetchable task: the paper's ten and tweet_sarcasm.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Data directory to write <task>/train.jsonl, test.jsonl and provenance.json into "
                   "(then pass it as --data or $SUBJLAB_DATA).")
@click.option("--source-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Read the source files from SAVED/<task>/<name> instead of downloading (offline). "
                   "docs/data.md lists every file and URL.")
@click.option("--keep-sources", type=click.Path(file_okay=False), default=None,
              help="Keep downloaded source files here (same layout as --source-dir) and reuse them next time.")
@click.option("--mirror", envvar="SUBJLAB_SOURCES_MIRROR", default=None, metavar="URL",
              help="Download from URL/<task>/<name> (a server of the --source-dir layout) instead of the public "
                   "sources [env: SUBJLAB_SOURCES_MIRROR].")
@click.option("--max-train-per-label", type=click.IntRange(min=1), default=None,
              help="Keep at most N training rows per label [default: all].")
@click.option("--max-test-per-label", type=click.IntRange(min=1), default=None,
              help="Keep at most N test rows per label [default: all the split rule holds out].")
@click.option("--seed", type=int, default=None,
              help="Seed of every random choice [default: 20231207, the development subsets' seed].")
@click.option("--force", is_flag=True, help="Replace task folders that already exist.")
@click.option("--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Seconds without data before a download is given up.")
def data_fetch(tasks: tuple[str, ...], all_tasks: bool, out_dir: str, source_dir: str | None,
               keep_sources: str | None, mirror: str | None, max_train_per_label: int | None,
               max_test_per_label: int | None, seed: int | None, force: bool, timeout: float) -> None:
    """Download the full data of TASKs from their public sources and write them in subjlab's layout.

    Every source file is pinned by repository commit and content hash, checked before use; each task
    gets <out>/<task>/train.jsonl and test.jsonl (text, label and the task's fields; the rules of the
    development subsets: dedup, train/test split where the source has none, seeded choices) and
    provenance.json (URLs, commits, sha256 of every file, licence text, split rule, counts). A task
    already fetched with the same settings is skipped. Nothing half-written is left by a failure.
    About 150 MB are downloaded for --all (IMDB's archive is 84 MB); docs/data.md lists every file.

    \b
    Examples:
      subjlab data fetch --all --out data/
      subjlab data fetch sms_spam humor --out data/ --source-dir saved/   # offline, from saved copies
      subjlab data fetch imdb --out data/ --max-train-per-label 1000 --max-test-per-label 500
    """
    from pathlib import Path

    from subjlab.sources.draw import DrawSettings
    from subjlab.sources.fetch import FetchError, FetchOptions, fetch_task
    from subjlab.sources.parsers import SourceFormatError
    from subjlab.sources.registry import DEFAULT_SEED, SOURCES

    if all_tasks == bool(tasks):
        raise click.UsageError("name TASKs or pass --all (not both)")
    unknown = [t for t in tasks if t not in SOURCES]
    if unknown:
        raise click.BadParameter(f"unknown task(s) {', '.join(unknown)}; fetchable: {', '.join(SOURCES)}",
                                 param_hint="TASK")
    if source_dir and (mirror or keep_sources):
        raise click.UsageError("--source-dir reads local files: it does not combine with --mirror or --keep-sources")
    opts = FetchOptions(
        out=Path(out_dir),
        settings=DrawSettings(seed=DEFAULT_SEED if seed is None else seed, max_train_per_label=max_train_per_label,
                              max_test_per_label=max_test_per_label),
        source_dir=Path(source_dir) if source_dir else None, mirror=mirror,
        keep_sources=Path(keep_sources) if keep_sources else None, force=force, timeout=timeout)
    echo = lambda line: click.echo(line, err=True)  # noqa: E731 - progress on stderr, results on stdout
    failed = []
    for task in (list(SOURCES) if all_tasks else dict.fromkeys(tasks)):
        try:
            result = fetch_task(task, opts, echo)
        except (FetchError, SourceFormatError) as exc:
            failed.append(task)
            click.echo(f"error: {task}: {exc}", err=True)
            continue
        counts = ", ".join(f"{name} {n}" for name, n in result.counts.items())
        click.echo(f"{task}: {result.status} {result.folder}" + (f" ({counts})" if counts else ""))
    if failed:
        raise click.ClickException(f"{len(failed)} task(s) failed: {', '.join(failed)} (nothing was written for them)")


@click.command()
@click.argument("task", required=False)
@FORMAT_OPTION
def tasks(task: str | None, fmt: str) -> None:
    """List the registry's tasks, or show one task (registry key or .toml/.yaml file) in full.

    The registry holds the paper's ten tasks and extra ones that are not the paper's (the "set" column
    says which). A task file is validated on the way: a bad file gets an error naming the file and field.

    Example: subjlab tasks my_task.toml --format json
    """
    from subjlab.tasks import PAPER_TASKS, REGISTRY, get_task

    if task:
        spec = get_task(task)
        if fmt == "json":
            emit_json(spec.to_dict())
        else:
            d = spec.to_dict()
            emit_table(spec.title, ["field", "value"], [[k, v] for k, v in d.items()])
        return
    if fmt == "json":
        emit_json([s.to_dict() for s in REGISTRY.values()])
        return
    emit_table("Task registry", ["task", "title", "labels", "set"],
               [[s.name, s.title, ", ".join(s.labels), "paper" if s.name in PAPER_TASKS else "extra (not one of the paper's ten)"]
                for s in REGISTRY.values()])
