"""Every call of the Census management API, per API version, written once.

An :class:`Endpoint` says what a call sends (method, a path per API version, whether it may
be resent, whether V2 takes a group on it) and how its answer becomes a typed result. Bound
to a connection's settings it becomes a :class:`Request`, which both HTTP clients send the
same way. Adding a call means one entry here and one hook method.

Which V2 calls follow Census's V2 reference and which follow v1's shape (because the V2
reference is silent) is said in the docs' "API versions" section; the paths are below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from airflow_provider_census.api import routes
from airflow_provider_census.api.budget import Priority
from airflow_provider_census.api.errors import CensusApiVersionError
from airflow_provider_census.api.models import (
    Activation,
    ActivationObject,
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
from airflow_provider_census.api.settings import V1, V2, ClientSettings

T = TypeVar("T")
Envelope = Mapping[str, Any]
QueryParams = Mapping[str, str | int | bool | None]
Reader = Callable[[Envelope, Mapping[str, str]], T]
"""Turns Census's envelope (and the query that was sent, for pages) into a typed result."""


@dataclass(frozen=True)
class Request(Generic[T]):
    """One call ready to send: identical for the synchronous and the asynchronous client.

    ``safe_to_retry`` is False for calls that act each time they arrive (triggering a sync,
    creating one): those are resent only when Census surely never received them.
    ``subject`` names what the call is about, for error messages ("sync 61"). ``assumed`` marks
    a call the reference of the connection's API version does not document (a v1 route sent to
    V2) that this Census has not answered yet: its 404 may mean that Census does not serve the
    route at all. ``route`` is the call's name in :mod:`.routes`.
    """

    method: str
    path: str
    subject: str
    read: Reader[T] = field(repr=False)
    params: tuple[tuple[str, str], ...] = ()
    body: Any = None
    safe_to_retry: bool = True
    assumed: bool = False
    route: str = ""
    priority: Priority = Priority.ROUTINE

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Endpoint(Generic[T]):
    """A call of the API: ``paths`` holds its path template per API version it exists in.

    ``name`` is the hook method that makes it, and ``instead`` the hook method to use on a
    version where it does not exist, so a mismatch fails before sending with what to do.
    ``group`` says whether V2 takes the Fivetran ``group_id`` as a query parameter on it: it is
    sent when known (the call's argument, else the connection's), never demanded before
    sending, since no V2 page documents it as required; a refusal that asks for a group names
    the connection's extra (:func:`~.wire.parse`). ``documented_on_v2`` says whether Fivetran's V2 reference (a Public
    Preview) documents the V2 path; the others are v1's, assumed to exist on V2 as well.
    ``priority`` is the place in line of its requests when the token's request budget holds
    requests back: URGENT for what a task or a user waits on (a trigger, a cancel), ROUTINE
    for the rest; :meth:`bind` may raise it (a run's final read).
    """

    name: str
    method: str
    paths: Mapping[str, str]
    subject: str
    read: Reader[T]
    safe_to_retry: bool = True
    group: bool = False
    instead: Mapping[str, str] = field(default_factory=dict)
    documented_on_v2: bool = False
    priority: Priority = Priority.ROUTINE

    def assumed_on(self, api_version: str) -> bool:
        """Whether this call is sent to ``api_version`` on the belief that it exists, not on its reference."""
        return api_version == V2 and not self.documented_on_v2

    @property
    def route(self) -> str:
        """The call as :mod:`.routes` remembers it: method and path template, V2's where it has one."""
        return f"{self.method} {self.paths.get(V2) or next(iter(self.paths.values()))}"

    def bind(
        self,
        settings: ClientSettings,
        *,
        params: QueryParams | None = None,
        body: Any = None,
        group_id: str | None = None,
        priority: Priority | None = None,
        **path_args: str | int,
    ) -> Request[T]:
        """The request for this connection's API version, path parts URL-quoted (slugs and names are user text).

        ``priority`` overrides the endpoint's own (None: the endpoint's).
        """
        template = self.paths.get(settings.api_version)
        if template is None:
            raise self._version_error(settings)
        quoted = {key: quote(str(value), safe="") for key, value in path_args.items()}
        query = dict(params or {})
        if settings.api_version == V2 and self.group:
            query["group_id"] = group_id or settings.group_id
        pairs = _query_pairs(query)
        return Request(
            method=self.method,
            path=template.format(**quoted),
            subject=self.subject.format(**dict(pairs), **{key: str(value) for key, value in path_args.items()}),
            read=self.read,
            params=pairs,
            body=body,
            safe_to_retry=self.safe_to_retry,
            assumed=self.assumed_on(settings.api_version) and not routes.is_served(settings.base_url, self.route),
            route=self.route,
            priority=self.priority if priority is None else priority,
        )

    def _version_error(self, settings: ClientSettings) -> CensusApiVersionError:
        has = " and ".join(sorted(self.paths))
        alternative = self.instead.get(settings.api_version)
        what_to_do = (
            f"use CensusHook.{alternative} instead"
            if alternative
            else f"use a connection with api_version {has} for this call"
        )
        return CensusApiVersionError(
            f"CensusHook.{self.name} is a Census API {has} call, and {settings.token_origin} talks API "
            f"{settings.api_version}: {what_to_do}."
        )


