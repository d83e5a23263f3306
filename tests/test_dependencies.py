"""Every library the package imports is declared in pyproject.toml, so `pip install .` alone brings it."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys

import pytest

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")


def imported_top_level_modules() -> set[str]:
    found = set()
    for path in [*(REPO / "ar_experiments").rglob("*.py"), *(REPO / "hydra_plugins").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"ar_experiments", "hydra_plugins"}


def declared_distributions() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].lower() for spec in project["dependencies"]}


def test_every_imported_library_is_declared_in_pyproject():
    declared = declared_distributions()
    providers = importlib.metadata.packages_distributions()
    undeclared = {
        module: providers.get(module, ["?"])
        for module in imported_top_level_modules()
        if not declared & {name.lower() for name in providers.get(module, [])}
    }
    assert not undeclared, f"imported but not in pyproject.toml's dependencies (module: distributions): {undeclared}"
