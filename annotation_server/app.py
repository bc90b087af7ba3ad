"""The Flask app factory: configuration from the environment (or a dict), engine, blueprints, hooks.

`create_app(config)` builds a self-contained app: its engine and settings live in
`app.extensions["subjlab"]`, nothing module-level, so tests (and gunicorn workers) may build as many
apps as they like. Config keys and their environment variables are listed in CONTRACT.md and
`docs/server.md`. The schema must already be at the newest migration (`subjlab db upgrade`), unless
`AUTO_MIGRATE=True` asks the factory to run the migrations itself (tests, demos).

The secret key (browser sessions, CSRF tokens, signed links between pages) must be the same in every
process serving the app: `SUBJLAB_SECRET_KEY` if set, else a key generated once and kept in the instance
folder (`INSTANCE_PATH`, `$SUBJLAB_INSTANCE_PATH`, else Flask's instance folder) as `secret_key`, mode
0600, which every process (gunicorn workers, restarts) reads. A folder where it cannot be kept stops the
server at start with a message saying what to set, instead of a CSRF failure on half the form posts.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import secrets
import stat
from pathlib import Path
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from flask import Flask, current_app
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy.engine import Engine

from annotation_server.cache import MetadataCache
from annotation_server.clock import utcnow
from annotation_server.db import DEFAULT_URL, make_engine, normalize_url
from annotation_server.errors import register_error_handlers
from annotation_server.schema import check_at_head, upgrade
from annotation_server.security import DEFAULT_FRAME_ANCESTORS, init_security

EXTENSION_KEY = "subjlab"
DEFAULT_LEASE_SECONDS = 600
DEFAULT_MAX_CONTENT_LENGTH = 4 * 1024 * 1024
DEFAULT_MAX_WORKER_BODY = 64 * 1024
DEFAULT_DB_POOL_SIZE = 10

#: config key -> environment variable
ENV_VARS = {
    "DATABASE_URL": "SUBJLAB_DATABASE_URL",
    "ADMIN_TOKEN": "SUBJLAB_ADMIN_TOKEN",
    "LEASE_SECONDS": "SUBJLAB_LEASE_SECONDS",
    "SECRET_KEY": "SUBJLAB_SECRET_KEY",
    "MAX_CONTENT_LENGTH": "SUBJLAB_MAX_CONTENT_LENGTH",
    "FRAME_ANCESTORS": "SUBJLAB_FRAME_ANCESTORS",
    "COOKIE_SECURE": "SUBJLAB_COOKIE_SECURE",
    "DATA_DIR": "SUBJLAB_DATA",
    "DB_POOL_SIZE": "SUBJLAB_DB_POOL_SIZE",
    "INSTANCE_PATH": "SUBJLAB_INSTANCE_PATH",
    "ADMIN_SESSION_HOURS": "SUBJLAB_ADMIN_SESSION_HOURS",
}
DEFAULT_ADMIN_SESSION_HOURS = 12
#: The file in the instance folder that keeps the generated secret key.
SECRET_KEY_FILE = "secret_key"

#: Optional blueprints (module, url_prefix), registered when their module exists.
OPTIONAL_BLUEPRINTS = (("annotation_server.worker", None), ("annotation_server.admin", "/admin"),
                       ("annotation_server.mturk.entry", "/mturk"), ("annotation_server.mturk.prolific", "/prolific"))


@dataclass(frozen=True)
class Settings:
    """Validated server settings."""

    database_url: str
    lease_seconds: float
    max_worker_body: int


@dataclass
class ServerState:
    """Per-app state: the engines, the settings, the clock (`clock()` -> aware UTC datetime) and the cache of
    immutable study metadata (`annotation_server.cache.MetadataCache`)."""

    engine: Engine
    settings: Settings
    hot_engine: Engine  # the worker hot path's pool (`db.autocommit`): the same database, autocommit connections
    clock: Callable[[], datetime]
    cache: MetadataCache = field(default_factory=MetadataCache)

    def dispose(self) -> None:
        """Close every pooled database connection (both engines)."""
        self.engine.dispose()
        if self.hot_engine is not self.engine:
            self.hot_engine.dispose()


class CookieFirstSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, unchanged, except that a request without a session cookie (every
    API call of a worker or a script) gets its empty session without building the cookie signer first,
    and an empty session nobody touched is not looked at again when the response goes out."""

    def open_session(self, app: Flask, request):
        if app.secret_key and ("HTTP_COOKIE" not in request.environ  # no Cookie header: skip parsing it
                               or not request.cookies.get(self.get_cookie_name(app))):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        if not session and not session.modified and not session.accessed:
            return
        super().save_session(app, session, response)


