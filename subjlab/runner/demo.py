"""The packaged demo study: where its config lives (package data, so `subjlab demo` works from an install)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def demo_config_path() -> Path:
    """Return the path of the packaged `subjlab/configs/demo.toml`."""
    return _packaged("demo.toml")


def paper_config_path() -> Path:
    """Return the path of the packaged `subjlab/configs/paper.toml` (the paper's full setup)."""
    return _packaged("paper.toml")


def _packaged(name: str) -> Path:
    path = Path(str(resources.files("subjlab.configs").joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the packaged config is missing (reinstall subjlab)")
    return path
