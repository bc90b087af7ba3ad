"""`subjlab serve`, `subjlab study ...` and `subjlab db ...`: run the annotation server, manage studies, migrate.

Argument parsing and output only; the work is done by `annotation_server`.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click

from subjlab.commands._database import database_url, db_option, open_session, shown
from subjlab.commands._output import FORMAT_OPTION, emit_json, emit_table

DB_OPTION = db_option()


# --------------------------------------------------------------------------------------------- serve
@click.command()
@DB_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0 = every interface).")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 256), help="gunicorn worker processes.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 256),
              help="Threads per worker (gthread); each process keeps this many database connections (twice under bursts).")
@click.option("--lease-seconds", type=click.FloatRange(min=0.001), default=None,
              help="How long an assignment stays reserved for its worker [default: $SUBJLAB_LEASE_SECONDS, else 600].")
@click.option("--migrate/--no-migrate", default=True, show_default=True,
              help="Upgrade the database schema (Alembic) before starting.")
def serve(db_url: str | None, host: str, port: int, workers: int, threads: int, lease_seconds: float | None, migrate: bool) -> None:
    """Run the annotation server with gunicorn (never Flask's debug server).

    Worker pages are at /study/NAME, the admin dashboard at /admin, the JSON API at /api/v1
    (OpenAPI: /api/v1/openapi.json). Admin requests need SUBJLAB_ADMIN_TOKEN; if it is unset a token
    is generated and printed once. Browser sessions are signed with SUBJLAB_SECRET_KEY, else with a key
    generated once and kept in the instance folder ($SUBJLAB_INSTANCE_PATH, file secret_key, mode 0600),
    shared by every worker process and kept across restarts.

    Example: subjlab serve --db postgresql://postgres@127.0.0.1:5432/subjlab --workers 4
    """
    from annotation_server.schema import upgrade
    from annotation_server.wsgi import run_gunicorn

    url = database_url(db_url)
    if migrate:
        revision = upgrade(url)
        click.echo(f"database {shown(url)} at schema revision {revision}", err=True)
    token = os.environ.get("SUBJLAB_ADMIN_TOKEN")
    if not token:
        token = secrets.token_urlsafe(24)
        click.echo(f"admin token (generated; set SUBJLAB_ADMIN_TOKEN to choose one): {token}")
        sys.stdout.flush()
    # two pools per process (the worker hot path's autocommit pool and the general one), each sized to the
    # request threads, which hold one connection at a time: at most workers x 2 x threads connections
    # open, e.g. 2 x 2 x 8 = 32, well below PostgreSQL's default max_connections of 100
    config = {"DATABASE_URL": url, "ADMIN_TOKEN": token, "DB_POOL_SIZE": threads}
    from annotation_server.app import create_app

    create_app(dict(config, DB_POOL_SIZE=1)).extensions["subjlab"].dispose()  # settings and secret key checked once,
    # here, before gunicorn forks: a misconfiguration stops `serve` with its message instead of every worker
    if lease_seconds is not None:
        config["LEASE_SECONDS"] = lease_seconds
    click.echo(f"serving on http://{host}:{port}  (workers={workers}, threads={threads})", err=True)
    run_gunicorn(config, host=host, port=port, workers=workers, threads=threads)


# --------------------------------------------------------------------------------------------- db
@click.group()
def db() -> None:
    """Database schema migrations (Alembic). The schema is versioned; upgrade before serving."""


@db.command("upgrade")
@DB_OPTION
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(db_url: str | None, revision: str) -> None:
    """Create or migrate the database schema to the newest (or given) revision.

    Example: subjlab db upgrade --db sqlite:///study.db
    """
    from annotation_server.schema import upgrade

    url = database_url(db_url)
    click.echo(f"database {shown(url)} at schema revision {upgrade(url, revision)}")


@db.command("current")
@DB_OPTION
def db_current(db_url: str | None) -> None:
    """Show the database's schema revision and the newest one this version knows."""
    from annotation_server.db import make_engine
    from annotation_server.schema import current_revision, head_revision

    engine = make_engine(database_url(db_url), pool_size=1)
    try:
        click.echo(f"current: {current_revision(engine) or 'none (empty database)'}\nhead:    {head_revision()}")
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------- study
@click.group()
def study() -> None:
    """Create, fill, watch and export crowd studies (works directly on the database).

    A pairwise study compares tasks ("which classification is more objective?"); a labeling study
    has each item labeled by K distinct workers. Typical flow:

    \b
      subjlab db upgrade
      subjlab study create objectivity --kind pairwise
      subjlab study add objectivity --all-tasks
      subjlab serve                      # workers open http://HOST:PORT/study/objectivity
      subjlab study progress objectivity
      subjlab study export objectivity -o judgments.jsonl
    """


@study.command("create")
@click.argument("name")
@click.option("--kind", type=click.Choice(["pairwise", "labeling"]), required=True, help="Study kind.")
@click.option("--task", "task_name", default=None, help="labeling: the task (registry key or .toml/.yaml file).")
@click.option("--labels-per-item", type=int, default=None, help="labeling: distinct workers per item (K) [default 3].")
@click.option("--judgments-per-pair", type=int, default=None, help="pairwise: judgments per task pair [default 12].")
@click.option("--scheduler", type=click.Choice(["balanced", "active"]), default="balanced", show_default=True,
              help="pairwise: balanced random pairs, or active selection (analysis.pair_selection).")
@click.option("--examples-per-task", type=int, default=None, help="pairwise: example texts shown per task [default 3].")
@click.option("--max-per-worker", type=int, default=None, help="Cap of units per worker [default: no cap].")
@click.option("--gold-every", type=int, default=None, help="Every n-th unit is an attention check (needs gold items).")
@click.option("--title", default=None, help="Title shown to workers.")
@click.option("--require-signed-entry", is_flag=True,
              help="Web entry only through personal signed links (`subjlab study link`): nobody can start a "
                   "session under a worker id they were not given. MTurk and Prolific entry is refused then.")
@DB_OPTION
@FORMAT_OPTION
def study_create(name: str, kind: str, task_name: str | None, labels_per_item: int | None, judgments_per_pair: int | None,
                 scheduler: str, examples_per_task: int | None, max_per_worker: int | None, gold_every: int | None,
                 title: str | None, require_signed_entry: bool, db_url: str | None, fmt: str) -> None:
    """Create a study called NAME.

    Examples: subjlab study create objectivity --kind pairwise --judgments-per-pair 12
              subjlab study create irony-labels --kind labeling --task tweet_irony --labels-per-item 5
    """
    from annotation_server import studies

    task = studies.resolve_task(task_name, "--task", allow_files=True) if task_name else None
    with open_session(db_url, write=True) as db:
        s = studies.create_study(db, name=name, kind=kind, task=task, labels_per_item=labels_per_item,
                                 judgments_per_pair=judgments_per_pair, scheduler=scheduler if kind == "pairwise" else "balanced",
                                 examples_per_task=examples_per_task, max_per_worker=max_per_worker,
                                 gold_every=gold_every, title=title, require_signed_entry=require_signed_entry)
        out = studies.summary(db, s)
    _emit_summary(out, fmt, f"created study {name}")


@study.command("add")
@click.argument("name")
@click.option("--task", "task_names", multiple=True, help="pairwise: add this task (registry key or task file); repeatable.")
@click.option("--all-tasks", is_flag=True, help="pairwise: add every task of the registry (the paper's ten).")
@click.option("--examples", "examples_file", type=click.Path(dir_okay=False, exists=True),
              help="labeling: a JSONL/CSV file of {id, text, ...} to label (extra fields are kept).")
@click.option("--from-split", type=click.Choice(["train", "test"]), default=None,
              help="labeling: take items from the study task's real data split.")
@click.option("--limit-per-label", type=int, default=None, help="With --from-split: at most this many items per label.")
@click.option("--gold", "gold_file", type=click.Path(dir_okay=False, exists=True),
              help="Attention checks (JSONL): labeling {id, text, answer}; pairwise {left, right, answer}.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Data directory for example texts and --from-split [default: $SUBJLAB_DATA, else the slices bundled with subjlab].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for sampling example texts / items.")
@DB_OPTION
@FORMAT_OPTION
def study_add(name: str, task_names: tuple[str, ...], all_tasks: bool, examples_file: str | None, from_split: str | None,
              limit_per_label: int | None, gold_file: str | None, data_dir: str | None, seed: int, db_url: str | None, fmt: str) -> None:
    """Add work to study NAME: tasks to compare (pairwise), items to label (labeling), attention checks.

    Pairwise tasks get example texts sampled from their real training data (via subjlab.data) unless
    the task file lists `examples`. The bundled data covers sms_spam, financial_phrasebank, fewrel,
    reddit_emotion, humor and tweet_sarcasm; for the paper's ten (--all-tasks) fetch their data first
    (`subjlab data fetch --all --out data/`) and add `--data data/`.

    \b
    Examples: subjlab study add objectivity --task sms_spam --task humor --task tweet_sarcasm
              subjlab study add objectivity --all-tasks --data data/
              subjlab study add sarcasm-labels --from-split test --limit-per-label 50
              subjlab study add sarcasm-labels --examples my_items.jsonl --gold checks.jsonl
    """
    from annotation_server import studies, validation
    from subjlab.records import iter_rows, read_examples
    from subjlab.tasks import PAPER_TASKS, REGISTRY

    specs = [studies.resolve_task(t, "--task", allow_files=True) for t in task_names]
    if all_tasks:
        specs += [REGISTRY[n] for n in PAPER_TASKS if n not in {x.name for x in specs}]
    gold_rows = [row for _, row in iter_rows(gold_file)] if gold_file else []
    if not (specs or examples_file or from_split or gold_rows):
        raise click.UsageError("nothing to add: give --task/--all-tasks, --examples, --from-split or --gold")
    added: dict[str, int] = {}
    with open_session(db_url, write=True) as db:
        s = studies.get_study(db, name)
        if specs:
            added["tasks"] = studies.add_tasks(db, s, specs, data_dir=data_dir, seed=seed)
        examples = read_examples(examples_file) if examples_file else []
        if from_split:
            if s.kind != "labeling":
                raise ValueError(f"--from-split: study {name!r} is a pairwise study")
            from subjlab.data import load_split
            from subjlab.tasks import task_from_mapping

            spec = task_from_mapping(s.task_spec, f"study {name}")
            examples += load_split(spec, from_split, data_dir, limit_per_label=limit_per_label, seed=seed)
        if examples:
            for ex in examples:  # the ids become identifiers; check them like the API does
                validation.identifier(ex.id, f"example id {ex.id!r}", max_len=200)
            added["examples"] = studies.add_examples(db, s, examples)
        if gold_rows:
            added["gold"] = studies.add_gold(db, s, gold_rows)
        total = studies.count_units(db, s)
    if fmt == "json":
        emit_json({"study": name, "added": added, "units": total})
    else:
        click.echo(f"study {name}: added " + ", ".join(f"{n} {k}" for k, n in added.items()) + f"; {total} units in all")


@study.command("list")
@DB_OPTION
@FORMAT_OPTION
def study_list(db_url: str | None, fmt: str) -> None:
    """List the studies with their kind, status, units and answers."""
    from annotation_server import studies

    with open_session(db_url) as db:
        rows = studies.list_studies(db)
    if fmt == "json":
        emit_json(rows)
        return
    emit_table("Studies", ["name", "kind", "status", "task / scheduler", "units", "answers", "created"],
               [[r["name"], r["kind"], r["status"], r["task"] or r["scheduler"], r["units"], r["answers"], r["created_at"]] for r in rows])


@study.command("progress")
@click.argument("name")
@DB_OPTION
@FORMAT_OPTION
def study_progress(name: str, db_url: str | None, fmt: str) -> None:
    """Show how far study NAME has come: answers, leases, complete units, workers, position bias."""
    from annotation_server.clock import utcnow
    from annotation_server.progress import study_progress as compute

    with open_session(db_url) as db:
        p = compute(db, name, utcnow())
    if fmt == "json":
        emit_json(p)
        return
    rows = [[k, v] for k, v in p.items() if not isinstance(v, dict)]
    rows += [[f"{k}.{kk}", vv] for k, v in p.items() if isinstance(v, dict) for kk, vv in v.items()]
    emit_table(f"Progress of {name}", ["measure", "value"], rows)


@study.command("export")
@click.argument("name")
@click.option("--what", type=click.Choice(["auto", "judgments", "labels"]), default="auto", show_default=True,
              help="judgments (pairwise) or labels (labeling); auto picks by the study kind.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write JSONL here (atomic) instead of stdout.")
@click.option("--include-unconfirmed", is_flag=True,
              help="Also the answers of sessions a crowd platform did not confirm (`subjlab mturk review` "
                   "lists them with the reason); left out by default.")
@DB_OPTION
def study_export(name: str, what: str, output: str | None, include_unconfirmed: bool, db_url: str | None) -> None:
    """Export the answers of study NAME as JSON Lines (DESIGN.md record shapes).

    Example: subjlab study export objectivity -o judgments.jsonl && subjlab rank judgments.jsonl
    """
    import json

    from annotation_server import studies
    from annotation_server.export import export_records
    from subjlab.records import write_records

    with open_session(db_url) as db:
        if what == "auto":
            what = "labels" if studies.get_study(db, name).kind == "labeling" else "judgments"
        records = export_records(db, name, what, include_unconfirmed)
    if output:
        n = write_records(Path(output), records)
        click.echo(f"wrote {n} {what} to {output}", err=True)
        return
    for r in records:
        click.echo(json.dumps(r.to_dict(), ensure_ascii=False))


@study.command("link")
@click.argument("name")
@click.option("--worker", "workers", multiple=True, metavar="ID", help="Worker id to make a link for; repeatable.")
@click.option("--workers-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A file of worker ids, one a line (blank lines and lines starting with # are skipped).")
@click.option("--url", "base_url", required=True, metavar="URL",
              help="The server's public base URL, e.g. https://study.example.org")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write a CSV (worker_id,url) here (atomic) instead of printing the links.")
@DB_OPTION
def study_link(name: str, workers: tuple[str, ...], workers_file: str | None, base_url: str, output: str | None,
               db_url: str | None) -> None:
    """Print each worker's personal signed link to study NAME (or write them all to a CSV with -o).

    The worker id in the link is signed (HMAC) with the study's own secret, kept in the database: a study
    created with --require-signed-entry accepts only such links, so nobody can take part under a worker id
    they were not sent.

    \b
    Examples: subjlab study link irony-labels --worker W17 --url https://study.example.org
              subjlab study link irony-labels --workers-file ids.txt --url https://study.example.org -o links.csv
    """
    from annotation_server import studies
    from annotation_server.entry import entry_link
    from subjlab.records import write_records

    ids = [("--worker", w) for w in workers]  # (where it came from, worker id)
    if workers_file:
        for number, line in enumerate(Path(workers_file).read_text(encoding="utf-8").splitlines(), start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                ids.append((f"{workers_file}, line {number}", line))
    if not ids:
        raise click.UsageError("give --worker ID (repeatable) or --workers-file FILE")
    if output and Path(output).suffix.lower() != ".csv":
        raise click.UsageError(f"--output {output}: the links file is a CSV, name it *.csv")
    with open_session(db_url) as db:
        s = studies.get_study(db, name)
        links = []
        for where, worker in ids:
            try:
                links.append(entry_link(base_url, s.name, s.signing_secret, worker))
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
    if output:
        write_records(Path(output), [{"worker_id": link.worker_id, "url": link.url} for link in links])
        click.echo(f"wrote {len(links)} signed links to {output}", err=True)
        return
    for link in links:
        click.echo(link.url)


@study.command("close")
@click.argument("name")
@DB_OPTION
def study_close(name: str, db_url: str | None) -> None:
    """Close study NAME: no new sessions, and workers get no new assignments."""
    from annotation_server import studies

    with open_session(db_url, write=True) as db:
        s = studies.close_study(db, name)
        click.echo(f"study {s.name} closed ({studies.count_answers(db, s)} answers)")


def _emit_summary(summary: dict, fmt: str, title: str) -> None:
    if fmt == "json":
        emit_json(summary)
    else:
        emit_table(title, ["field", "value"], [[k, v] for k, v in summary.items()])
