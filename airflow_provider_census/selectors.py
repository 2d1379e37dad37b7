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

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TypeAlias, TypeVar

from airflow_provider_census.api.errors import CensusInputError
from airflow_provider_census.api.inputs import RENDERED_TO_NOTHING

ANY = "*"
"""A part of exactly this sets no condition: it matches every value, unknown ones too."""
PREFIXES = ("id", "label", "source", "destination")
MAX_SOURCE_PARTS = 3
FORMS = (
    "A selector is one of: 12 or id:12 (a sync id); label:crm_* (the sync's label); "
    "source:dim_users, source:analytics.dim_users or source:prod.analytics.dim_users (a model, "
    "segment or dataset by name, or a table by name, schema.table or catalog.schema.table); "
    "destination:salesforce or destination:salesforce/contact (the destination connection's name "
    "or type, then its object). Globs (*, ?, [...]) work in every part, case-insensitively."
)
_PREFIX_ALIASES = {
    "model": "source",
    "table": "source",
    "segment": "source",
    "dataset": "source",
    "src": "source",
    "sync": "id",
    "sync_id": "id",
    "name": "label",
    "tag": "label",
    "dest": "destination",
    "object": "destination",
    "connection": "destination",
}
"""Prefixes people reach for (from dbt or from Census's own words), and the one they mean."""
_DIGITS = re.compile(r"[0-9]+")
_NUMBER_LIKE = re.compile(r"[-+]?[0-9]*\.?[0-9]+")
_SECOND_SELECTOR = re.compile(r"[\s,](?:id|label|source|destination):\S", re.IGNORECASE)
_SEVERAL_IDS = re.compile(r"[0-9]+(?:[\s,]+[0-9]+)+")
_NOT_AN_ID = "is not a sync id: sync ids are positive integers, e.g. 12 or id:12"

SelectionInput: TypeAlias = str | int | Sequence[str | int]
"""What ``select`` and ``exclude`` take: a selector string, a sync id, or a list of them."""


class CensusSelectorError(CensusInputError):
    """A selector string cannot be read; the message names it, its position and the accepted forms."""


@dataclass(frozen=True, kw_only=True)
class SyncFacts:
    """What a sync is matched on. Only ``id`` is sure; None stands for what Census did not say.

    ``source_kind`` is Census's word for the source object (``model``, ``table``,
    ``segment``, ``dataset``...). ``source_name`` names a model, segment or dataset;
    ``source_catalog``/``source_schema``/``source_table`` name a table. The destination is
    its connection's ``name`` and ``type`` (the service, e.g. ``salesforce``) and the
    ``object`` synced to (e.g. ``contact``).
    """

    id: int
    label: str | None = None
    paused: bool | None = None
    source_kind: str | None = None
    source_name: str | None = None
    source_catalog: str | None = None
    source_schema: str | None = None
    source_table: str | None = None
    destination_name: str | None = None
    destination_type: str | None = None
    destination_object: str | None = None

    @property
    def source_is_table(self) -> bool:
        """Census said it reads a table, or said nothing of the kind but named a table."""
        if self.source_kind is None:
            return self.source_table is not None
        return self.source_kind.casefold() == "table"


Facts = TypeVar("Facts", bound=SyncFacts)


def _matches(pattern: str, *values: str | None) -> bool:
    """True when the (casefolded) glob matches one of the known values; ``*`` matches even unknown ones."""
    if pattern == ANY:
        return True
    return any(value is not None and fnmatchcase(value.casefold(), pattern) for value in values)


class _NeedsNoLookup:
    """What a selector needs looked up beyond the sync's own record: nothing, unless it says so."""

    @property
    def needs_source_names(self) -> bool:
        return False

    @property
    def needs_destinations(self) -> bool:
        return False


@dataclass(frozen=True)
class IdSelector(_NeedsNoLookup):
    """``12`` or ``id:12``: one sync by its id."""

    sync_id: int
    text: str = field(compare=False)

    def matches(self, sync: SyncFacts) -> bool:
        return sync.id == self.sync_id


