"""``CensusHook``: an Airflow connection turned into a configured Census client.

The hook reads the connection, checks it, and offers one method per Census endpoint. What
each call sends and how its answer is read lives in :mod:`..api.operations`; the HTTP
clients are imported on first use, so importing this module while parsing a DAG stays cheap.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow_provider_census.api import operations as ops
from airflow_provider_census.api.client import ClientSettings
from airflow_provider_census.api.endpoints import API_VERSION, DEFAULT_REGION, REGION_APP_HOSTS, region_base_url
from airflow_provider_census.api.errors import CensusConfigurationError, CensusError
from airflow_provider_census.api.operations import PageQuery
from airflow_provider_census.api.retry import RetryPolicy
from airflow_provider_census.get_provider_info import CONN_FIELDS, CONNECTION_TYPE, UI_FIELD_BEHAVIOUR
from airflow_provider_census.version_compat import AirflowNotFoundException, BaseHook, aget_connection, mask_secret

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_census.api.async_client import AsyncCensusClient
    from airflow_provider_census.api.models import (
        Destination,
        DestinationObject,
        Page,
        Source,
        SourceObject,
        Sync,
        SyncRun,
        SyncWrite,
    )
    from airflow_provider_census.api.operations import Envelope, Operation
    from airflow_provider_census.api.sync_client import CensusClient

T = TypeVar("T")

LOOPBACK_NAMES = frozenset({"localhost"})


class CensusHook(BaseHook):
    """Talks to the Census management API through an Airflow connection.

    :param census_conn_id: the Airflow connection (type ``census``): the workspace API token in
        the password field, and in the extras either ``region`` (``us``, the default, or ``eu``)
        or ``base_url`` (a proxy or the bundled emulator).
    :param timeout: seconds to wait for one answer.
    :param retry_policy: how hard each call tries (attempts, backoff, total budget).
    :param trigger_settle_seconds: after a trigger's answer was lost, how long to wait for its
        run to show up before concluding that Census never received it.
    """

    conn_name_attr = "census_conn_id"
    default_conn_name = "census_default"
    conn_type = CONNECTION_TYPE
    hook_name = "Census"

    def __init__(
        self,
        census_conn_id: str = default_conn_name,
        *,
        timeout: float = 30.0,
        retry_policy: RetryPolicy | None = None,
        trigger_settle_seconds: float = 5.0,
    ) -> None:
        super().__init__()
        self.census_conn_id = census_conn_id
        self.timeout = timeout
        self.retry_policy = retry_policy or RetryPolicy()
        self.trigger_settle_seconds = trigger_settle_seconds
        self._async_client: AsyncCensusClient | None = None

    # -- the connection form (Airflow 2 reads these; Airflow 3.2+ reads get_provider_info) --

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from wtforms import StringField

        return {
            name: StringField(
                spec["label"],
                widget=BS3TextFieldWidget(),
                description=spec["description"],
                default=spec["schema"].get("default"),
            )
            for name, spec in CONN_FIELDS.items()
        }

    # -- from connection to client --

    def settings_from_connection(self, conn: Connection) -> ClientSettings:
        """Check the connection and turn it into client settings; the token is masked in logs."""
        token = (conn.password or "").strip()
        origin = f"Airflow connection {self.census_conn_id!r}"
        if not token:
            raise CensusConfigurationError(
                f"{origin} has no API token: put the Census workspace API token in its password field."
            )
        mask_secret(token)
        return ClientSettings(
            base_url=base_url_from_extras(conn.extra_dejson, conn.host, origin),
            token=token,
            token_origin=origin,
            timeout=self.timeout,
            retry=self.retry_policy,
        )

    @cached_property
    def settings(self) -> ClientSettings:
        with self._connection_must_exist():
            return self.settings_from_connection(self.get_connection(self.census_conn_id))

    @contextmanager
    def _connection_must_exist(self) -> Iterator[None]:
        """Airflow only says the id is not defined; say how to define it (sync and async reads alike)."""
        try:
            yield
        except AirflowNotFoundException as exc:
            raise CensusConfigurationError(
                f"Airflow connection {self.census_conn_id!r} does not exist. Create it with type 'census' and the "
                "Census workspace API token in its password field (UI, CLI, or the environment variable "
                f"AIRFLOW_CONN_{self.census_conn_id.upper()}), or pass census_conn_id of an existing one."
            ) from exc

    @property
    def base_url(self) -> str:
        """The API base URL; from the async client when it is open, so triggers never read it blockingly."""
        if self._async_client is not None:
            return self._async_client.settings.base_url
        return self.settings.base_url

    def get_conn(self) -> CensusClient:
        return self.client

    @cached_property
    def client(self) -> CensusClient:
        from airflow_provider_census.api.sync_client import CensusClient

        return CensusClient(self.settings)

    def run(self, operation: Operation[T]) -> T:
        return self.client.run(operation)

    async def arun(self, operation: Operation[T]) -> T:
        """Run an operation on the running loop's shared client for this connection.

        Hooks (one per trigger) that use the same connection in one event loop share one
        pooled client, so a triggerer keeps a few warm connections instead of one per trigger.
        """
        if self._async_client is None:
            from airflow_provider_census.api import async_pool

            shared = await async_pool.settings_for(self.census_conn_id, self._aread_settings)
            # The reading may come from another hook: this hook's own patience applies.
            self._async_client = async_pool.borrow(replace(shared, timeout=self.timeout, retry=self.retry_policy))
        return await self._async_client.run(operation)

    async def _aread_settings(self) -> ClientSettings:
        with self._connection_must_exist():
            return self.settings_from_connection(await aget_connection(self.census_conn_id))

    async def aclose(self) -> None:
        """Give the shared client back; the last hook using it closes it."""
        if self._async_client is not None:
            from airflow_provider_census.api import async_pool

            client, self._async_client = self._async_client, None
            await async_pool.give_back(client)

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    def test_connection(self) -> tuple[bool, str]:
        """One cheap call (the first sync) to prove the token and the host."""
        try:
            self.list_syncs(per_page=1)
        except CensusError as exc:
            return False, str(exc)
        return True, f"Connected to Census at {self.settings.base_url}"

    # -- sources, models, tables --

    def list_sources(self, page: int = 1, per_page: int = 25, order: str = "desc") -> Page[Source]:
        return self.run(ops.list_sources(PageQuery(page, per_page, order)))

    def iter_sources(self, per_page: int = 100, order: str = "desc") -> Iterator[Source]:
        return self._iterate(ops.list_sources, PageQuery(1, per_page, order))

    def get_source(self, source: int | str) -> Source:
        return self.run(ops.get_source(source))

    def list_source_objects(
        self, source: int | str, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[SourceObject]:
        return self.run(ops.list_source_objects(source, PageQuery(page, per_page, order)))

    def iter_source_objects(
        self, source: int | str, per_page: int = 100, order: str = "desc"
    ) -> Iterator[SourceObject]:
        return self._iterate(lambda query: ops.list_source_objects(source, query), PageQuery(1, per_page, order))

    def list_models(
        self, source: int | str, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[SourceObject]:
        return self.run(ops.list_models(source, PageQuery(page, per_page, order)))

    def iter_models(self, source: int | str, per_page: int = 100, order: str = "desc") -> Iterator[SourceObject]:
        return self._iterate(lambda query: ops.list_models(source, query), PageQuery(1, per_page, order))

    def get_model(self, source: int | str, model_id: int) -> SourceObject:
        return self.run(ops.get_model(source, model_id))

    def list_tables(
        self, source: int | str, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[SourceObject]:
        return self.run(ops.list_tables(source, PageQuery(page, per_page, order)))

    def iter_tables(self, source: int | str, per_page: int = 100, order: str = "desc") -> Iterator[SourceObject]:
        return self._iterate(lambda query: ops.list_tables(source, query), PageQuery(1, per_page, order))

    def get_table(self, source: int | str, table_id: int) -> SourceObject:
        return self.run(ops.get_table(source, table_id))

    # -- destinations and their objects --

    def list_destinations(self, page: int = 1, per_page: int = 25, order: str = "desc") -> Page[Destination]:
        return self.run(ops.list_destinations(PageQuery(page, per_page, order)))

    def iter_destinations(self, per_page: int = 100, order: str = "desc") -> Iterator[Destination]:
        return self._iterate(ops.list_destinations, PageQuery(1, per_page, order))

    def get_destination(self, destination: int | str) -> Destination:
        return self.run(ops.get_destination(destination))

    def list_destination_objects(
        self, destination: int | str, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[DestinationObject]:
        return self.run(ops.list_destination_objects(destination, PageQuery(page, per_page, order)))

    def iter_destination_objects(
        self, destination: int | str, per_page: int = 100, order: str = "desc"
    ) -> Iterator[DestinationObject]:
        return self._iterate(
            lambda query: ops.list_destination_objects(destination, query), PageQuery(1, per_page, order)
        )

    def get_destination_object(self, destination: int | str, object_name: str) -> DestinationObject:
        return self.run(ops.get_destination_object(destination, object_name))

    # -- syncs --

    def list_syncs(self, page: int = 1, per_page: int = 25, order: str = "desc") -> Page[Sync]:
        return self.run(ops.list_syncs(PageQuery(page, per_page, order)))

    def iter_syncs(self, per_page: int = 100, order: str = "desc") -> Iterator[Sync]:
        return self._iterate(ops.list_syncs, PageQuery(1, per_page, order))

    def get_sync(self, sync_id: int | str) -> Sync:
        return self.run(ops.get_sync(sync_id))

    def create_sync(
        self, config: Mapping[str, Any], *, validate_only: bool = False, legacy_endpoint: bool = False
    ) -> SyncWrite:
        """Create a sync (``POST /syncs``), or only validate it with ``validate_only=True``.

        ``legacy_endpoint=True`` sends the older ``POST /syncs/create`` form. A creation is
        never resent unless Census surely did not receive it, so it cannot make two syncs.
        """
        return self.run(ops.create_sync(config, validate_only=validate_only, legacy_endpoint=legacy_endpoint))

    def update_sync(self, sync_id: int | str, changes: Mapping[str, Any]) -> SyncWrite:
        return self.run(ops.update_sync(sync_id, changes))

    def delete_sync(self, sync_id: int | str) -> SyncWrite:
        return self.run(ops.delete_sync(sync_id))

    # -- runs --

    def get_sync_run(self, sync_run_id: int | str) -> SyncRun:
        return self.run(ops.get_sync_run(sync_run_id))

    async def aget_sync_run(self, sync_run_id: int | str) -> SyncRun:
        return await self.arun(ops.get_sync_run(sync_run_id))

    def list_sync_runs(
        self, sync_id: int | str, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[SyncRun]:
        return self.run(ops.list_sync_runs(sync_id, PageQuery(page, per_page, order)))

    def iter_sync_runs(self, sync_id: int | str, per_page: int = 100, order: str = "desc") -> Iterator[SyncRun]:
        return self._iterate(lambda query: ops.list_sync_runs(sync_id, query), PageQuery(1, per_page, order))

    def latest_sync_run(self, sync_id: int | str) -> SyncRun | None:
        """The sync's newest run, or None if it never ran."""
        return self.client.latest_sync_run(sync_id)

    def cancel_sync_run(self, sync_run_id: int | str) -> Envelope:
        return self.run(ops.cancel_sync_run(sync_run_id))

    async def acancel_sync_run(self, sync_run_id: int | str) -> Envelope:
        return await self.arun(ops.cancel_sync_run(sync_run_id))

    def trigger_sync_run(self, sync_id: int | str, *, force_full_sync: bool = False) -> int:
        """Start a run of the sync and return its id; one call never starts two runs.

        See :meth:`..api.sync_client.CensusClient.trigger_sync_run` for how a lost answer is
        resolved without triggering again.
        """
        return self.client.trigger_sync_run(
            sync_id, force_full_sync=force_full_sync, settle_seconds=self.trigger_settle_seconds
        )

    def _iterate(self, make: Callable[[PageQuery], Operation[Page[T]]], query: PageQuery) -> Iterator[T]:
        """Every item of a list, page after page, until Census says there are no more."""
        while True:
            page = self.run(make(query))
            yield from page.items
            following = page.next_number
            if following is None or following <= query.page:
                return
            query = query.following(following)