def load_config(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the effective configuration: defaults, then the environment, then `config`; validated."""
    cfg: dict[str, Any] = {
        "DATABASE_URL": DEFAULT_URL,
        "ADMIN_TOKEN": None,
        "LEASE_SECONDS": DEFAULT_LEASE_SECONDS,
        "SECRET_KEY": None,
        "MAX_CONTENT_LENGTH": DEFAULT_MAX_CONTENT_LENGTH,
        "MAX_WORKER_BODY": DEFAULT_MAX_WORKER_BODY,
        "FRAME_ANCESTORS": DEFAULT_FRAME_ANCESTORS,
        "COOKIE_SECURE": False,
        "DATA_DIR": None,
        "AUTO_MIGRATE": False,
        "CLOCK": utcnow,
        "DB_POOL_SIZE": DEFAULT_DB_POOL_SIZE,
        "INSTANCE_PATH": None,
        "ADMIN_SESSION_HOURS": DEFAULT_ADMIN_SESSION_HOURS,
    }
    for key, env in ENV_VARS.items():
        if os.environ.get(env):
            cfg[key] = os.environ[env]
    cfg.update(config or {})
    cfg["DATABASE_URL"] = normalize_url(str(cfg["DATABASE_URL"]))
    cfg["LEASE_SECONDS"] = _number(cfg["LEASE_SECONDS"], "LEASE_SECONDS (SUBJLAB_LEASE_SECONDS)", float)
    cfg["MAX_CONTENT_LENGTH"] = int(_number(cfg["MAX_CONTENT_LENGTH"], "MAX_CONTENT_LENGTH (SUBJLAB_MAX_CONTENT_LENGTH)", int))
    cfg["MAX_WORKER_BODY"] = int(_number(cfg["MAX_WORKER_BODY"], "MAX_WORKER_BODY", int))
    cfg["DB_POOL_SIZE"] = int(_number(cfg["DB_POOL_SIZE"], "DB_POOL_SIZE (SUBJLAB_DB_POOL_SIZE)", int))
    cfg["ADMIN_SESSION_HOURS"] = _number(cfg["ADMIN_SESSION_HOURS"], "ADMIN_SESSION_HOURS (SUBJLAB_ADMIN_SESSION_HOURS)", float)
    if isinstance(cfg["COOKIE_SECURE"], str):
        cfg["COOKIE_SECURE"] = cfg["COOKIE_SECURE"].strip().lower() in ("1", "true", "yes", "on")
    return cfg


def instance_secret_key(folder: str | Path) -> str:
    """The secret key kept in `folder/secret_key`, generated (mode 0600) by the first process that needs it.

    Several processes may start at once: each writes a candidate to its own temporary file and links it to
    the final name, which succeeds for exactly one; the others read the winner's key. RuntimeError with what
    to do when the folder cannot hold it, or when the file is readable by other users."""
    folder = Path(folder)
    path = folder / SECRET_KEY_FILE
    advice = (f"cannot keep the server's secret key in {folder}: set SUBJLAB_SECRET_KEY (the same value for every "
              "process), or SUBJLAB_INSTANCE_PATH to a folder this user can write")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            tmp = folder / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_hex(32))
                    out.flush()
                    os.fsync(out.fileno())
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass  # another process won: use its key
            finally:
                tmp.unlink(missing_ok=True)
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise RuntimeError(f"{path} is readable by other users: run chmod 600 {path} (it signs the server's cookies)")
        key = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise RuntimeError(f"{advice} ({exc.strerror or exc})") from None
    if len(key) < 32:
        raise RuntimeError(f"{path} does not hold a secret key (delete it to have a new one generated)")
    return key


def _number(value: Any, name: str, kind: type) -> float | int:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the annotation server app. See the module doc and CONTRACT.md for the config keys.

    Raises RuntimeError when the database schema is not at the newest migration (and AUTO_MIGRATE is off).
    """
    cfg = load_config(config)
    app = Flask("annotation_server", static_folder="static", static_url_path="/static", template_folder="templates",
                instance_path=str(Path(cfg["INSTANCE_PATH"]).resolve()) if cfg["INSTANCE_PATH"] else None)
    if not cfg["SECRET_KEY"]:
        cfg["SECRET_KEY"] = instance_secret_key(app.instance_path)
    app.config.update({k: v for k, v in cfg.items() if k != "CLOCK"})
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="None" if cfg["COOKIE_SECURE"] else "Lax",
        SESSION_COOKIE_SECURE=bool(cfg["COOKIE_SECURE"]),
        SESSION_COOKIE_NAME="subjlab_session",
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.session_interface = CookieFirstSessionInterface()
    if cfg["AUTO_MIGRATE"]:
        upgrade(cfg["DATABASE_URL"])
    engine = make_engine(cfg["DATABASE_URL"], pool_size=cfg["DB_POOL_SIZE"])
    check_at_head(engine)
    settings = Settings(database_url=cfg["DATABASE_URL"], lease_seconds=cfg["LEASE_SECONDS"],
                        max_worker_body=cfg["MAX_WORKER_BODY"])
    hot_engine = (engine if engine.url.get_backend_name() == "sqlite"
                  else make_engine(cfg["DATABASE_URL"], pool_size=cfg["DB_POOL_SIZE"], autocommit=True))
    app.extensions[EXTENSION_KEY] = ServerState(engine=engine, settings=settings, clock=cfg["CLOCK"], hot_engine=hot_engine)

    register_error_handlers(app)
    init_security(app)
    from annotation_server.api import bp as api_bp

    app.register_blueprint(api_bp, url_prefix="/api/v1")
    for module_name, prefix in OPTIONAL_BLUEPRINTS:
        if _module_exists(module_name):
            module = importlib.import_module(module_name)
            app.register_blueprint(module.bp, url_prefix=prefix)
    return app


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def get_state(app: Flask | None = None) -> ServerState:
    """Return the ServerState of `app` (default: the current app)."""
    app = app or current_app
    return app.extensions[EXTENSION_KEY]
