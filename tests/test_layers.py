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


def package_imports() -> dict[str, set[str]]:
    """Each module of the package (outside ``testing/``), with the modules of the package it imports."""
    modules = {}
    for source in PACKAGE.rglob("*.py"):
        parts = source.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if ".testing" not in name:
            modules[name] = source
    return {
        name: {imported for imported in imported_names(source) if imported in modules and imported != name}
        for name, source in modules.items()
    }


def imported_names(source: Path) -> set[str]:
    """:func:`imported_modules`, and each name imported from a package, which may be a submodule of it."""
    names = imported_modules(source)
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_of_the_package_imports_itself_back_through_others() -> None:
    """No import cycle, type-checking imports included: what a module hands itself to takes a protocol."""
    graph = package_imports()
    on_path: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in on_path:
            cycle = [*on_path[on_path.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        on_path.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        on_path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


@pytest.mark.parametrize("source", sorted((PACKAGE / "core").glob("*.py")), ids=lambda path: path.name)
def test_the_core_decides_without_airflow_or_io(source: Path) -> None:
    """The rules of a wait are pure: they import neither Airflow, nor an HTTP client, nor any driver."""
    imported = imported_modules(source)
    outside = {name for name in imported if name.split(".")[0] in {"airflow", "aiohttp", "requests", "asyncio"}}
    drivers = {
        name
        for name in imported
        if name.startswith(("airflow_provider_census.hooks", "airflow_provider_census.triggers"))
        or name.startswith(("airflow_provider_census.operators", "airflow_provider_census.sensors"))
        or name == "airflow_provider_census.watch"
    }
    assert not outside | drivers, f"core/{source.name} imports {sorted(outside | drivers)}"


@pytest.mark.parametrize("driver", ["watch.py", "worker_wait.py"])
def test_the_wait_drivers_know_no_task_and_no_trigger(driver: str) -> None:
    """A driver is handed its run, rules and hook; it never reads the task or the trigger that made it."""
    imported = imported_modules(PACKAGE / driver)
    assert not {
        name
        for name in imported
        if name.startswith(
            ("airflow_provider_census.operators", "airflow_provider_census.sensors", "airflow_provider_census.triggers")
        )
    }
