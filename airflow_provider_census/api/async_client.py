"""The asynchronous client, for triggers: ``aiohttp``, never blocking the event loop."""

from __future__ import annotations

import asyncio
from typing import TypeVar

import aiohttp

from airflow_provider_census.api.client import (
    ClientSettings,
    Envelope,
    RawAnswer,
    build_call,
    parse_answer,
    read_result,
    transport_error,
)
from airflow_provider_census.api.endpoints import ApiRequest
from airflow_provider_census.api.operations import Operation

T = TypeVar("T")

_NEVER_CONNECTED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_NO_ANSWER = (aiohttp.ClientError, asyncio.TimeoutError)
MAX_CONNECTIONS = 100
"""Keep-alive connections one shared client may hold: a triggerer's spread-out polls need far
fewer, and a burst beyond it waits for a free connection instead of opening hundreds."""


class AsyncCensusClient:
    """Sends requests with retries over one ``aiohttp`` session, opened on first use.

    The session belongs to the event loop it was opened in; close it with :meth:`aclose`.
    """

    def __init__(self, settings: ClientSettings, session: aiohttp.ClientSession | None = None) -> None:
        self.settings = settings
        self._session = session
        self._owns_session = session is None

    async def run(self, operation: Operation[T]) -> T:
        return read_result(operation, await self.call(operation.request))

    async def call(self, request: ApiRequest) -> Envelope:
        if self.settings.retry.max_attempts <= 1:
            return parse_answer(self.settings, request, await self._send(request))
        async for attempt in self.settings.retry.async_retrying(request):
            with attempt:
                return parse_answer(self.settings, request, await self._send(request))
        raise AssertionError("tenacity either returns or raises")  # pragma: no cover

    async def _send(self, request: ApiRequest) -> RawAnswer:
        call = build_call(self.settings, request)
        session = self._open_session()
        try:
            async with session.request(
                call.method, call.url, headers=dict(call.headers), data=call.body, allow_redirects=False
            ) as response:
                body = await response.read()
                return RawAnswer(response.status, response.headers, body)
        except _NEVER_CONNECTED as exc:
            raise transport_error(request, exc, reached_census=False) from None
        except _NO_ANSWER as exc:
            raise transport_error(request, exc, reached_census=True) from None

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(
                total=self.settings.timeout + self.settings.connect_timeout,
                sock_connect=self.settings.connect_timeout,
                sock_read=self.settings.timeout,
            )
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None
