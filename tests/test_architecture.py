"""The structure README's Layout and DESIGN.md describe, checked: the import-linter contract of
pyproject.toml (layers, independent services, no cycles), modules of one concern (about 450 lines at
most unless the docstring says why), and test support kept out of the product packages."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("subjlab", "analysis", "annotation_server", "generation", "training")
MAX_LINES = 450
#: A module longer than MAX_LINES must say why in its docstring, in a sentence naming the limit
#: ("... over 450 lines: ...").
LONG_BECAUSE = "450 lines"


def _product_modules() -> list[Path]:
    return sorted(p for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts)


def test_import_contract_of_pyproject_is_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_long_modules_are_few_and_say_why():
    long = {}
    for path in _product_modules():
        text = path.read_text(encoding="utf-8")
        n = text.count("\n")
        if n > MAX_LINES:
            long[str(path.relative_to(ROOT))] = (n, ast.get_docstring(ast.parse(text)) or "")
    unexplained = [name for name, (_, doc) in long.items() if LONG_BECAUSE not in doc]
    assert not unexplained, f"modules over {MAX_LINES} lines whose docstring does not say why (a sentence with '{LONG_BECAUSE}'): {unexplained}"
    assert len(long) <= 2, f"more than two modules over {MAX_LINES} lines: {sorted(long)}"


def test_test_support_lives_under_tests_not_in_the_product():
    names = {p.name for p in _product_modules()}
    assert not names & {"testing.py", "openai_server.py", "conftest.py"}