@dataclass(frozen=True)
class LabelSelector(_NeedsNoLookup):
    """``label:crm_*``: syncs by their label."""

    pattern: str
    text: str = field(compare=False)

    def matches(self, sync: SyncFacts) -> bool:
        return _matches(self.pattern, sync.label)


@dataclass(frozen=True)
class SourceSelector(_NeedsNoLookup):
    """``source:name``, ``source:schema.table`` or ``source:catalog.schema.table``."""

    parts: tuple[str, ...]
    text: str = field(compare=False)

    def matches(self, sync: SyncFacts) -> bool:
        if len(self.parts) == 1:
            table = sync.source_table if sync.source_is_table else None
            return _matches(self.parts[0], sync.source_name, table)
        if not sync.source_is_table:
            return False
        table_parts = (sync.source_catalog, sync.source_schema, sync.source_table)[-len(self.parts) :]
        return all(_matches(pattern, value) for pattern, value in zip(self.parts, table_parts, strict=True))

    @property
    def needs_source_names(self) -> bool:
        """A model's name is not in the sync's own record; a table's parts are, so dotted forms need no lookup."""
        return len(self.parts) == 1 and self.parts[0] != ANY


@dataclass(frozen=True)
class DestinationSelector(_NeedsNoLookup):
    """``destination:connection`` or ``destination:connection/object``."""

    connection: str
    object: str | None
    text: str = field(compare=False)

    def matches(self, sync: SyncFacts) -> bool:
        if not _matches(self.connection, sync.destination_name, sync.destination_type):
            return False
        return self.object is None or _matches(self.object, sync.destination_object)

    @property
    def needs_destinations(self) -> bool:
        """The sync names its object but not its connection's name or type; ``*`` needs neither."""
        return self.connection != ANY


@dataclass(frozen=True)
class TableSelector(_NeedsNoLookup):
    """The syncs that read one warehouse table a URI names; built in code (never parsed), ``text`` being the URI.

    ``table`` holds the table's name parts, casefolded, compared literally (no globs) with the
    sync's catalog, schema and table from the right (two parts: schema and table). ``model``,
    when not None, also selects the syncs whose source is a Census model of that (casefolded)
    name: a convention, not a link Census records; see :mod:`airflow_provider_census.assets.tables`.
    """

    table: tuple[str, ...]
    model: str | None
    text: str = field(compare=False)

    def matches(self, sync: SyncFacts) -> bool:
        return self._reads_table(sync) or self._reads_model(sync)

    def _reads_table(self, sync: SyncFacts) -> bool:
        if not sync.source_is_table:
            return False
        parts = (sync.source_catalog, sync.source_schema, sync.source_table)[-len(self.table) :]
        return all(
            value is not None and value.casefold() == part for part, value in zip(self.table, parts, strict=True)
        )

    def _reads_model(self, sync: SyncFacts) -> bool:
        kind, name = sync.source_kind, sync.source_name
        if self.model is None or kind is None or name is None:
            return False
        return kind.casefold() == "model" and name.casefold() == self.model

    @property
    def needs_source_names(self) -> bool:
        """A model's name may need a lookup; a table's parts are in the sync's own record."""
        return self.model is not None


Selector: TypeAlias = IdSelector | LabelSelector | SourceSelector | DestinationSelector | TableSelector


