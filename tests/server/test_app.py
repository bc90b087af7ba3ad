"""The app factory's secret key: one key for every process serving the app, kept in the instance folder
(mode 0600) when SUBJLAB_SECRET_KEY is not set, or a clear refusal to start."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from annotation_server.app import create_app, instance_secret_key

REPO = Path(__file__).resolve().parents[2]


def _key_in(folder: str, queue) -> None:
    queue.put(instance_secret_key(folder))


def test_a_generated_key_is_kept_in_the_instance_folder_readable_by_its_owner_only(tmp_path):
    folder = tmp_path / "instance"
    key = instance_secret_key(folder)
    path = folder / "secret_key"
    assert len(key) == 64 and path.read_text() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert instance_secret_key(folder) == key  # the next process (or a restart) reads the same key
    assert [p.name for p in folder.iterdir()] == ["secret_key"]  # no temporary file left behind


def test_processes_starting_at_once_all_end_up_with_the_same_key(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_key_in, args=(str(tmp_path / "instance"), queue)) for _ in range(6)]
    for p in procs:
        p.start()
    keys = {queue.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
    assert len(keys) == 1 and keys == {(tmp_path / "instance" / "secret_key").read_text()}


def test_a_folder_that_cannot_keep_the_key_stops_the_app_with_what_to_set(tmp_path, make_app):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    with pytest.raises(RuntimeError, match="set SUBJLAB_SECRET_KEY"):
        make_app(INSTANCE_PATH=str(blocked / "instance"))
    readable = tmp_path / "shared"
    instance_secret_key(readable)
    (readable / "secret_key").chmod(0o644)
    with pytest.raises(RuntimeError, match="readable by other users"):
        instance_secret_key(readable)
    app = make_app(INSTANCE_PATH=str(tmp_path / "ok"), SECRET_KEY=None)
    assert app.secret_key == (tmp_path / "ok" / "secret_key").read_text()


def test_plain_gunicorn_with_several_processes_and_no_secret_key_accepts_every_form_post(tmp_path, task_data):
    from annotation_server.schema import upgrade
    from annotation_server.testing import free_port

    db_url = f"sqlite:///{tmp_path / 'forms.db'}"
    upgrade(db_url)
    app = create_app({"DATABASE_URL": db_url, "ADMIN_TOKEN": "t", "INSTANCE_PATH": str(tmp_path / "setup")})
    client = app.test_client()
    assert client.post("/api/v1/studies", json={"name": "forms", "kind": "labeling", "task": "sms_spam"},
                       headers={"Authorization": "Bearer t"}).status_code == 201
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SUBJLAB_SECRET_KEY"}
    env.update(SUBJLAB_DATABASE_URL=db_url, SUBJLAB_ADMIN_TOKEN="t", SUBJLAB_INSTANCE_PATH=str(tmp_path / "instance"),
               SUBJLAB_DATA=str(task_data))
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "3", "-b", f"127.0.0.1:{port}",
                             "annotation_server.app:create_app()"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        statuses = []
        for i in range(24):  # each request on a new connection: the processes take turns at random
            browser = requests.Session()
            page = browser.get(f"{base}/study/forms", headers={"Connection": "close"}, timeout=10).text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            r = browser.post(f"{base}/study/forms/start", allow_redirects=False, timeout=10,
                             headers={"Connection": "close"},
                             data={"csrf_token": csrf, "worker_id": f"w{i}", "consent": "yes"})
            statuses.append(r.status_code)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    assert statuses == [303] * 24, (statuses, (tmp_path / "gunicorn.log").read_text()[-2000:])
    assert stat.S_IMODE((tmp_path / "instance" / "secret_key").stat().st_mode) == 0o600
