"""Shared test fixtures: the real task data in ../shared/datasets, offline model loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets directory (../shared/datasets beside the checkout)."""
    from subjlab.data import resolve_data_dir

    return resolve_data_dir()