@dataclass(frozen=True)
class Selection:
    """Parsed ``select`` and ``exclude`` lists; build one with :func:`parse_selection`.

    A selection built in code may include nothing (say, from a DAG run no asset event
    triggered); ``empty_reason`` then says why, as the message when nothing is selected.
    """

    include: tuple[Selector, ...]
    exclude: tuple[Selector, ...] = ()
    empty_reason: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """The selection as it was written, for log lines and messages: ``12, label:crm_* excluding 14``."""
        text = ", ".join(selector.text for selector in self.include)
        if self.exclude:
            text += " excluding " + ", ".join(selector.text for selector in self.exclude)
        return text

    def matches(self, sync: SyncFacts) -> bool:
        return any(s.matches(sync) for s in self.include) and not any(s.matches(sync) for s in self.exclude)

    def select(self, syncs: Iterable[Facts]) -> list[Facts]:
        """The syncs selected, in the order given."""
        return [sync for sync in syncs if self.matches(sync)]

    def unmatched(self, syncs: Iterable[SyncFacts]) -> list[str]:
        """The ``select`` strings that match none of ``syncs`` (before exclusion), for "matched no sync"."""
        return _unmatched(self.include, syncs)

    def unmatched_excludes(self, syncs: Iterable[SyncFacts]) -> list[str]:
        """The ``exclude`` strings that match none of ``syncs``: likely typos, which would exclude nothing."""
        return _unmatched(self.exclude, syncs)

    @property
    def needs_source_names(self) -> bool:
        """Whether matching reads the names of model, segment and dataset sources (an extra lookup)."""
        return any(s.needs_source_names for s in self.include + self.exclude)

    @property
    def needs_destinations(self) -> bool:
        """Whether matching reads destination connections' names and types (an extra lookup)."""
        return any(s.needs_destinations for s in self.include + self.exclude)

    @property
    def explicit_ids(self) -> tuple[int, ...] | None:
        """The ids, when ``select`` names syncs only by id: those can be fetched instead of listing every sync.

        ``exclude`` still applies to what is fetched.
        """
        if all(isinstance(s, IdSelector) for s in self.include):
            return tuple(dict.fromkeys(s.sync_id for s in self.include if isinstance(s, IdSelector)))
        return None


def _unmatched(selectors: tuple[Selector, ...], syncs: Iterable[SyncFacts]) -> list[str]:
    candidates = tuple(syncs)
    return [s.text for s in selectors if not any(s.matches(sync) for sync in candidates)]


def parse_selection(select: SelectionInput, exclude: SelectionInput | None = None) -> Selection:
    """Check and parse every selector string, so a bad one fails before anything is asked of Census."""
    include = _parse_list(select, "select")
    if not include:
        raise CensusSelectorError(
            f"select is an empty list: name at least one sync, e.g. select=['label:crm_*'] or select=[12]. {FORMS}"
        )
    return Selection(include, () if exclude is None else _parse_list(exclude, "exclude"))


def parse_selectors(value: SelectionInput, argument: str = "select") -> tuple[Selector, ...]:
    """Check and parse one list of selectors, which may be empty: part of a selection built in code.

    ``argument`` names the list in messages (``extra_select[1] 'lable:x' ...``).
    """
    return _parse_list(value, argument)


def _parse_list(value: object, argument: str) -> tuple[Selector, ...]:
    if isinstance(value, (str, int)):
        return (_parse_item(value, argument),)
    if not isinstance(value, (list, tuple)):
        raise CensusSelectorError(
            f"{argument} must be a selector string, a sync id or a list of them, got {type(value).__name__}. {FORMS}"
        )
    return tuple(_parse_item(item, f"{argument}[{position}]") for position, item in enumerate(value))


def _parse_item(item: object, where: str) -> Selector:
    """One selector; ``where`` names the argument and position for the message (``select[2]``)."""
    if isinstance(item, bool) or not isinstance(item, (str, int)):
        raise CensusSelectorError(
            f"{where} is a {type(item).__name__} ({item!r}), not a selector: pass text such as "
            f"'label:crm_*' or an integer sync id. {FORMS}"
        )
    if isinstance(item, int):
        return IdSelector(_sync_id(str(item), item, where), str(item))
    text = item.strip()
    _reject_whole_text_mistakes(text, item, where)
    prefix, colon, value = text.partition(":")
    if not colon:
        return _parse_bare(text, where)
    method = prefix.strip().casefold()
    if method not in PREFIXES:
        raise _error(where, item, _unknown_prefix(text, prefix.strip()))
    value = value.strip()
    if not value:
        raise _error(where, item, f"has nothing after '{prefix}:'; write e.g. {_EXAMPLES[method]}")
    return _PARSERS[method](value, text, where)


