"""Warehouse tables named by asset URIs, and the Census syncs that read them.

A dbt task (through Cosmos, or any task with table outlets) updates assets named by table
URIs, as Airflow and OpenLineage name tables: ``postgres://host:5432/db/schema/table``,
``snowflake://account/db/schema/table``, ``bigquery://project/dataset/table``, and the
dotted forms (``snowflake://account/db.schema.table``). A Census DAG scheduled on those assets
runs after them, and :func:`selection_from_asset_events` selects "the syncs that read what
was just rebuilt" from its run's triggering asset events. Each table URI selects:

1. The syncs whose source is that table. Census documents a table source by its
   ``table_catalog``, ``table_schema`` and ``table_name``; the URI's database (catalog,
   project), schema (dataset) and table must equal them, case-insensitively. A two-part name
   (MySQL's ``database.table``) is compared with schema and table. The host, port or account
   is not compared: a sync's answer does not say which warehouse its source connects to.
2. Unless ``match_models=False``, the syncs whose source is a Census model named like the
   table (its last part), case-insensitively: ``.../analytics/dim_users`` selects the model
   ``dim_users``. Census documents models and their names, but records no link between a
   model and the tables its SQL reads; that a Census model built on a dbt model carries the
   dbt model's name (and so its table's, unless the dbt model sets an ``alias``) is this
   provider's convention, the usual way teams name them. Turn it off when models are named
   otherwise, or when two rebuilt schemas share a table name (``prod...dim_users`` and
   ``staging...dim_users`` both select the model ``dim_users``). Segments and datasets are
   never matched by a table URI: they are named for what they filter, not for a table.

Pure: no Airflow import and no HTTP here; a task context or its events are read by duck
typing, so the same code serves Airflow 3's asset events and Airflow 2.11's dataset events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_provider_census.selectors import (
    CensusSelectorError,
    Selection,
    SelectionInput,
    TableSelector,
    parse_selectors,
)

_TABLE_NAMING: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("postgres", "postgresql", "redshift", "snowflake", "mssql"), ("database", "schema", "table")),
    **dict.fromkeys(("trino", "databricks"), ("catalog", "schema", "table")),
    "awsathena": ("catalog", "database", "table"),
    "oracle": ("service", "schema", "table"),
    "bigquery": ("project", "dataset", "table"),
    **dict.fromkeys(("mysql", "mariadb", "hive", "teradata"), ("database", "table")),
}
"""How each warehouse scheme names a table, after OpenLineage's naming spec and Airflow's asset schemes.

