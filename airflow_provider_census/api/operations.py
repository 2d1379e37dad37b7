"""Each call the provider makes: what it sends, and how its answer is read.

An :class:`Operation` pairs a request with the function that turns Census's envelope into
a typed result. The hook's synchronous and asynchronous methods both run these, so a call
is defined once whichever client sends it. Arguments are checked here, before anything is
sent, so a bad id fails with a message that names it rather than as a Census 404.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from airflow_provider_census.api import endpoints as ep
from airflow_provider_census.api.errors import CensusInputError
from airflow_provider_census.api.models import (
    Destination,
    DestinationObject,
    Page,
    Pagination,
    Source,
    SourceObject,
    Sync,
    SyncRun,
    SyncWrite,
    optional_int,
    require_list,
    require_mapping,
    required_int,
)

T = TypeVar("T")
Envelope = Mapping[str, Any]

ORDERS = ("asc", "desc")
DEFAULT_PER_PAGE = 25
SYNC_OPERATIONS = ("append", "insert", "mirror", "update", "upsert")


@dataclass(frozen=True)
class Operation(Generic[T]):
    request: ep.ApiRequest
    read: Callable[[Envelope], T]


@dataclass(frozen=True)
class PageQuery:
    """Which page of a list to ask for; checked against Census's limits."""

    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    order: str = "desc"

    def __post_init__(self) -> None:
        if isinstance(self.page, bool) or not isinstance(self.page, int) or self.page < 1:
            raise CensusInputError(f"page must be an integer from 1, got {self.page!r}")
        if (
            isinstance(self.per_page, bool)
            or not isinstance(self.per_page, int)
            or not 1 <= self.per_page <= ep.MAX_PER_PAGE
        ):
            raise CensusInputError(f"per_page must be an integer from 1 to {ep.MAX_PER_PAGE}, got {self.per_page!r}")
        if self.order not in ORDERS:
            raise CensusInputError(f"order must be 'asc' or 'desc', got {self.order!r}")

    def params(self) -> dict[str, str | int | bool | None]:
        return {"page": self.page, "per_page": self.per_page, "order": self.order}

    def following(self, page_number: int) -> PageQuery:
        return PageQuery(page_number, self.per_page, self.order)


RENDERED_TO_NOTHING = ("", "None")


def census_id(value: object, name: str) -> int:
    """A positive integer id from an int or a string of digits (templates render to text)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CensusInputError(f"{name} must be a positive integer Census id, got {value!r}. {_id_hint(value, name)}")
    return value


def _id_hint(value: object, name: str) -> str:
    """What to do about a bad id: a template that rendered to nothing is the usual cause of '' and 'None'."""
    if isinstance(value, str) and value.strip() in RENDERED_TO_NOTHING:
        return (
            f"A template for {name} probably rendered to nothing: check that the XCom, param or "
            "variable it reads exists (for a run id, that the trigger task ran and returned it)."
        )
    if name == "sync_run_id":
        return "Pass the id that CensusTriggerSyncOperator returned, e.g. \"{{ ti.xcom_pull(task_ids='trigger') }}\"."
    return "Find the id in the Census app's URL (for a sync: /syncs/<id>)."


def id_or_slug(value: object, name: str) -> str | int:
    """A connection's integer id or its slug, both accepted by Census in the same place."""
    if isinstance(value, str) and value.strip() and not value.strip().isdigit():
        return value.strip()
    return census_id(value, name)


def _data(envelope: Envelope) -> Any:
    return envelope.get("data")


def _one(convert: Callable[[Any], T]) -> Callable[[Envelope], T]:
    return lambda envelope: convert(_data(envelope))


def _as_dict(payload: Any) -> Any:
    return dict(require_mapping(payload, "the answer's 'data'"))


def _page(query: PageQuery, convert: Callable[[Any], T]) -> Callable[[Envelope], Page[T]]:
    def read(envelope: Envelope) -> Page[T]:
        items = [convert(item) for item in require_list(_data(envelope), "the answer's 'data'")]
        next_url = envelope.get("next")
        return Page(
            items=items,
            number=query.page,
            per_page=query.per_page,
            pagination=Pagination.from_api(envelope.get("pagination")),
            next_url=next_url if isinstance(next_url, str) else None,
        )

    return read


def _listing(
    endpoint: ep.Endpoint, query: PageQuery, convert: Callable[[Any], T], **path: str | int
) -> Operation[Page[T]]:
    return Operation(endpoint.bind(params=query.params(), **path), _page(query, convert))


def list_sources(query: PageQuery) -> Operation[Page[Source]]:
    return _listing(ep.LIST_SOURCES, query, _as_dict)


def get_source(source: object) -> Operation[Source]:
    return Operation(ep.GET_SOURCE.bind(source=id_or_slug(source, "source")), _one(_as_dict))


def list_source_objects(source: object, query: PageQuery) -> Operation[Page[SourceObject]]:
    return _listing(ep.LIST_SOURCE_OBJECTS, query, _as_dict, source=id_or_slug(source, "source"))


def list_models(source: object, query: PageQuery) -> Operation[Page[SourceObject]]:
    return _listing(ep.LIST_MODELS, query, _as_dict, source=id_or_slug(source, "source"))


def get_model(source: object, model_id: object) -> Operation[SourceObject]:
    request = ep.GET_MODEL.bind(source=id_or_slug(source, "source"), model_id=census_id(model_id, "model_id"))
    return Operation(request, _one(_as_dict))


