"""The asynchronous transport, for triggers: ``aiohttp``, never blocking the event loop.

Every request passes the process's request budget of the connection's token
(:mod:`.budget_gate`), the one the synchronous transport's requests pass too, unless the
connection turned it off.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import aiohttp

from airflow_provider_census.api.budget_gate import gate_of
from airflow_provider_census.api.endpoints import Request
from airflow_provider_census.api.settings import ClientSettings
from airflow_provider_census.api.transport_failures import transport_error
from airflow_provider_census.api.wire import Answer, parse, prepare

T = TypeVar("T")

_NEVER_CONNECTED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_NO_ANSWER = (aiohttp.ClientError, asyncio.TimeoutError)
UNLIMITED = 0
"""The shared client's pool grows with the demand instead of capping it. Polls spread over the
interval, so a fast Census is served by a few keep-alive connections; a slow one needs about
polls per second x seconds per answer, and a cap below that turns waiting for a connection into
timeouts of polls that were never sent."""


class AsyncCensusClient:
    """Sends requests with retries over one ``aiohttp`` session, opened on first use.

    The session belongs to the event loop it was opened in; close it with :meth:`aclose`.
    """

    def __init__(self, settings: ClientSettings, session: aiohttp.ClientSession | None = None) -> None:
        self.settings = settings
        self._session = session
        self._owns_session = session is None
        self._gate = gate_of(settings)

    async def run(self, request: Request[T]) -> T:
        if self.settings.retry.max_attempts <= 1:
            return parse(self.settings, request, await self._send(request))
        async for attempt in self.settings.retry.async_retrying(request, paced=self._gate is not None):
            with attempt:
                return parse(self.settings, request, await self._send(request))
        raise AssertionError("tenacity either returns or raises")  # pragma: no cover

    async def _send(self, request: Request[Any]) -> Answer:
        """One request on the wire, in its turn at the token's request budget, which learns from the answer."""
        if self._gate is None:
            return await self._exchange(request)
        async with self._gate.slot(request.priority) as slot:
            answer = await self._exchange(request)
            slot.answered(answer.status, answer.retry_after)
        return answer

    async def _exchange(self, request: Request[Any]) -> Answer:
        url, headers, body = prepare(self.settings, request)
        session = self._open_session()
        try:
            async with session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False
            ) as response:
                return Answer(response.status, response.headers, await response.read())
        except _NEVER_CONNECTED as exc:
            raise transport_error(self.settings, request, exc, reached_census=False) from None
        except _NO_ANSWER as exc:
            raise transport_error(self.settings, request, exc, reached_census=True) from None

    def _open_session(self) -> aiohttp.ClientSession:
        """The session, opened on first use: its timeouts count time on the wire only.

        No total and no pool-inclusive ``connect`` timeout: waiting for a pooled connection is
        not a slow Census, so only connecting (``sock_connect``) and each read (``sock_read``)
        are bounded.
        """
        if self._session is None:
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=None,
                sock_connect=self.settings.connect_timeout,
                sock_read=self.settings.timeout,
            )
            connector = aiohttp.TCPConnector(limit=UNLIMITED)
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None
