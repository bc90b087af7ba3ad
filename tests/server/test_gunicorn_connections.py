"""`subjlab serve`'s gunicorn settings spread keep-alive clients over the worker processes: a process keeps
at most `connections_per_worker(threads)` connections, so it cannot hold most of them for good (which made
the clients on the busy process wait twice as long as the others under load)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

from annotation_server.testing import free_port
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


def _get(sock: socket.socket) -> str:
    """Send one keep-alive GET on `sock`; return the body (the serving process's pid)."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            [h for h in data.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1]):
        chunk = sock.recv(4096)
        assert chunk, "server closed the connection mid-reply"
        data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode()


def test_each_gunicorn_process_keeps_at_most_four_connections_per_thread(tmp_path):
    assert gunicorn_options("127.0.0.1", 1, 2, 8)["worker_connections"] == connections_per_worker(8) == 32
    port = free_port()
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    proc = subprocess.Popen([sys.executable, str(script), str(port)], env=dict(os.environ, PYTHONPATH=os.getcwd()),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    socks = []
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
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(cap + cap // 2)]
        served_by = [_get(s) for s in socks]
        per_process = {pid: served_by.count(pid) for pid in set(served_by)}
        assert len(per_process) == 2 and max(per_process.values()) <= cap, per_process
    finally:
        for s in socks:
            s.close()
        os.killpg(proc.pid, 15)
        proc.wait(15)