def list_tables(source: object, query: PageQuery) -> Operation[Page[SourceObject]]:
    return _listing(ep.LIST_TABLES, query, _as_dict, source=id_or_slug(source, "source"))


def get_table(source: object, table_id: object) -> Operation[SourceObject]:
    request = ep.GET_TABLE.bind(source=id_or_slug(source, "source"), table_id=census_id(table_id, "table_id"))
    return Operation(request, _one(_as_dict))


def list_destinations(query: PageQuery) -> Operation[Page[Destination]]:
    return _listing(ep.LIST_DESTINATIONS, query, _as_dict)


def get_destination(destination: object) -> Operation[Destination]:
    request = ep.GET_DESTINATION.bind(destination=id_or_slug(destination, "destination"))
    return Operation(request, _one(_as_dict))


def list_destination_objects(destination: object, query: PageQuery) -> Operation[Page[DestinationObject]]:
    return _listing(ep.LIST_DESTINATION_OBJECTS, query, _as_dict, destination=id_or_slug(destination, "destination"))


def get_destination_object(destination: object, object_name: str) -> Operation[DestinationObject]:
    if not isinstance(object_name, str) or not object_name.strip():
        raise CensusInputError(f"object_name must be a destination object's full name, got {object_name!r}")
    request = ep.GET_DESTINATION_OBJECT.bind(
        destination=id_or_slug(destination, "destination"), object_name=object_name.strip()
    )
    return Operation(request, _one(_as_dict))


def list_syncs(query: PageQuery) -> Operation[Page[Sync]]:
    return _listing(ep.LIST_SYNCS, query, Sync.from_api)


def get_sync(sync_id: object) -> Operation[Sync]:
    return Operation(ep.GET_SYNC.bind(sync_id=census_id(sync_id, "sync_id")), _one(Sync.from_api))


def _sync_write(envelope: Envelope) -> SyncWrite:
    data = _data(envelope)
    data = dict(data) if isinstance(data, Mapping) else {}
    status = envelope.get("status")
    return SyncWrite(
        status=status if isinstance(status, str) else "",
        sync_id=optional_int(data.get("sync_id", data.get("id"))),
        data=data,
    )


def create_sync(
    config: Mapping[str, Any], *, validate_only: bool = False, legacy_endpoint: bool = False
) -> Operation[SyncWrite]:
    """``POST /syncs`` (or the older ``POST /syncs/create``) with a sync's configuration.

    The required fields are checked here so that a typo fails before the request; Census
    still validates the rest and its message is carried by ``CensusValidationError``.
    """
    body = dict(require_config(config))
    if validate_only:
        body["validate_only"] = True
    endpoint = ep.CREATE_SYNC_LEGACY if legacy_endpoint else ep.CREATE_SYNC
    return Operation(endpoint.bind(body=body), _sync_write)


def require_config(config: object) -> Mapping[str, Any]:
    if not isinstance(config, Mapping):
        raise CensusInputError(f"a sync configuration must be a mapping, got {type(config).__name__}")
    missing = [
        key for key in ("operation", "source_attributes", "destination_attributes", "mappings") if key not in config
    ]
    if missing:
        raise CensusInputError(f"the sync configuration lacks {', '.join(missing)} (required by Census)")
    if config["operation"] not in SYNC_OPERATIONS:
        raise CensusInputError(f"operation must be one of {', '.join(SYNC_OPERATIONS)}, got {config['operation']!r}")
    return config


def update_sync(sync_id: object, changes: Mapping[str, Any]) -> Operation[SyncWrite]:
    if not isinstance(changes, Mapping) or not changes:
        raise CensusInputError("update_sync needs a non-empty mapping of the fields to change")
    return Operation(ep.UPDATE_SYNC.bind(sync_id=census_id(sync_id, "sync_id"), body=dict(changes)), _sync_write)


def delete_sync(sync_id: object) -> Operation[SyncWrite]:
    return Operation(ep.DELETE_SYNC.bind(sync_id=census_id(sync_id, "sync_id")), _sync_write)


def trigger_sync(sync_id: object, *, force_full_sync: bool = False) -> Operation[int]:
    """Start a run; the result is the new run's id. Never sent twice blindly (see retry.py)."""
    request = ep.TRIGGER_SYNC.bind(
        sync_id=census_id(sync_id, "sync_id"), params={"force_full_sync": bool(force_full_sync)}
    )
    return Operation(request, _one(lambda data: required_int(require_mapping(data, "data"), "sync_run_id", "data")))


def get_sync_run(sync_run_id: object) -> Operation[SyncRun]:
    request = ep.GET_SYNC_RUN.bind(sync_run_id=census_id(sync_run_id, "sync_run_id"))
    return Operation(request, _one(SyncRun.from_api))


def list_sync_runs(sync_id: object, query: PageQuery) -> Operation[Page[SyncRun]]:
    return _listing(ep.LIST_SYNC_RUNS, query, SyncRun.from_api, sync_id=census_id(sync_id, "sync_id"))


def cancel_sync_run(sync_run_id: object) -> Operation[Envelope]:
    request = ep.CANCEL_SYNC_RUN.bind(sync_run_id=census_id(sync_run_id, "sync_run_id"))
    return Operation(request, lambda envelope: envelope)
