"""A griffe extension for the docs site: the docstrings' Sphinx roles as mkdocstrings cross-references.

The provider's docstrings use Sphinx roles (``:class:`~airflow_provider_census.runs.RunSummary```,
``:meth:`finish```, ``:data:`CATCH_UP_RUNS```), which mkdocstrings would print as they are.
Once the whole package is loaded, each role becomes a link (``[`RunSummary`][airflow_provider_census.runs.RunSummary]``)
when its target is an object that a page of ``docs/reference/`` renders, and plain code
otherwise, so ``mkdocs build --strict`` never meets a link to nowhere. Relative names (``finish``,
``.endpoints.Request``) are resolved as Python would, from the object that holds the docstring.

Loaded from mkdocs.yml (``plugins: mkdocstrings: handlers: python: options: extensions``); it
runs in the docs venv only, where griffe is installed. The source files are never changed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from griffe import Extension, GriffeLoader, Module, Object

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|exc|data|obj|const):`(~?)([\w.]+)`")
REFERENCE_PAGES = Path(__file__).resolve().parent.parent / "docs" / "reference"
DIRECTIVE = re.compile(r"^:::\s*([\w.]+)\s*$", re.M)


def rendered_modules() -> set[str]:
    """The modules the reference pages render (their ``::: module`` lines)."""
    found: set[str] = set()
    for page in REFERENCE_PAGES.glob("*.md"):
        found.update(DIRECTIVE.findall(page.read_text(encoding="utf-8")))
    return found


class SphinxRoles(Extension):
    """Rewrite the Sphinx roles of every docstring of the package, once it is loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.modules = rendered_modules()

    def on_package(self, *, pkg: Module, loader: GriffeLoader, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None and ":" in obj.docstring.value:
                obj.docstring.value = ROLE.sub(lambda m, obj=obj: self._reference(obj, loader, m), obj.docstring.value)

    def _reference(self, obj: Object, loader: GriffeLoader, match: re.Match[str]) -> str:
        short, target = match.group(1) == "~", match.group(2)
        shown = target.lstrip(".").rsplit(".", 1)[-1] if short else target.lstrip(".")
        path = self._resolve(obj, target)
        if path is not None and self._is_rendered(loader, path):
            return f"[`{shown}`][{path}]"
        return f"`{shown}`"

    @staticmethod
    def _resolve(obj: Object, target: str) -> str | None:
        if target.startswith("."):
            dots = len(target) - len(target.lstrip("."))
            module = obj.module.path.split(".")
            base = module[: len(module) - dots] if not obj.module.is_package else module[: len(module) - dots + 1]
            return ".".join([*base, target[dots:]]) if base else None
        first, _, rest = target.partition(".")
        try:
            path = obj.resolve(first)
        except Exception:  # griffe's NameResolutionError, or an alias it cannot follow
            return target if "." in target else None
        return f"{path}.{rest}" if rest else path

    def _is_rendered(self, loader: GriffeLoader, path: str) -> bool:
        if any(part.startswith("_") for part in path.split(".")):
            return False
        try:
            found = loader.modules_collection.get_member(path)
        except (KeyError, ValueError, AttributeError):
            return False
        if found.is_alias:
            return False
        if found.is_module:
            return path in self.modules
        module = found.module.path
        return module in self.modules and (found.docstring is not None or found.is_class)


def _walk(obj: Object) -> list[Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found += _walk(member)  # type: ignore[arg-type]
    return found