def _query_pairs(params: QueryParams) -> tuple[tuple[str, str], ...]:
    """Query parameters as text, booleans spelt the way Census expects (``true``/``false``)."""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        pairs.append((key, text))
    return tuple(pairs)


# -- readers: Census's envelope to typed results ---------------------------------------------


def _one(convert: Callable[[Any], T]) -> Reader[T]:
    return lambda envelope, _query: convert(envelope.get("data"))


def _as_dict(payload: Any) -> Any:
    return dict(require_mapping(payload, "the answer's 'data'"))


def _page(convert: Callable[[Any], T]) -> Reader[Page[T]]:
    def read(envelope: Envelope, query: Mapping[str, str]) -> Page[T]:
        items = [convert(item) for item in require_list(envelope.get("data"), "the answer's 'data'")]
        next_url = envelope.get("next")
        return Page(
            items=items,
            number=optional_int(query.get("page")) or 1,
            per_page=optional_int(query.get("per_page")) or len(items),
            pagination=Pagination.from_api(envelope.get("pagination")),
            next_url=next_url if isinstance(next_url, str) else None,
        )

    return read


def _sync_write(envelope: Envelope, _query: Mapping[str, str]) -> SyncWrite:
    data = envelope.get("data")
    data = dict(data) if isinstance(data, Mapping) else {}
    status = envelope.get("status")
    return SyncWrite(
        status=status if isinstance(status, str) else "",
        sync_id=optional_int(data.get("sync_id", data.get("id"))),
        data=data,
    )


def _run_id(data: Any) -> int:
    return required_int(require_mapping(data, "data"), "sync_run_id", "data")


def _whole(envelope: Envelope, _query: Mapping[str, str]) -> Envelope:
    return envelope


def _both(path: str) -> dict[str, str]:
    """A path that v1 and V2 share (V2 kept v1's path and answer)."""
    return {V1: path, V2: path}


# -- sources, models, tables -----------------------------------------------------------------

LIST_SOURCES: Endpoint[Page[Source]] = Endpoint(
    "list_sources", "GET", _both("/sources"), "the sources", _page(_as_dict), group=True
)
GET_SOURCE: Endpoint[Source] = Endpoint(
    "get_source", "GET", _both("/sources/{source}"), "source {source}", _one(_as_dict)
)
LIST_SOURCE_OBJECTS: Endpoint[Page[SourceObject]] = Endpoint(
    "list_source_objects", "GET", _both("/sources/{source}/objects"), "the objects of source {source}", _page(_as_dict)
)
LIST_MODELS: Endpoint[Page[SourceObject]] = Endpoint(
    "list_models", "GET", _both("/sources/{source}/models"), "the models of source {source}", _page(_as_dict)
)
GET_MODEL: Endpoint[SourceObject] = Endpoint(
    "get_model", "GET", _both("/sources/{source}/models/{model_id}"), "model {model_id} of source {source}",
    _one(_as_dict),
)  # fmt: skip
LIST_TABLES: Endpoint[Page[SourceObject]] = Endpoint(
    "list_tables", "GET", _both("/sources/{source}/tables"), "the tables of source {source}", _page(_as_dict)
)
GET_TABLE: Endpoint[SourceObject] = Endpoint(
    "get_table", "GET", _both("/sources/{source}/tables/{table_id}"), "table {table_id} of source {source}",
    _one(_as_dict),
)  # fmt: skip

# -- activations (v1: destinations) ------------------------------------------------------------

_ACTIVATIONS = {V1: "/destinations", V2: "/activations"}
_ACTIVATION = {version: path + "/{activation}" for version, path in _ACTIVATIONS.items()}
_ACTIVATION_OBJECTS = {version: path + "/objects" for version, path in _ACTIVATION.items()}
_ACTIVATION_OBJECT = {version: path + "/{object_name}" for version, path in _ACTIVATION_OBJECTS.items()}

