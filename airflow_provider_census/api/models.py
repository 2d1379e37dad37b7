"""Typed results that keep every field Census sent.

Census adds fields to its answers over time, so each result keeps the whole payload in
``raw`` and types only what the provider reasons about. Catalog objects (sources,
destinations, their objects) are handed to users as-is, so they are TypedDicts over the
payload; sync runs, syncs and pages drive decisions, so they are validated dataclasses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Generic, TypedDict, TypeVar

from airflow_provider_census.api.states import RunOutcome, classify_run

T = TypeVar("T")


class ShapeError(ValueError):
    """A payload does not have the shape Census documents; the client turns it into an API error."""


class Source(TypedDict, total=False):
    id: int
    slug: str
    name: str
    label: str | None
    last_test_succeeded: bool | None
    last_tested_at: str | None
    credentials: dict[str, Any]
    read_only_connection: bool
    group_id: str
    data_sources: list[dict[str, Any]]


class SourceObject(TypedDict, total=False):
    """A model or a table of a source; ``type`` says which."""

    type: str
    id: int
    name: str
    query: str
    compiled_query: str | None
    table_catalog: str
    table_schema: str
    table_name: str
    created_at: str
    updated_at: str
    columns: list[dict[str, Any]]


class Activation(TypedDict, total=False):
    """A destination connection: v1 calls it a destination (integer id), V2 an activation (text id)."""

    id: int | str
    slug: str
    name: str
    type: str
    group_id: str
    credentials: dict[str, Any]
    objects: list[dict[str, Any]]


class ActivationObject(TypedDict, total=False):
    label: str
    full_name: str
    allow_custom_fields: bool
    allow_case_sensitive_field_names: bool
    fields: list[dict[str, Any]]


def require_mapping(value: object, what: str) -> Mapping[str, Any]:
    """``value`` as a JSON object, or a ShapeError that says what was expected."""
    if not isinstance(value, Mapping):
        raise ShapeError(f"{what} should be a JSON object, got {type(value).__name__}")
    return value


def require_list(value: object, what: str) -> list[Any]:
    """``value`` as a JSON array, or a ShapeError that says what was expected."""
    if not isinstance(value, list):
        raise ShapeError(f"{what} should be a JSON array, got {type(value).__name__}")
    return value


def optional_int(value: object) -> int | None:
    """A count or id that may be null or sent as text; anything else reads as None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def required_int(data: Mapping[str, Any], key: str, what: str) -> int:
    value = optional_int(data.get(key))
    if value is None:
        raise ShapeError(f"{what} has no integer {key!r} (got {data.get(key)!r})")
    return value


def optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def first_int(data: Mapping[str, Any], *keys: str) -> int | None:
    """The first of several spellings of a count that Census sent as a number."""
    for key in keys:
        value = optional_int(data.get(key))
        if value is not None:
            return value
    return None


@dataclass(frozen=True, kw_only=True)
class RunDetails:
    """What Census tells of a run beyond its ids and state: step, counts, its error, when.

    Each may be null while a run is going or after it failed. Shared by :class:`SyncRun` and
    the task-side summary (``airflow_provider_census.runs.RunSummary``), which copies them.
    """

    current_step: str | None = None
    records_processed: int | None = None
    records_updated: int | None = None
    records_failed: int | None = None
    records_invalid: int | None = None
    source_record_count: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_detail: str | None = None
    full_sync: bool | None = None
    created_at: str | None = None
    completed_at: str | None = None


@dataclass(frozen=True, kw_only=True)
class SyncRun(RunDetails):
    """One run of a sync. Only ``id``, ``sync_id`` and ``status`` are required of a full answer.

    ``unread`` names the fields the route that read the run does not carry (V2's documented
    ``GET /syncs/test_status`` has no counts, no ``canceled`` and no ``sync_id``): they are
    None because they are unknown, not because Census said null. ``sync_id`` is None only then,
    when the reader did not know it either.
    """

    id: int
    sync_id: int | None
    status: str
    canceled: bool | None
    updated_at: str | None = None
    unread: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, payload: object) -> SyncRun:
        data = require_mapping(payload, "a sync run")
        full_sync = data.get("full_sync")
        return cls(
            **_run_basics(data),
            sync_id=required_int(data, "sync_id", "a sync run"),
            canceled=data.get("canceled") is True,
            records_processed=optional_int(data.get("records_processed")),
            records_updated=optional_int(data.get("records_updated")),
            records_failed=optional_int(data.get("records_failed")),
            records_invalid=first_int(data, "records_invalid", "records_invalids", "source_record_invalids"),
            source_record_count=optional_int(data.get("source_record_count")),
            current_step=optional_str(data.get("current_step")),
            full_sync=full_sync if isinstance(full_sync, bool) else None,
        )

    @classmethod
    def from_test_status(cls, payload: object) -> SyncRun:
        """A run as V2's ``GET /syncs/test_status`` documents it: state, times and error, nothing else."""
        data = require_mapping(payload, "a sync run status")
        run = cls(**_run_basics(data), sync_id=None, canceled=None, unread=TEST_STATUS_UNREAD)
        return run.with_sync_id(optional_int(data.get("sync_id")))

    def with_sync_id(self, sync_id: int | None) -> SyncRun:
        """The run with the sync it belongs to, when the caller knows it and the route did not say."""
        if self.sync_id is not None or sync_id is None:
            return self
        return replace(self, sync_id=sync_id, unread=tuple(name for name in self.unread if name != "sync_id"))

    @property
    def outcome(self) -> RunOutcome:
        return classify_run(self.status, self.canceled)


