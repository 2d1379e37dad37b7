"""``CensusAsyncHook``: an Airflow connection's run calls on the running event loop, for triggers.

A triggerer waits on hundreds of runs in one event loop. This hook reads its connection there
without blocking (Airflow's async connection getter; the token is registered with the secrets
masker in a worker thread), builds the client settings, and borrows the loop's pooled client
for them from :mod:`..api.async_pool`, so the triggers of one connection share a few warm
connections instead of one each. The pool is handed settings; it never reads a connection.

Reading the Airflow connection costs a triggerer more than a poll does (Airflow 3 asks its
supervisor and sets up the secrets backends each time), so hooks that start together share one
reading of it, kept for :data:`SETTINGS_TTL_SECONDS`. Each hook reads again after that, so a
changed token reaches every wait within that time, or at once when Census refuses the old one
(a 401): the hook then reads the connection anew and, if it now holds another token, sends the
request once more with it. The readings live on the event loop object, as the pool's clients
do, so a finished loop is not kept alive by them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_census.api import endpoints as ep
from airflow_provider_census.api import run_read
from airflow_provider_census.api.errors import CensusAuthenticationError
from airflow_provider_census.api.inputs import PageQuery, census_id
from airflow_provider_census.api.retry import RetryPolicy
from airflow_provider_census.api.settings import ClientSettings, sync_run_app_url
from airflow_provider_census.get_provider_info import CONNECTION_TYPE
from airflow_provider_census.hooks.connection import client_settings, connection_must_exist
from airflow_provider_census.version_compat import BaseHook, aget_connection, off_the_event_loop

if TYPE_CHECKING:
    from airflow_provider_census.api.async_client import AsyncCensusClient
    from airflow_provider_census.api.endpoints import Endpoint, Envelope, Request
    from airflow_provider_census.api.models import Page, SyncRun

T = TypeVar("T")

SETTINGS_TTL_SECONDS = 60.0
"""How long the hooks of one event loop share one reading of a connection."""
_READINGS_ATTRIBUTE = "_airflow_provider_census_connection_readings"


class CensusAsyncHook(BaseHook):
    """Reads and cancels Census runs from a trigger, over the event loop's pooled client.

    :param census_conn_id: the Airflow connection (type ``census``), as for
        :class:`~airflow_provider_census.hooks.census.CensusHook`.
    :param timeout: seconds to wait for one answer.
    :param retry_policy: how hard each call tries (attempts, backoff, total budget).

    The connection is read on the first call (or by :meth:`asettings`); :attr:`base_url` and
    :meth:`sync_run_url` answer from then on, also after :meth:`aclose`. Close the hook with
    :meth:`aclose` (or ``async with``) to give its client back; the last hook using a client
    closes it.
    """

    conn_name_attr = "census_conn_id"
    default_conn_name = "census_default"
    conn_type = CONNECTION_TYPE
    hook_name = "Census (asyncio)"

    def __init__(
        self, census_conn_id: str = default_conn_name, *, timeout: float = 30.0, retry_policy: RetryPolicy | None = None
    ) -> None:
        super().__init__()
        self.census_conn_id = census_conn_id
        self.timeout = timeout
        self.retry_policy = retry_policy or RetryPolicy()
        self.known_settings: ClientSettings | None = None
        """The settings this hook last read: None before its first call; kept after :meth:`aclose`."""
        self._client: AsyncCensusClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._read_at = 0.0

    @property
    def base_url(self) -> str:
        """The API base URL, known once the hook has read its connection (a call, or :meth:`asettings`)."""
        return self._settings_once_read().base_url

    @property
    def api_version(self) -> str:
        """``v1`` or ``v2``, known once the hook has read its connection (a call, or :meth:`asettings`)."""
        return self._settings_once_read().api_version

    def sync_run_url(self, sync_id: int, sync_run_id: int) -> str:
        """The run's page in the Census app of this connection's host; known once the connection was read."""
        return sync_run_app_url(self.base_url, sync_id, sync_run_id)

    def _settings_once_read(self) -> ClientSettings:
        if self.known_settings is None:
            raise RuntimeError(
                f"{type(self).__name__} has not read Airflow connection {self.census_conn_id!r} yet: "
                "make a call or await asettings() first."
            )
        return self.known_settings

    async def asettings(self) -> ClientSettings:
        """The connection's settings as this hook sends with them, read if not yet (or no longer) fresh."""
        return (await self._client_on_this_loop()).settings

    # -- the calls --

    async def arun(self, endpoint: Endpoint[T], **arguments: Any) -> T:
        """Make one call; ``arguments`` fill its path, query and body, as for ``CensusHook.run``."""
        return await self._send(lambda settings: endpoint.bind(settings, **arguments))

    async def aget_sync_run(
        self, sync_run_id: int | str, *, sync_id: int | str | None = None, urgent: bool = False
    ) -> SyncRun:
        """One run, read by the first route this Census serves (see :mod:`..api.run_read`).

        ``urgent`` puts the read ahead of routine polls when the token's request budget holds
        requests back: a run's final read (at a deadline), which a task waits on.
        """
        run_id = census_id(sync_run_id, "sync_run_id")
        known_sync = None if sync_id is None else census_id(sync_id, "sync_id")
        steps = run_read.read_run(await self.asettings(), run_id, known_sync, urgent=urgent)
        return await run_read.adrive(steps, lambda request: self._send(lambda _settings: request))

    async def alist_sync_runs(
        self, sync_id: int | str, page: int = 1, per_page: int = 25, order: str = "desc"
    ) -> Page[SyncRun]:
        return await self.arun(
            ep.LIST_SYNC_RUNS, params=PageQuery(page, per_page, order).params(), sync_id=census_id(sync_id, "sync_id")
        )

    async def acancel_sync_run(self, sync_run_id: int | str) -> Envelope:
        return await self.arun(ep.CANCEL_SYNC_RUN, sync_run_id=census_id(sync_run_id, "sync_run_id"))

    async def _send(self, build: Callable[[ClientSettings], Request[T]]) -> T:
        """Send the request ``build`` makes for the client's settings.

        A 401 re-reads the connection once: if it now holds another token (it was rotated while
        the task waited), the request is made again with it; otherwise the 401 stands.
        """
        client = await self._client_on_this_loop()
        try:
            return await client.run(build(client.settings))
        except CensusAuthenticationError as exc:
            if exc.http_status != 401:
                raise
            renewed = await self._client_on_this_loop(refused_token=client.settings.token)
            if renewed.settings.token == client.settings.token:
                raise
            self.log.info(
                "Census refused the token of %s, which now holds another one; trying once more with it.",
                client.settings.token_origin,
            )
            return await renewed.run(build(renewed.settings))

    # -- the pooled client --

    async def _client_on_this_loop(self, *, refused_token: str | None = None) -> AsyncCensusClient:
        """This hook's client on the running loop, its settings no older than :data:`SETTINGS_TTL_SECONDS`.

        A client left from another event loop (``asyncio.run`` twice) went with that loop: it is
        dropped, never used across loops.
        """
        from airflow_provider_census.api import async_pool

        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._client, self._loop = None, loop
        if refused_token is not None:
            _forget_refused(self.census_conn_id, refused_token)
        stale = loop.time() - self._read_at > SETTINGS_TTL_SECONDS
        if self._client is None or stale or refused_token is not None:
            shared = await _shared_reading(self.census_conn_id)
            self._read_at = loop.time()
            # The reading may come from another hook: this hook's own patience applies.
            self.known_settings = replace(shared, timeout=self.timeout, retry=self.retry_policy)
            if self._client is None or self._client.settings != self.known_settings:
                await self._give_back_client()
                self._client = async_pool.borrow(self.known_settings)
        return self._client

    async def aclose(self) -> None:
        """Give the pooled client back; the last hook using it closes it."""
        if self._loop is asyncio.get_running_loop():
            await self._give_back_client()
        self._client = self._loop = None

    async def _give_back_client(self) -> None:
        if self._client is not None:
            from airflow_provider_census.api import async_pool

            client, self._client = self._client, None
            await async_pool.give_back(client)

    async def __aenter__(self) -> CensusAsyncHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# -- one reading of a connection per event loop, shared by the hooks that start together --


