"""Choosing Census syncs by what they are, in the spirit of dbt's ``--select`` and ``--exclude``.

A selection is a list of selector strings; it picks the syncs any of them matches, minus
the syncs any string of its ``exclude`` list matches. A single string means a list of one,
and an integer is a sync id. The forms:

``12``, ``id:12``
    The sync with that id.
``label:crm_*``
    Syncs whose label matches.
``source:dim_users``
    Syncs reading a model, segment or dataset of that name, or a table of that table name
    (a table's name here is its ``table_name`` alone, without schema).
``source:analytics.dim_users``, ``source:prod.analytics.dim_users``
    Syncs reading a table, by ``schema.table`` or ``catalog.schema.table``. Models,
    segments and datasets have no schema, so the dotted forms never match them: a model
    built on ``analytics.dim_users`` is selected by its own name, not by that table's.
``destination:salesforce``, ``destination:salesforce/contact``, ``destination:*/user``
    Syncs whose destination connection has that name or type, then (after the first
    ``/``) that destination object.

Values are matched case-insensitively, with shell globs in every part (``*``, ``?``,
``[...]``, as in :mod:`fnmatch`). Dots split a source's parts and the first slash splits a
destination's, so a name holding either is matched with ``?`` in its place.

Census answers vary, so every fact about a sync but its id may be unknown (None). A part
compared with an unknown fact never matches; a part that is exactly ``*`` sets no
condition, so it matches unknown facts too, and ``destination:*/user`` needs no lookup
of destination connections.

Selections are parsed once, before anything is asked of Census, so a typo fails the task
at once with a :class:`CensusSelectorError` naming the string, where it stood, what is
wrong with it and the forms accepted. Pure: no Airflow and no HTTP here (the error's base
class comes from the provider's error tree, so one ``except CensusInputError`` covers it).

Warehouse table URIs (the names Airflow assets and OpenLineage give tables) are read in
:mod:`airflow_provider_census.assets.tables`, into ``source:`` selectors or into the
:class:`TableSelector` of each table a DAG run's triggering asset events name.
"""

from airflow_provider_census.selectors.matching import (
    ANY,
    DestinationSelector,
    Facts,
    IdSelector,
    LabelSelector,
    Selector,
    SourceSelector,
    SyncFacts,
    TableSelector,
)
from airflow_provider_census.selectors.parsing import (
    FORMS,
    MAX_SOURCE_PARTS,
    PREFIXES,
    CensusSelectorError,
    SelectionInput,
    parse_selection,
    parse_selectors,
)
from airflow_provider_census.selectors.selection import Selection

__all__ = [
    "ANY",
    "FORMS",
    "MAX_SOURCE_PARTS",
    "PREFIXES",
    "CensusSelectorError",
    "DestinationSelector",
    "Facts",
    "IdSelector",
    "LabelSelector",
    "Selection",
    "SelectionInput",
    "Selector",
    "SourceSelector",
    "SyncFacts",
    "TableSelector",
    "parse_selection",
    "parse_selectors",
]
