"""`analysis` states its public API: every name in __all__ resolves to its module's object, lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


def test_every_public_name_resolves_to_the_object_of_its_module():
    import analysis

    for name in analysis.__all__:
        module = importlib.import_module(f"analysis.{analysis._PUBLIC[name]}")
        assert getattr(analysis, name) is getattr(module, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        analysis.nope  # noqa: B018


def test_importing_the_package_loads_no_numerical_library():
    code = "import sys, analysis; print(sorted(m for m in ('numpy', 'scipy', 'torch', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_public_name_is_also_a_module_name():
    import pkgutil

    import analysis

    modules = {m.name for m in pkgutil.iter_modules(analysis.__path__)}
    assert not set(analysis.__all__) & modules
