"""`subjlab db`, `subjlab study` on a real database file (and the serve command's help)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from subjlab.cli import cli
from subjlab.records import read_labels


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_study_lifecycle_from_the_command_line(tmp_path, task_data):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert "schema revision" in run("db", "upgrade", "--db", db).output
    out = json.loads(run("study", "create", "irony", "--kind", "labeling", "--task", "tweet_sarcasm",
                         "--labels-per-item", "1", "--db", db, "--format", "json").output)
    assert out["kind"] == "labeling" and out["labels_per_item"] == 1
    added = json.loads(run("study", "add", "irony", "--from-split", "test", "--limit-per-label", "2",
                           "--data", str(task_data), "--db", db, "--format", "json").output)
    assert added == {"study": "irony", "added": {"examples": 4}, "units": 4}
    run("study", "create", "obj", "--kind", "pairwise", "--judgments-per-pair", "2", "--db", db)
    text = run("study", "add", "obj", "--task", "sms_spam", "--task", "humor", "--data", str(task_data), "--db", db).output
    assert "added 2 tasks; 1 units" in text
    listed = json.loads(run("study", "list", "--db", db, "--format", "json").output)
    assert [(s["name"], s["units"]) for s in listed] == [("irony", 4), ("obj", 1)]

    # a worker answers through the app on the same database; the CLI sees it
    from annotation_server.app import create_app

    app = create_app({"DATABASE_URL": db, "ADMIN_TOKEN": "t"})
    c = app.test_client()
    token = c.post("/api/v1/studies/irony/sessions", json={"worker_id": "w1"}).get_json()["token"]
    a = c.get("/api/v1/studies/irony/next", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert c.post(f"/api/v1/assignments/{a['assignment']}", json={"label": "sarcastic"},
                  headers={"Authorization": f"Bearer {token}"}).status_code == 201
    progress = json.loads(run("study", "progress", "irony", "--db", db, "--format", "json").output)
    assert progress["answered"] == 1 and progress["workers"] == 1
    out_file = tmp_path / "labels.jsonl"
    run("study", "export", "irony", "-o", str(out_file), "--db", db)
    labels = read_labels(out_file)
    assert [(x.extra["assignment"], x.worker, x.label) for x in labels] == [(a["assignment"], "w1", "sarcastic")]
    assert "closed" in run("study", "close", "irony", "--db", db).output
    assert json.loads(run("study", "list", "--db", db, "--format", "json").output)[0]["status"] == "closed"


def test_study_commands_on_an_unmigrated_database_say_how_to_fix_it(tmp_path):
    result = run("study", "list", "--db", f"sqlite:///{tmp_path / 'new.db'}", ok=False)
    assert result.exit_code == 2 and "subjlab db upgrade" in result.output


def test_bad_study_options_are_reported_without_traceback(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    run("db", "upgrade", "--db", db)
    r = run("study", "create", "bad name!", "--kind", "pairwise", "--db", db, ok=False)
    assert r.exit_code == 2 and "not a valid study name" in r.output and "Traceback" not in r.output
    r = run("study", "create", "lab", "--kind", "labeling", "--db", db, ok=False)
    assert r.exit_code == 2 and "needs 'task'" in r.output
    r = run("study", "add", "ghost", "--all-tasks", "--db", db, ok=False)
    assert r.exit_code == 2 and "unknown study" in r.output


def test_adding_tasks_without_their_data_names_every_missing_task_and_how_to_fetch_it(tmp_path, task_data, db_rows):
    """A fresh clone bundles four tasks' data: `--all-tasks` (the paper's ten) stops before writing
    anything and names every task whose data must be fetched first, not just the first one."""
    path = tmp_path / "x.db"
    db = f"sqlite:///{path}"
    run("db", "upgrade", "--db", db)
    run("study", "create", "obj", "--kind", "pairwise", "--db", db)
    from annotation_server.app import create_app

    app = create_app({"DATABASE_URL": db, "ADMIN_TOKEN": "t"})  # to read every row (`db_rows`)
    before = db_rows(app)
    r = run("study", "add", "obj", "--all-tasks", "--data", str(task_data), "--db", db, ok=False)
    assert r.exit_code == 2 and "Traceback" not in r.output
    message = " ".join(r.output.split())
    bundled = {d.name for d in task_data.iterdir() if (d / "train.jsonl").is_file()}
    paper = ["ag_news", "imdb", "sms_spam", "financial_phrasebank", "reddit_emotion", "fewrel", "tweet_irony",
             "tweet_emotion", "sarcasm_news", "humor"]
    missing = [t for t in paper if t not in bundled]
    assert missing and "sms_spam" in bundled
    assert f"tasks {', '.join(repr(t) for t in missing)} have no example texts" in message
    assert "'sms_spam'" not in message
    assert f"subjlab data fetch {' '.join(missing)} --out DIR" in message and "--data DIR" in message
    assert db_rows(app) == before
    r = run("study", "add", "obj", "--task", "ag_news", "--data", str(task_data), "--db", db, ok=False)
    assert "task 'ag_news' has no example texts" in r.output and "subjlab data fetch ag_news --out DIR" in r.output
    assert db_rows(app) == before
    assert "added 2 tasks" in run("study", "add", "obj", "--task", "sms_spam", "--task", "humor",
                                  "--data", str(task_data), "--db", db).output


def test_serve_help_explains_the_options():
    out = run("serve", "--help").output
    for word in ("--db", "--host", "--port", "--workers", "gunicorn", "SUBJLAB_ADMIN_TOKEN"):
        assert word in out