LIST_ACTIVATIONS: Endpoint[Page[Activation]] = Endpoint(
    "list_activations", "GET", _ACTIVATIONS, "the activations", _page(_as_dict), group=True, documented_on_v2=True
)
GET_ACTIVATION: Endpoint[Activation] = Endpoint(
    "get_activation", "GET", _ACTIVATION, "activation {activation}", _one(_as_dict), documented_on_v2=True
)
LIST_ACTIVATION_OBJECTS: Endpoint[Page[ActivationObject]] = Endpoint(
    "list_activation_objects", "GET", _ACTIVATION_OBJECTS, "the objects of activation {activation}", _page(_as_dict),
    documented_on_v2=True,
)  # fmt: skip
GET_ACTIVATION_OBJECT: Endpoint[ActivationObject] = Endpoint(
    "get_activation_object", "GET", _ACTIVATION_OBJECT, "object {object_name} of activation {activation}",
    _one(_as_dict), documented_on_v2=True,
)  # fmt: skip
LIST_ACTIVATION_TYPES: Endpoint[Page[dict[str, Any]]] = Endpoint(
    "list_activation_types", "GET", {V1: "/connectors", V2: "/activation_types"}, "the activation types",
    _page(_as_dict), documented_on_v2=True,
)  # fmt: skip

# The v1 names of the same calls: v1 only, pointing V2 users at the new names.
LIST_DESTINATIONS: Endpoint[Page[Activation]] = Endpoint(
    "list_destinations", "GET", {V1: "/destinations"}, "the destinations", _page(_as_dict),
    instead={V2: "list_activations"},
)  # fmt: skip
GET_DESTINATION: Endpoint[Activation] = Endpoint(
    "get_destination", "GET", {V1: "/destinations/{activation}"}, "destination {activation}", _one(_as_dict),
    instead={V2: "get_activation"},
)  # fmt: skip
LIST_DESTINATION_OBJECTS: Endpoint[Page[ActivationObject]] = Endpoint(
    "list_destination_objects", "GET", {V1: "/destinations/{activation}/objects"},
    "the objects of destination {activation}", _page(_as_dict), instead={V2: "list_activation_objects"},
)  # fmt: skip
GET_DESTINATION_OBJECT: Endpoint[ActivationObject] = Endpoint(
    "get_destination_object", "GET", {V1: "/destinations/{activation}/objects/{object_name}"},
    "object {object_name} of destination {activation}", _one(_as_dict), instead={V2: "get_activation_object"},
)  # fmt: skip

# -- syncs -------------------------------------------------------------------------------------

LIST_SYNCS: Endpoint[Page[Sync]] = Endpoint(
    "list_syncs", "GET", _both("/syncs"), "the syncs", _page(Sync.from_api), group=True
)
GET_SYNC: Endpoint[Sync] = Endpoint("get_sync", "GET", _both("/syncs/{sync_id}"), "sync {sync_id}", _one(Sync.from_api))
CREATE_SYNC: Endpoint[SyncWrite] = Endpoint(
    "create_sync", "POST", _both("/syncs"), "a new sync", _sync_write, safe_to_retry=False
)
CREATE_SYNC_LEGACY: Endpoint[SyncWrite] = Endpoint(
    "create_sync", "POST", {V1: "/syncs/create"}, "a new sync", _sync_write, safe_to_retry=False,
    instead={V2: "create_sync (without legacy_endpoint=True)"},
)  # fmt: skip
UPDATE_SYNC: Endpoint[SyncWrite] = Endpoint(
    "update_sync", "PATCH", _both("/syncs/{sync_id}"), "sync {sync_id}", _sync_write, documented_on_v2=True
)
DELETE_SYNC: Endpoint[SyncWrite] = Endpoint(
    "delete_sync", "DELETE", _both("/syncs/{sync_id}"), "sync {sync_id}", _sync_write
)

# -- runs ----------------------------------------------------------------------------------------

TRIGGER_SYNC: Endpoint[int] = Endpoint(
    "trigger_sync_run", "POST", _both("/syncs/{sync_id}/trigger"), "sync {sync_id}", _one(_run_id),
    safe_to_retry=False, documented_on_v2=True, priority=Priority.URGENT,
)  # fmt: skip
# Reading runs: V2's reference documents only test_status; the other two are v1's, assumed on V2
# (see hooks/run_routes.py for the order they are tried in, and what is remembered).
LIST_SYNC_RUNS: Endpoint[Page[SyncRun]] = Endpoint(
    "list_sync_runs", "GET", _both("/syncs/{sync_id}/sync_runs"), "sync {sync_id}", _page(SyncRun.from_api)
)
GET_SYNC_RUN: Endpoint[SyncRun] = Endpoint(
    "get_sync_run", "GET", _both("/sync_runs/{sync_run_id}"), "sync run {sync_run_id}", _one(SyncRun.from_api)
)
SYNC_RUN_STATUS: Endpoint[SyncRun] = Endpoint(
    "get_sync_run", "GET", _both("/syncs/test_status"), "sync run {sync_run_id}", _one(SyncRun.from_test_status),
    documented_on_v2=True,
)  # fmt: skip
CANCEL_SYNC_RUN: Endpoint[Envelope] = Endpoint(
    "cancel_sync_run", "POST", _both("/sync_runs/{sync_run_id}/cancel"), "sync run {sync_run_id}", _whole,
    documented_on_v2=True, priority=Priority.URGENT,
)  # fmt: skip