TEST_STATUS_UNREAD = (
    "sync_id",
    "canceled",
    "records_processed",
    "records_updated",
    "records_failed",
    "records_invalid",
    "source_record_count",
    "current_step",
    "full_sync",
)
"""What V2's ``GET /syncs/test_status`` does not carry of a run (its reference lists id, status, times, error)."""


def _run_basics(data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every route that reads a run carries: id, state, times, error, and the whole payload."""
    status = data.get("status")
    if not isinstance(status, str):
        raise ShapeError(f"sync run {data.get('id')!r} has no text 'status' (got {status!r})")
    return {
        "id": required_int(data, "id", "a sync run"),
        "status": status,
        "error_code": optional_str(data.get("error_code")),
        "error_message": optional_str(data.get("error_message")),
        "error_detail": optional_str(data.get("error_detail")),
        "created_at": optional_str(data.get("created_at")),
        "updated_at": optional_str(data.get("updated_at")),
        "completed_at": optional_str(data.get("completed_at")),
        "raw": dict(data),
    }


@dataclass(frozen=True)
class SyncSource:
    """What a sync reads, as far as Census said: its source connection and object.

    ``kind`` is Census's word for the object (``model``, ``table``, ``segment``, ...);
    ``name`` names a model or segment; ``catalog``/``schema``/``table`` name a table. Census
    has sent both the ``object`` form and an older flat one (``type``, ``model_name``,
    ``table_name``...), so both are read; whatever is missing is None.
    """

    connection_id: int | None = None
    kind: str | None = None
    object_id: int | None = None
    name: str | None = None
    catalog: str | None = None
    schema: str | None = None
    table: str | None = None

    @classmethod
    def from_api(cls, attrs: object) -> SyncSource:
        if not isinstance(attrs, Mapping):
            return cls()
        spec = attrs.get("object")
        if not isinstance(spec, Mapping):
            spec = {**attrs, "name": attrs.get("model_name") or attrs.get("name")}
        return cls(
            connection_id=optional_int(attrs.get("connection_id")),
            kind=optional_str(spec.get("type")),
            object_id=optional_int(spec.get("id")),
            name=optional_str(spec.get("name")),
            catalog=optional_str(spec.get("table_catalog")),
            schema=optional_str(spec.get("table_schema")),
            table=optional_str(spec.get("table_name")),
        )


@dataclass(frozen=True)
class SyncDestination:
    """Where a sync writes: the destination connection (v1: an integer id; V2: an activation's text id) and object."""

    connection_id: int | str | None = None
    object_name: str | None = None

    @classmethod
    def from_api(cls, attrs: object) -> SyncDestination:
        if not isinstance(attrs, Mapping):
            return cls()
        connection = attrs.get("connection_id")
        return cls(
            connection_id=connection if isinstance(connection, str) else optional_int(connection),
            object_name=optional_str(attrs.get("object")),
        )


@dataclass(frozen=True)
class Sync:
    """A sync's configuration. ``status`` here is the sync's (e.g. "Ready"), not a run's."""

    id: int
    label: str | None
    operation: str | None
    paused: bool | None
    status: str | None
    source: SyncSource = field(default_factory=SyncSource)
    destination: SyncDestination = field(default_factory=SyncDestination)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, payload: object) -> Sync:
        data = require_mapping(payload, "a sync")
        paused = data.get("paused")
        return cls(
            id=required_int(data, "id", "a sync"),
            label=optional_str(data.get("label")),
            operation=optional_str(data.get("operation")),
            paused=paused if isinstance(paused, bool) else None,
            status=optional_str(data.get("status")),
            source=SyncSource.from_api(data.get("source_attributes")),
            destination=SyncDestination.from_api(data.get("destination_attributes")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class SyncWrite:
    """The answer to creating, validating, updating or deleting a sync.

    ``status`` is Census's outcome word (``created``, ``updated``, ``success`` for a
    ``validate_only`` check, ``deleted``); ``sync_id`` is known when Census said it.
    """

    status: str
    sync_id: int | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Pagination:
    page: int | None
    per_page: int | None
    total_records: int | None
    next_page: int | None
    prev_page: int | None
    last_page: int | None

    @classmethod
    def from_api(cls, payload: object) -> Pagination | None:
        if not isinstance(payload, Mapping):
            return None
        return cls(
            page=optional_int(payload.get("page")),
            per_page=optional_int(payload.get("per_page")),
            total_records=optional_int(payload.get("total_records")),
            next_page=optional_int(payload.get("next_page")),
            prev_page=optional_int(payload.get("prev_page")),
            last_page=optional_int(payload.get("last_page")),
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, with what Census said about the pages after it."""

    items: Sequence[T]
    number: int
    per_page: int
    pagination: Pagination | None
    next_url: str | None

    @property
    def next_number(self) -> int | None:
        """The next page to ask for, or None at the end.

        Reads the newer ``pagination`` block when there is one; else the older ``next``
        URL, which some answers keep even on their last page, so a short or empty page
        also ends the list.
        """
        if self.pagination is not None and (self.pagination.next_page or self.pagination.last_page):
            return self.pagination.next_page if self.pagination.next_page else None
        if not self.next_url or len(self.items) < self.per_page:
            return None
        return self.number + 1


def census_time(timestamp: str | None) -> float | None:
    """An ISO 8601 time as Census writes it (``2021-10-20T02:44:35.381Z``) in epoch seconds; None if unreadable."""
    if not timestamp:
        return None
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
