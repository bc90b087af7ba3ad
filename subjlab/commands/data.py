"""`subjlab data list` and `subjlab tasks`: what tasks exist and what data they have."""

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
    """Inspect task data."""


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