@dataclass
class _Reading:
    settings: asyncio.Future[ClientSettings]
    read_at: float


def _readings() -> dict[str, _Reading]:
    """The running loop's connection readings, by connection id, kept on the loop itself."""
    loop = asyncio.get_running_loop()
    readings: dict[str, _Reading] | None = getattr(loop, _READINGS_ATTRIBUTE, None)
    if readings is None:
        readings = {}
        setattr(loop, _READINGS_ATTRIBUTE, readings)
    return readings


async def _shared_reading(conn_id: str) -> ClientSettings:
    """The connection's settings: read at most once per loop and TTL, however many hooks ask at once.

    A failed read is not kept, so the next hook tries again.
    """
    loop = asyncio.get_running_loop()
    readings = _readings()
    reading = readings.get(conn_id)
    if reading is None or loop.time() - reading.read_at > SETTINGS_TTL_SECONDS:
        reading = readings[conn_id] = _Reading(asyncio.ensure_future(_read_connection(conn_id)), loop.time())
    try:
        return await asyncio.shield(reading.settings)
    except Exception:
        if readings.get(conn_id) is reading:
            del readings[conn_id]
        raise


async def _read_connection(conn_id: str) -> ClientSettings:
    """The connection's settings; made in a thread, since registering the token with the masker blocks."""
    with connection_must_exist(conn_id):
        connection = await aget_connection(conn_id)
    return await off_the_event_loop(client_settings, connection, conn_id)


def _forget_refused(conn_id: str, refused_token: str) -> None:
    """Drop the kept reading if it still holds the token Census refused, so the next ask reads anew.

    Hooks refused together drop it once and share the one new reading.
    """
    readings = _readings()
    reading = readings.get(conn_id)
    held = reading is not None and reading.settings.done() and not reading.settings.exception()
    if held and reading is not None and reading.settings.result().token == refused_token:
        del readings[conn_id]
