"""How a selector matches a sync: the facts a sync is matched on, and one type per selector form.

Pure: no Airflow and no HTTP. Each selector says whether it matches a :class:`SyncFacts` and
what it needs looked up beyond the sync's own record; :mod:`.parsing` builds them from text,
:class:`~airflow_provider_census.selectors.selection.Selection` combines them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TypeAlias, TypeVar

ANY = "*"
"""A part of exactly this sets no condition: it matches every value, unknown ones too."""


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
