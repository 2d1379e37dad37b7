"""Task arguments that Airflow must not call or render: a callable ``select``; selections known only at run time."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar, Union

from airflow_provider_census.api.errors import CensusInputError
from airflow_provider_census.selectors import Selection, SelectionInput, parse_selection

if TYPE_CHECKING:
    from airflow_provider_census.version_compat import Context

T = TypeVar("T")


@dataclass(frozen=True)
class CalledWithContext(Generic[T]):
    """A callable argument of a task, held so that only the task calls it: ``function(context)``.

    Airflow 2.11 and 3.x render a task's template fields before ``execute``, and a callable
    found there is called as ``value(context=..., jinja_env=...)``: a function of the context
    alone, such as ``selection_from_asset_events``, fails with a ``TypeError`` before the task
    starts. Held in this (not callable) object, the function passes through rendering as it is,
    and the task calls it with the context when it runs, as the docs promise. Its text is the
    function's qualified name, which Airflow shows as the rendered field and keeps in the
    serialized DAG (the same on every parse).
    """

    function: Callable[[Context], T]

    def __str__(self) -> str:
        """``module.function(context)``; ``module.function(context, ...)`` for a ``functools.partial`` of it."""
        function: object = self.function
        arguments = "context"
        if isinstance(function, functools.partial):
            function, arguments = function.func, "context, ..."
        module = getattr(function, "__module__", None)
        name = getattr(function, "__qualname__", type(function).__qualname__)
        return f"{module}.{name}({arguments})" if module else f"{name}({arguments})"


def resolved_when_run(*values: object) -> bool:
    """Whether any value (or item of a list) is a Jinja template or a value Airflow resolves (an XComArg).

    Such a selection can be parsed only when the task runs; any other is parsed when the DAG is
    imported, so that a typo fails the import.
    """
    items: list[object] = []
    for value in values:
        items.extend(value if isinstance(value, list | tuple) else [value])
    return any(_is_template(item) or _resolved_by_airflow(item) for item in items)


def _is_template(item: object) -> bool:
    return isinstance(item, str) and ("{{" in item or "{%" in item)


def _resolved_by_airflow(item: object) -> bool:
    """An XComArg, on every Airflow version: its class has a ``resolve(context, ...)``, which rendering calls."""
    return not isinstance(item, str | int) and callable(getattr(item, "resolve", None))


SelectArgument = Union["SelectionInput", "Selection", CalledWithContext[Union["SelectionInput", "Selection"]]]
ExcludeArgument = Union["SelectionInput", CalledWithContext["SelectionInput"], None]


def parse_if_known(select: SelectArgument, exclude: ExcludeArgument) -> None:
    """Parse a selection that is known when the DAG file is imported, so that a typo fails the import, not a run."""
    if isinstance(select, CalledWithContext) or isinstance(exclude, CalledWithContext):
        return
    if not resolved_when_run(select, exclude):
        parsed_selection(select, exclude)


def selection_when_run(select: SelectArgument, exclude: ExcludeArgument, context: Context) -> Selection:
    """The selection as the task runs: rendered, or made from its context by a callable ``select``/``exclude``."""
    chosen = select.function(context) if isinstance(select, CalledWithContext) else select
    left_out = exclude.function(context) if isinstance(exclude, CalledWithContext) else exclude
    return parsed_selection(chosen, left_out)


def parsed_selection(select: SelectionInput | Selection, exclude: SelectionInput | None) -> Selection:
    if isinstance(select, Selection):
        if exclude is not None:
            raise CensusInputError("Pass exclude to parse_selection with the rest of the selection, not beside it.")
        return select
    return parse_selection(select, exclude)