def _reject_whole_text_mistakes(text: str, item: str, where: str) -> None:
    """Mistakes a prefix cannot reveal: a template that rendered to nothing or to a list, two selectors in one."""
    if text in RENDERED_TO_NOTHING:
        raise _error(
            where, item, "is empty: a template probably rendered to nothing (check its param, XCom or variable)"
        )
    if _SECOND_SELECTOR.search(text) or _SEVERAL_IDS.fullmatch(text):
        raise _error(
            where, item, "holds more than one selector: pass each as its own list item, e.g. ['label:crm_*', 12]"
        )
    if text.startswith(("[", "(")) and text.endswith(("]", ")")):
        raise _error(
            where,
            item,
            "looks like a list rendered to text: pass a list, or render templates as native objects "
            "(render_template_as_native_obj=True on the DAG)",
        )


def _parse_bare(text: str, where: str) -> Selector:
    """Text without a prefix: a sync id, or a mistake worth a hint."""
    if _DIGITS.fullmatch(text):
        return IdSelector(_sync_id(text, text, where), text)
    if _NUMBER_LIKE.fullmatch(text):
        problem = _NOT_AN_ID
    else:
        problem = f"has no prefix and is not a sync id; to select by label write label:{text}"
    raise _error(where, text, problem)


def _sync_id(digits: str, given: object, where: str) -> int:
    sync_id = int(digits) if _DIGITS.fullmatch(digits) else 0
    if sync_id < 1:
        raise _error(where, given, _NOT_AN_ID)
    return sync_id


def _parse_id(value: str, text: str, where: str) -> Selector:
    if not _DIGITS.fullmatch(value):
        hint = "; to select many syncs use label:, source: or destination: globs" if ANY in value else ""
        raise _error(where, text, _NOT_AN_ID + hint)
    return IdSelector(_sync_id(value, text, where), text)


def _parse_label(value: str, text: str, where: str) -> Selector:
    return LabelSelector(value.casefold(), text)


def _parse_source(value: str, text: str, where: str) -> Selector:
    parts = tuple(part.strip().casefold() for part in value.split("."))
    if len(parts) > MAX_SOURCE_PARTS:
        raise _error(
            where,
            text,
            f"has {len(parts)} dotted parts; source: takes a name, schema.table or catalog.schema.table "
            "(a dot inside a name is matched with ?)",
        )
    if not all(parts):
        raise _error(where, text, "has an empty part between dots; write e.g. source:analytics.dim_users")
    return SourceSelector(parts, text)


def _parse_destination(value: str, text: str, where: str) -> Selector:
    connection, slash, obj = (part.strip().casefold() for part in value.partition("/"))
    if not connection:
        raise _error(where, text, f"names no connection before '/'; for any connection write destination:*/{obj}")
    if slash and not obj:
        raise _error(where, text, f"names no object after '/'; write destination:{connection} for every object")
    return DestinationSelector(connection, obj or None, text)


_PARSERS = {
    "id": _parse_id,
    "label": _parse_label,
    "source": _parse_source,
    "destination": _parse_destination,
}
_EXAMPLES = {
    "id": "id:12",
    "label": "label:crm_*",
    "source": "source:analytics.dim_users",
    "destination": "destination:salesforce/contact",
}


def _unknown_prefix(text: str, prefix: str) -> str:
    """What is wrong with a prefix we do not know, with the nearest known one when there is one."""
    if "://" in text:
        return (
            "is a URI, not a selector: turn table URIs into selectors with "
            "airflow_provider_census.assets.tables.table_selectors_from_uris()"
        )
    if not prefix:
        return "has nothing before ':'; start it with id:, label:, source: or destination:"
    folded = prefix.casefold()
    nearest = _PREFIX_ALIASES.get(folded) or next(iter(difflib.get_close_matches(folded, PREFIXES, n=1)), None)
    hint = f"; did you mean {nearest}:?" if nearest else ""
    return f"has an unknown prefix '{prefix}:'{hint}"


def _error(where: str, given: object, problem: str) -> CensusSelectorError:
    return CensusSelectorError(f"{where} {given!r} {problem}. {FORMS}")