The host, port or account (the URI's authority) is not part of the name, except BigQuery's
project in Airflow's ``bigquery://project/dataset/table``.
"""
_AUTHORITY_IN_NAME = ("bigquery",)
_GLOB_CHARS = re.compile(r"([*?\[])")
_EVENTS_KEYS = ("triggering_asset_events", "triggering_dataset_events")
"""Where a task context holds its run's triggering events: Airflow 3, then Airflow 2.11."""
_CONTEXT_KEYS = ("ti", "dag_run")
"""Keys every task context has, to tell a context without events from a mapping of events."""
TABLE_URI_FORMS = (
    "A table URI looks like postgres://host:5432/db/schema/table, snowflake://account/db/schema/table or "
    "bigquery://project/dataset/table (known schemes: " + ", ".join(sorted(_TABLE_NAMING)) + ")"
)
NOT_ASSET_TRIGGERED = (
    "No sync selected: this DAG run was not triggered by asset events; its syncs are chosen by the "
    "tables the triggering events name, and a manual or time-scheduled run has none. Pass extra_select "
    "to select syncs on such runs too, or on_no_match='skip' to skip them."
)


@dataclass(frozen=True)
class UnreadableUri:
    """A URI :func:`read_table_uris` could not turn into a selector, and why."""

    uri: object
    reason: str


@dataclass(frozen=True)
class TableUris:
    """``source:`` selectors read from table URIs (in order, without repeats), and the URIs left over."""

    selectors: tuple[str, ...]
    unreadable: tuple[UnreadableUri, ...]


def read_table_uris(uris: Iterable[object]) -> TableUris:
    """Selectors for the warehouse tables the URIs name; every other URI comes back with its reason.

    Both spellings are read: Airflow's (``postgres://host:5432/db/schema/table``) and
    OpenLineage's (``postgres://host:5432/db.schema.table``, ``bigquery:project.dataset.table``),
    as well as Cosmos's ``bigquery/project.dataset.table``. A two-part name (MySQL's
    ``database.table``) becomes ``source:database.table``, i.e. schema.table. The host, port or
    account is not matched (a sync's facts do not hold its warehouse), nor is a query or fragment.
    """
    selectors: dict[str, None] = {}
    unreadable: list[UnreadableUri] = []
    for uri in uris:
        try:
            parts = _table_parts(uri)
        except ValueError as reason:
            unreadable.append(UnreadableUri(uri, str(reason)))
        else:
            selectors["source:" + ".".join(_GLOB_CHARS.sub(r"[\1]", part) for part in parts)] = None
    return TableUris(tuple(selectors), tuple(unreadable))


def table_selectors_from_uris(uris: Iterable[str]) -> list[str]:
    """Selectors for the tables the URIs name; a URI that names no table fails them all, by name and reason."""
    result = read_table_uris(uris)
    if result.unreadable:
        raise CensusSelectorError(
            f"cannot select syncs by these URIs: {_listed(result.unreadable)}. {TABLE_URI_FORMS}; "
            "read_table_uris() keeps the readable ones and returns the others apart"
        )
    return list(result.selectors)


def _table_parts(uri: object) -> tuple[str, ...]:
    """The name parts of the table a URI names (``("db", "schema", "table")``); a ValueError says why it names none."""
    if not isinstance(uri, str):
        raise ValueError(f"is of type {type(uri).__name__}, not a URI text")
    try:
        parsed = urlsplit(re.sub(r"^bigquery/", "bigquery:", uri.strip(), flags=re.IGNORECASE))
    except ValueError as error:
        raise ValueError(f"cannot be read as a URI ({error})") from None
    scheme = parsed.scheme.casefold()
    if scheme not in _TABLE_NAMING:
        raise ValueError(f"has scheme {scheme!r}, which names no warehouse table" if scheme else "has no scheme")
    naming = _TABLE_NAMING[scheme]
    path = parsed.path.strip("/")
    segments = path.split("/") if path else []
    if scheme in _AUTHORITY_IN_NAME and parsed.netloc:
        segments.insert(0, parsed.netloc)
    if len(segments) == 1:
        segments = segments[0].split(".")
    parts = tuple(unquote(segment).strip() for segment in segments)
    if len(parts) != len(naming) or not all(parts):
        raise ValueError(f"does not name a table: a {scheme} table is named {'.'.join(naming)}")
    if any("." in part for part in parts):
        raise ValueError("has a dot inside a name, which a source: selector cannot tell from a separator")
    return parts


def selection_from_asset_events(
    context_or_events: Mapping[Any, Any],
    *,
    extra_select: SelectionInput = (),
    exclude: SelectionInput = (),
    match_models: bool = True,
) -> Selection:
    """The syncs that read the tables this DAG run's triggering asset events name, for ``select_syncs``.

    ``context_or_events`` is the task's context (its ``triggering_asset_events``, or
    ``triggering_dataset_events`` on Airflow 2.11) or those events themselves. Each table
    selects its syncs as the module says: the table's own, and unless ``match_models=False``
    those of the Census model named like it. ``extra_select`` selectors are added on every run
    and ``exclude`` ones removed. A triggering URI that names no table raises
    :class:`CensusSelectorError` naming every such URI, so a DAG scheduled on some other asset
    fails instead of quietly syncing less. A run no asset event triggered (a manual run)
    selects only ``extra_select``; with none, ``select_syncs`` treats it by its ``on_no_match``
    with a message that says so.
    """
    uris = list(dict.fromkeys(_triggering_uris(context_or_events)))
    unreadable = read_table_uris(uris).unreadable
    if unreadable:
        raise CensusSelectorError(
            f"cannot select syncs by this DAG run's triggering asset events: {_listed(unreadable)}. "
            f"{TABLE_URI_FORMS}. Schedule the Census DAG on table assets only, or pick its events' URIs yourself."
        )
    tables = tuple(_table_selector(uri, match_models) for uri in uris)
    extras = parse_selectors(extra_select, "extra_select")
    reason = "" if uris else NOT_ASSET_TRIGGERED
    return Selection(tables + extras, parse_selectors(exclude, "exclude"), empty_reason=reason)


def _table_selector(uri: str, match_models: bool) -> TableSelector:
    parts = tuple(part.casefold() for part in _table_parts(uri))
    return TableSelector(parts, parts[-1] if match_models else None, uri)


def _triggering_uris(context_or_events: Mapping[Any, Any]) -> Iterator[str]:
    """The URI of every triggering event's asset, in the order Airflow lists them."""
    events = _events(context_or_events)
    for key in events:
        for event in events[key]:
            yield _event_uri(key, event)


def _events(context_or_events: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """The events mapping: a context's (empty when it has none), or the one given.

    Only the names of a context are looked at: Airflow 3's events mapping refuses string keys.
    """
    names = {key for key in context_or_events if isinstance(key, str)}
    for key in _EVENTS_KEYS:
        if key in names:
            return context_or_events[key] or {}
    return {} if names.intersection(_CONTEXT_KEYS) else context_or_events


def _event_uri(key: Any, event: Any) -> str:
    """The URI of the asset an event is of: Airflow 3's ``event.asset.uri``, Airflow 2.11's ``event.uri``.

    The event's own asset, not the key, so an event reached through an asset alias names its table.
    """
    uri = getattr(getattr(event, "asset", None), "uri", None) or getattr(event, "uri", None)
    return str(uri if uri is not None else getattr(key, "uri", key))


def _listed(unreadable: Iterable[UnreadableUri]) -> str:
    return "; ".join(f"{item.uri!r} {item.reason}" for item in unreadable)