def base_url_from_extras(extras: Mapping[str, Any], host: str | None, origin: str) -> str:
    """The API base URL from the connection: ``base_url`` (or a URL in host), else the region."""
    base_url = _extra(extras, "base_url") or (host if host and "://" in host else "")
    if base_url:
        return checked_base_url(str(base_url), origin)
    region = str(_extra(extras, "region") or DEFAULT_REGION).strip().lower()
    if region not in REGION_APP_HOSTS:
        raise CensusConfigurationError(
            f"{origin} names region {region!r}; Census has {' and '.join(sorted(REGION_APP_HOSTS))}. "
            "For another host set base_url instead."
        )
    return region_base_url(region)


def _extra(extras: Mapping[str, Any], name: str) -> Any:
    """An extra by its plain name or the prefixed name older Airflow forms stored."""
    value = extras.get(name) or extras.get(f"extra__{CONNECTION_TYPE}__{name}")
    return value.strip() if isinstance(value, str) else value


def checked_base_url(url: str, origin: str) -> str:
    """A base URL that is safe to send the token to: https, or http on this machine only."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CensusConfigurationError(
            f"{origin} has base_url {url!r}, which is not an http(s) URL; use e.g. {region_base_url('us')}"
        )
    if parts.username or parts.password:
        raise CensusConfigurationError(
            f"{origin} has credentials inside base_url; remove them and put the token in the password field."
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise CensusConfigurationError(
            f"{origin} has a plain http base_url to {parts.hostname!r}; the token would travel unencrypted. "
            "Use https (http is allowed only for loopback addresses such as the bundled emulator)."
        )
    path = parts.path.rstrip("/") or f"/api/{API_VERSION}"
    return f"{parts.scheme}://{parts.netloc}{path}"


def is_loopback(hostname: str) -> bool:
    if hostname.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
