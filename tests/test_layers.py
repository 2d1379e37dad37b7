"""Imports go one way: the api layer knows nothing above it, and the hook's parts do not know the hook."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_census"
BENEATH_THE_API = frozenset({"airflow_provider_census", "airflow_provider_census.version_compat"})
"""What the api layer may import besides itself: the package's version, and Airflow's exception base."""


def imported_modules(source: Path) -> set[str]:
    """Every module a file imports, wherever it does (at the top, in a function, for type checking only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("source", sorted((PACKAGE / "api").glob("*.py")), ids=lambda path: path.name)
def test_the_api_layer_never_imports_upward(source: Path) -> None:
    """Census itself is handed what it needs (settings, a request); it never asks a hook or a task."""
    ours = {name for name in imported_modules(source) if name.startswith("airflow_provider_census")}
    upward = {name for name in ours - BENEATH_THE_API if not name.startswith("airflow_provider_census.api")}
    assert not upward, f"api/{source.name} imports {sorted(upward)}"


@pytest.mark.parametrize("module", ["selection", "census_async", "connection", "catalog", "provider21"])
def test_the_hooks_parts_do_not_import_the_hook(module: str) -> None:
    """``CensusHook`` imports them; they are written against what they need, so no import goes back."""
    assert "airflow_provider_census.hooks.census" not in imported_modules(PACKAGE / "hooks" / f"{module}.py")
