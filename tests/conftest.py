"""Shared test fixtures: the task data bundled with subjlab, the optional larger development data,
offline model loading, headless Chromium.

The default run needs nothing beside the checkout: `task_data` is the data bundled in the package.
Tests marked `devdata` want the larger development subsets (e.g. ../shared/datasets); they run only when
`--dev-data=DIR` (or `$SUBJLAB_DEV_DATA`) names them (`make test-dev`), and are deselected otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite runs on the bundled data whatever the developer's shell points at.
os.environ.pop("SUBJLAB_DATA", None)

REPO = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--dev-data", default=os.environ.get("SUBJLAB_DEV_DATA") or None, metavar="DIR",
                     help="the larger development data (<task>/train.jsonl, test.jsonl) for tests marked devdata; "
                          "without it they are deselected [default: $SUBJLAB_DEV_DATA]")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--dev-data"):
        return
    wanting = [item for item in items if item.get_closest_marker("devdata")]
    if wanting:
        config.hook.pytest_deselected(items=wanting)
        items[:] = [item for item in items if not item.get_closest_marker("devdata")]
        config._subjlab_devdata_deselected = len(wanting)  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    n = getattr(config, "_subjlab_devdata_deselected", 0)
    if n:
        terminalreporter.write_line(f"{n} test(s) marked devdata deselected: they need the development data "
                                    "(--dev-data=DIR or SUBJLAB_DEV_DATA=DIR; `make test-dev`)")


@pytest.fixture(scope="session")
def task_data() -> Path:
    """The task data bundled with subjlab (subjlab/datasets): what a fresh clone has."""
    from subjlab.data import BUNDLED_DATA_DIR, resolve_data_dir

    assert resolve_data_dir() == BUNDLED_DATA_DIR
    return BUNDLED_DATA_DIR


@pytest.fixture(scope="session")
def dev_data(request: pytest.FixtureRequest) -> Path:
    """The larger development data named by --dev-data / $SUBJLAB_DEV_DATA (tests marked devdata only)."""
    path = Path(request.config.getoption("--dev-data")).resolve()
    if not (path / "manifest.json").is_file():
        raise pytest.UsageError(f"--dev-data {path}: not a development data directory (no manifest.json)")
    return path


#: The system's Chromium (Debian packages `chromium`, `chromium-driver`), driven by Playwright.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (its tests open their own pages and contexts)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
