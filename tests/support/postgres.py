"""A throwaway PostgreSQL cluster for tests and benchmarks (loopback only, deleted when stopped), and a free port.

    pg = start_postgres()                 # initdb + pg_ctl start on 127.0.0.1:<free port>
    url = pg.create_database("subjlab")   # postgresql+psycopg://postgres@127.0.0.1:PORT/subjlab
    ...
    pg.stop()                             # stop the server and delete its directory

PostgreSQL refuses to run as root, so when this process is root the server binaries run as the
`postgres` user (`runuser`). The binaries are the newest `/usr/lib/postgresql/*/bin` (Debian package
`postgresql`), else whatever `initdb` is on PATH.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Settings of every throwaway cluster: loopback only, enough connections for a few gunicorn workers.
BASE_SETTINGS = {"listen_addresses": "127.0.0.1", "max_connections": "200"}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bindir() -> str:
    """Return the directory of the PostgreSQL server binaries; RuntimeError saying how to install them."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise RuntimeError("PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH): "
                       "install them with `bash scripts/system-deps.sh` (Debian package `postgresql`)")


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class PostgresCluster:
    """A running throwaway cluster: `port`, superuser `user` (trust auth), data under `directory`."""

    port: int
    user: str
    directory: str
    bindir: str

    def url(self, database: str = "postgres") -> str:
        """Return the SQLAlchemy (psycopg 3) URL of `database` on this cluster."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database `name` (optionally a copy of database `template`) and return its URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def log(self) -> str:
        """The server log so far."""
        path = Path(self.directory) / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (`mode`: immediate, fast or smart) and delete its directory."""
        subprocess.run(_as_server_user([f"{self.bindir}/pg_ctl", "-D", f"{self.directory}/data", "-m", mode, "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres(settings: dict[str, str] | None = None, durable: bool = True) -> PostgresCluster:
    """Start a throwaway PostgreSQL cluster on 127.0.0.1:<free port> and return it (call `.stop()`).

    `durable=False` turns off fsync (for tests: faster, and a crashed test cluster is thrown away anyway);
    the default keeps PostgreSQL's durable defaults (`fsync=on`, `synchronous_commit=on`), as in production.
    `settings` adds or overrides server settings (`-c name=value`). RuntimeError (with the server's
    output) if the binaries are missing or the server does not start.
    """
    bindir = postgres_bindir()
    as_root = os.geteuid() == 0
    user = "postgres" if as_root else (os.environ.get("USER") or "postgres")
    directory = tempfile.mkdtemp(prefix="subjlab-pg-")
    if as_root:
        os.chmod(directory, 0o700)
        shutil.chown(directory, user="postgres", group="postgres")
    port = free_port()
    opts = dict(BASE_SETTINGS, port=str(port), unix_socket_directories=directory)
    if not durable:
        opts["fsync"] = "off"
    opts.update(settings or {})
    log = os.path.join(directory, "server.log")
    pgdata = os.path.join(directory, "data")
    try:
        subprocess.run(_as_server_user([f"{bindir}/initdb", "-D", pgdata, "-A", "trust", "-U", user, "-E", "UTF8",
                                        "--no-sync"]), check=True, capture_output=True, text=True)
        options = " ".join(f"-c {k}={v}" for k, v in opts.items())
        subprocess.run(_as_server_user([f"{bindir}/pg_ctl", "-D", pgdata, "-l", log, "-w", "-t", "60", "-o", options,
                                        "start"]), check=True, capture_output=True, text=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = f"{getattr(exc, 'stdout', '') or ''}{getattr(exc, 'stderr', '') or ''}"
        if os.path.exists(log):
            detail += Path(log).read_text(errors="replace")[-2000:]
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL from {bindir}: {exc}\n{detail}") from None
    return PostgresCluster(port=port, user=user, directory=directory, bindir=bindir)
