"""`subjlab serve`'s gunicorn settings spread keep-alive clients over the worker processes: a process keeps
at most `connections_per_worker(threads)` connections, so it cannot hold most of them for good (which made
the clients on the busy process wait twice as long as the others under load)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import textwrap
import time

from tests.support.postgres import free_port
from annotation_server.wsgi import connections_per_worker, gunicorn_options

SERVER = textwrap.dedent("""
    import os, sys
    from gunicorn.app.base import BaseApplication
    from annotation_server.wsgi import gunicorn_options

    def app(environ, start_response):  # replies with the pid of the process that served the request
        body = str(os.getpid()).encode()
        start_response("200 OK", [("Content-Length", str(len(body))), ("Content-Type", "text/plain")])
        return [body]

    class Server(BaseApplication):
        def load_config(self):
            for key, value in gunicorn_options("127.0.0.1", int(sys.argv[1]), 2, 2).items():
                self.cfg.set(key, value)
        def load(self):
            return app

    Server().run()
""")


def _get(conn: http.client.HTTPConnection) -> str:
    """Send one keep-alive GET on `conn`; return the body (the serving process's pid)."""
    conn.request("GET", "/")
    return conn.getresponse().read().decode()


def test_each_gunicorn_process_keeps_at_most_four_connections_per_thread(tmp_path):
    assert gunicorn_options("127.0.0.1", 1, 2, 8)["worker_connections"] == connections_per_worker(8) == 32
    port = free_port()
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    proc = subprocess.Popen([sys.executable, str(script), str(port)], env=dict(os.environ, PYTHONPATH=os.getcwd()),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    conns: list[http.client.HTTPConnection] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "gunicorn did not start"
                time.sleep(0.1)
        time.sleep(1.0)  # both worker processes up
        cap = connections_per_worker(2)  # 16 per process with 2 threads
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(cap + cap // 2)]
        for c in conns:
            c.connect()  # all connected before the first request, as a burst of clients would be
        served_by = [_get(c) for c in conns]
        per_process = {pid: served_by.count(pid) for pid in set(served_by)}
        assert len(per_process) == 2 and max(per_process.values()) <= cap, per_process
    finally:
        for c in conns:
            c.close()
        os.killpg(proc.pid, 15)
        proc.wait(15)
