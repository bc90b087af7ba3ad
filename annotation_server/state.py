"""The app's state, where every blueprint and helper finds it: `get_state()` (Flask's extension pattern).

`app.create_app` builds a `ServerState` per app and keeps it in `app.extensions[EXTENSION_KEY]`; the
blueprints and helpers read it through `current_app`, so they never import the factory (which imports
them). Nothing module-level: tests and gunicorn workers may build as many apps as they like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from flask import Flask, current_app
from sqlalchemy.engine import Engine

from annotation_server.agreement_fold import AgreementFolds
from annotation_server.cache import MetadataCache

EXTENSION_KEY = "subjlab"


@dataclass(frozen=True)
class Settings:
    """Validated server settings."""

    database_url: str
    lease_seconds: float
    max_worker_body: int


@dataclass
class ServerState:
    """Per-app state: the engines, the settings, the clock (`clock()` -> aware UTC datetime) and the cache of
    immutable study metadata (`annotation_server.cache.MetadataCache`), and the agreement folds (`folds`)."""

    engine: Engine
    settings: Settings
    hot_engine: Engine  # the worker hot path's pool (`db.autocommit`): the same database, autocommit connections
    clock: Callable[[], datetime]
    cache: MetadataCache = field(default_factory=MetadataCache)
    #: each labeling study's label counts, kept between agreement views (`agreement_fold`)
    folds: AgreementFolds = field(default_factory=AgreementFolds)

    def dispose(self) -> None:
        """Close every pooled database connection (both engines)."""
        self.engine.dispose()
        if self.hot_engine is not self.engine:
            self.hot_engine.dispose()


def get_state(app: Flask | None = None) -> ServerState:
    """Return the ServerState of `app` (default: the current app)."""
    app = app or current_app
    return app.extensions[EXTENSION_KEY]
