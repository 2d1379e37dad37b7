"""``CensusHook``: an Airflow connection turned into a configured Census client.

The hook reads the connection, checks it, and offers one method per Census endpoint. What
each call sends and how its answer is read lives in :mod:`..api.endpoints`; the HTTP
clients are imported on first use, so importing this module while parsing a DAG stays cheap.

This module holds the connection, the clients, and the calls on syncs and their runs. The hook
inherits the reads of sources and activations (:mod:`.catalog`) and provider 2.1's method
names (:mod:`.provider21`). Its async calls are those of
:class:`~airflow_provider_census.hooks.census_async.CensusAsyncHook`, the hook a trigger needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_census.api import endpoints as ep
from airflow_provider_census.api import inputs, run_read
from airflow_provider_census.api.budget import Priority
from airflow_provider_census.api.errors import CensusError, CensusInputError
from airflow_provider_census.api.inputs import PageQuery, census_id
from airflow_provider_census.api.retry import RetryPolicy
from airflow_provider_census.api.settings import (
    MIGRATION_STEPS,
    V1,
    V1_RETIRED_ON,
    ClientSettings,
    sync_run_app_url,
    v1_is_retired,
)
from airflow_provider_census.get_provider_info import CONNECTION_TYPE
from airflow_provider_census.hooks import selection
from airflow_provider_census.hooks.catalog import CatalogCalls, every_item
from airflow_provider_census.hooks.connection import client_settings, connection_must_exist
from airflow_provider_census.hooks.connection_form import connection_form_widgets, ui_field_behaviour
from airflow_provider_census.hooks.provider21 import Provider21HookMethods
from airflow_provider_census.version_compat import BaseHook

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_census.api.endpoints import Endpoint, Envelope
    from airflow_provider_census.api.models import Page, Sync, SyncRun, SyncWrite
    from airflow_provider_census.api.sync_client import CensusClient
    from airflow_provider_census.hooks.census_async import CensusAsyncHook
    from airflow_provider_census.hooks.preflight import PreflightReport
    from airflow_provider_census.hooks.triggering import StartedRun
    from airflow_provider_census.selectors import Selection, SelectionInput

T = TypeVar("T")

TEST_CONNECTION_TIMEOUT = 10.0
"""Seconds a connection test waits to connect, and then for the answer; it is tried once."""


class CensusHook(CatalogCalls, Provider21HookMethods, BaseHook):
    """Talks to the Census management API, v1 or V2, through an Airflow connection.

    :param census_conn_id: the Airflow connection (type ``census``). Its extras choose the API:
        ``api_version`` ``v2`` (an Activations personal access token in the password field) or
        ``v1`` (the workspace API key; the default, for connections made for provider 2.1);
        ``region`` (``us``, the default, or ``eu``) or ``base_url`` (a proxy or the bundled
        emulator); and for V2 optionally ``group_id``. A 2.1 connection's host
        (``app-eu.getcensus.com``, with or without ``https://``) picks the region too.
    :param timeout: seconds to wait for one answer.
    :param retry_policy: how hard each call tries (attempts, backoff, total budget).
    :param trigger_settle_seconds: after a trigger's answer was lost, how long to wait for its
        run to show up before concluding that Census never received it.

    Provider 2.1's method names still work, with a deprecation warning
    (:class:`~airflow_provider_census.hooks.provider21.Provider21HookMethods`).
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
        trigger_settle_seconds: float = 30.0,
    ) -> None:
        super().__init__()
        self.census_conn_id = census_conn_id
        self.timeout = timeout
        self.retry_policy = retry_policy or RetryPolicy()
        self.trigger_settle_seconds = trigger_settle_seconds
        self._warned_v1 = False

    # -- the connection form (Airflow 2 reads these from this class itself; Airflow 3.2+ reads get_provider_info) --

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return connection_form_widgets()

    # -- from connection to client --

    def settings_from_connection(self, conn: Connection) -> ClientSettings:
        """Check the connection and turn it into client settings; the token is masked in logs."""
        return client_settings(conn, self.census_conn_id, timeout=self.timeout, retry=self.retry_policy)

    @cached_property
    def settings(self) -> ClientSettings:
        with connection_must_exist(self.census_conn_id):
            settings = self.settings_from_connection(self.get_connection(self.census_conn_id))
        self._warn_if_v1(settings)
        return settings

    def with_retry_policy(self, retry_policy: RetryPolicy) -> CensusHook:
        """This connection's hook with another retry policy (a wait's one-try polls, a cancel's
        retries), on the settings this hook read: the connection is read, and v1 warned of, once."""
        other = CensusHook(
            self.census_conn_id,
            timeout=self.timeout,
            retry_policy=retry_policy,
            trigger_settle_seconds=self.trigger_settle_seconds,
        )
        other.__dict__["settings"] = replace(self.settings, retry=retry_policy)
        return other

    def _warn_if_v1(self, settings: ClientSettings) -> None:
        """One warning per task while a connection still talks v1.

        Only the synchronous path warns: every task reads its connection in the worker before
        it defers, so the trigger (and the worker-side wait, which runs the trigger's loop)
        would only repeat it.
        """
        if settings.api_version != V1 or self._warned_v1:
            return
        self._warned_v1 = True
        state = "was switched off" if v1_is_retired() else "is deprecated, and Census switches it off"
        self.log.warning(
            "Census API v1 %s on %s; %s still talks v1. To move to API v2: %s. Then check it before the day: "
            "python -m airflow_provider_census check --conn-id %s --sync <a sync id>",
            state,
            V1_RETIRED_ON.isoformat(),
            settings.token_origin,
            MIGRATION_STEPS,
            self.census_conn_id,
        )

    @property
    def base_url(self) -> str:
        """The API base URL; from the async calls' reading once made, so triggers never read it blockingly."""
        return self._settings_at_hand().base_url

    @property
    def api_version(self) -> str:
        """``v1`` or ``v2``: what the connection talks (read from the connection on first use)."""
        return self._settings_at_hand().api_version

    def _settings_at_hand(self) -> ClientSettings:
        """The settings the async calls read, if they did; else the connection, read here."""
        read_async = self._async.known_settings if "_async" in self.__dict__ else None
        return read_async or self.settings

    def sync_run_url(self, sync_id: int, sync_run_id: int) -> str:
        """The run's page in the Census app of this connection's host (US, EU or custom)."""
        return sync_run_app_url(self.base_url, sync_id, sync_run_id)

    def get_conn(self) -> CensusClient:
        return self.client

    @cached_property
    def client(self) -> CensusClient:
        from airflow_provider_census.api.sync_client import CensusClient

        return CensusClient(self.settings)

    def run(self, endpoint: Endpoint[T], **arguments: Any) -> T:
        """Make one call on this connection's API version; ``arguments`` fill its path, query and body."""
        return self.client.run(endpoint.bind(self.settings, **arguments))

    @cached_property
    def _async(self) -> CensusAsyncHook:
        """The async calls' own hook, made on the first: it keeps the pooled client of the running loop."""
        from airflow_provider_census.hooks.census_async import CensusAsyncHook

        return CensusAsyncHook(self.census_conn_id, timeout=self.timeout, retry_policy=self.retry_policy)

    async def arun(self, endpoint: Endpoint[T], **arguments: Any) -> T:
        """Make one call on the running loop's shared client for this connection.

        Hooks (one per trigger) that use the same connection in one event loop share one
        pooled client, so a triggerer keeps a few warm connections instead of one per trigger
        (see :class:`~airflow_provider_census.hooks.census_async.CensusAsyncHook`).
        """
        return await self._async.arun(endpoint, **arguments)

    async def aclose(self) -> None:
        """Give the shared client back; the last hook using it closes it."""
        if "_async" in self.__dict__:
            await self._async.aclose()

    async def __aenter__(self) -> CensusHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __enter__(self) -> CensusHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    def test_connection(self) -> tuple[bool, str]:
        """The preflight's connection checks: the token, host, API version and group, and the list of syncs.

        Each call is tried once, with a short timeout: a user waiting on the form wants the
        reason soon, not the retries a task gets. The checks that need a sync id are in
        :meth:`preflight` (``python -m airflow_provider_census check``).
        """
        from airflow_provider_census.api.sync_client import CensusClient
        from airflow_provider_census.hooks.preflight import OK, Preflight

        try:
            preflight = Preflight(self)
            with CensusClient(preflight.settings) as client:
                checks = preflight.connection_checks(client)
        except CensusError as exc:
            return False, str(exc)
        if checks[0].result != OK:
            return False, checks[0].detail or checks[0].advice
        settings = preflight.settings
        notes = "; ".join(
            f"{check.call}: {check.result}{f' ({check.advice})' if check.advice else ''}" for check in checks[1:]
        )
        return True, f"Connected to Census API {settings.api_version} at {settings.base_url}. {notes}"

    def preflight(
        self,
        sync_ids: Sequence[int | str] = (),
        select: SelectionInput | None = None,
        run_ids: Sequence[int | str] = (),
    ) -> PreflightReport:
        """Try, read-only, every call the DAGs make on this connection; see :mod:`.preflight`.

        ``sync_ids`` and ``select`` name the syncs to check (their own read, their runs, their
        newest run read every way); ``run_ids`` reads those runs instead of each sync's newest.
        """
        from airflow_provider_census.hooks.preflight import Preflight

        return Preflight(self).report(sync_ids, select, run_ids)

    # -- syncs --

    def list_syncs(
        self, page: int = 1, per_page: int = 25, order: str = "desc", *, group_id: str | None = None
    ) -> Page[Sync]:
        return self.run(ep.LIST_SYNCS, params=PageQuery(page, per_page, order).params(), group_id=group_id)

    def iter_syncs(self, per_page: int = 100, order: str = "desc", *, group_id: str | None = None) -> Iterator[Sync]:
        return every_item(self, ep.LIST_SYNCS, PageQuery(1, per_page, order), group_id=group_id)

    def get_sync(self, sync_id: int | str) -> Sync:
        return self.run(ep.GET_SYNC, sync_id=census_id(sync_id, "sync_id"))

    def select_syncs(
        self,
        select: SelectionInput | Selection,
        exclude: SelectionInput | None = None,
        *,
        include_paused: bool = False,
        on_no_match: str = "fail",
        group_id: str | None = None,
    ) -> list[Sync]:
        """The syncs a selection picks (``12``, ``label:crm_*``, ``source:dim_users``, ...; see
        :mod:`airflow_provider_census.selectors`), in Census's order, following every page.

        ``select`` may be a :class:`~airflow_provider_census.selectors.Selection` parsed
        earlier (by ``parse_selection`` at the top of a DAG file, so that a typo fails the
        import, not the run); ``exclude`` then stays None. Paused syncs are left out (with a
        log line) unless ``include_paused``. When nothing is
        left, ``on_no_match`` says what happens: ``fail`` raises
        :class:`~airflow_provider_census.api.errors.CensusNoSyncSelectedError` naming the
        selectors that matched nothing, ``skip`` skips the task, ``empty`` returns ``[]``.
        """
        from airflow_provider_census.selectors import Selection, parse_selection

        selection.checked_on_no_match(on_no_match)
        if isinstance(select, Selection) and exclude is not None:
            raise CensusInputError("Pass exclude to parse_selection with the rest of the selection, not beside it.")
        return selection.resolve(
            self,
            select if isinstance(select, Selection) else parse_selection(select, exclude),
            include_paused=include_paused,
            on_no_match=on_no_match,
            group_id=group_id,
        )

    def create_sync(
        self,
        config: Mapping[str, Any],
        *,
        validate_only: bool = False,
        legacy_endpoint: bool = False,
    ) -> SyncWrite:
        """Create a sync (``POST /syncs``), or only validate it with ``validate_only=True``.

        ``legacy_endpoint=True`` sends v1's older ``POST /syncs/create``. A creation is never
        resent unless Census surely did not receive it, so it cannot make two syncs.
        """
        body = dict(inputs.sync_config(config))
        if validate_only:
            body["validate_only"] = True
        if legacy_endpoint:
            return self.run(ep.CREATE_SYNC_LEGACY, body=body)
        return self.run(ep.CREATE_SYNC, body=body)

    def update_sync(self, sync_id: int | str, changes: Mapping[str, Any]) -> SyncWrite:
        return self.run(ep.UPDATE_SYNC, body=dict(inputs.sync_changes(changes)), sync_id=census_id(sync_id, "sync_id"))

    def delete_sync(self, sync_id: int | str) -> SyncWrite:
        return self.run(ep.DELETE_SYNC, sync_id=census_id(sync_id, "sync_id"))

    # -- runs --

    def get_sync_run(
        self, sync_run_id: int | str, *, sync_id: int | str | None = None, urgent: bool = False
    ) -> SyncRun:
        """One run, read by the first route this Census serves (see :mod:`..api.run_read`).

        ``sync_id``, when known, lets a V2 without ``GET /sync_runs/{id}`` find the run in its
        sync's list (with every field) before falling back to ``GET /syncs/test_status``.
        ``urgent`` puts the read ahead of routine polls when the token's request budget holds
        requests back: a run's final read, which a task waits on.
        """
        run_id, known_sync = census_id(sync_run_id, "sync_run_id"), _optional_sync_id(sync_id)
        steps = run_read.read_run(self.settings, run_id, known_sync, urgent=urgent)
        return run_read.drive(steps, self.client.run)

    async def aget_sync_run(
        self, sync_run_id: int | str, *, sync_id: int | str | None = None, urgent: bool = False
    ) -> SyncRun:
        """:meth:`get_sync_run` on the running loop's shared client."""
        return await self._async.aget_sync_run(sync_run_id, sync_id=sync_id, urgent=urgent)

    def list_sync_runs(
        self, sync_id: int | str, page: int = 1, per_page: int = 25, order: str = "desc", *, urgent: bool = False
    ) -> Page[SyncRun]:
        """A page of the sync's runs; ``urgent`` when a task waits on it to trigger (ahead of routine polls)."""
        query, priority = PageQuery(page, per_page, order).params(), Priority.URGENT if urgent else None
        return self.run(ep.LIST_SYNC_RUNS, params=query, sync_id=census_id(sync_id, "sync_id"), priority=priority)

    async def alist_sync_runs(
        self, sync_id: int | str, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[SyncRun]:
        return await self._async.alist_sync_runs(sync_id, page, per_page, order)

    def iter_sync_runs(self, sync_id: int | str, per_page: int = 100, order: str = "desc") -> Iterator[SyncRun]:
        return every_item(self, ep.LIST_SYNC_RUNS, PageQuery(1, per_page, order), sync_id=census_id(sync_id, "sync_id"))

    def latest_sync_run(self, sync_id: int | str) -> SyncRun | None:
        """The sync's newest run, or None if it never ran."""
        runs = self.list_sync_runs(sync_id, page=1, per_page=1, order="desc").items
        return runs[0] if runs else None

    def runs_listed(self) -> bool:
        """False once this Census was found not to serve a sync's run list (V2 documents none)."""
        return not run_read.route_missing(self.settings, ep.LIST_SYNC_RUNS)

    def trigger_sync_run(self, sync_id: int | str, *, force_full_sync: bool = False) -> int:
        """Start a run of the sync and return its id, never starting two by resending (see :mod:`.triggering`)."""
        return self.start_sync_run(sync_id, force_full_sync=force_full_sync).run_id

    def start_sync_run(self, sync_id: int | str, *, force_full_sync: bool = False) -> StartedRun:
        """:meth:`trigger_sync_run`, with when Census answered and the sync's runs before it (newest first)."""
        from airflow_provider_census.hooks import triggering

        return triggering.trigger_once(self, census_id(sync_id, "sync_id"), force_full_sync=force_full_sync)

    def cancel_sync_run(self, sync_run_id: int | str) -> Envelope:
        return self.run(ep.CANCEL_SYNC_RUN, sync_run_id=census_id(sync_run_id, "sync_run_id"))

    async def acancel_sync_run(self, sync_run_id: int | str) -> Envelope:
        return await self._async.acancel_sync_run(sync_run_id)


def _optional_sync_id(sync_id: int | str | None) -> int | None:
    return None if sync_id is None else census_id(sync_id, "sync_id")
