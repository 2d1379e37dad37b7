"""One pooled async client per event loop and connection, shared by every trigger using it.

A triggerer runs hundreds of triggers in one event loop. Giving each its own HTTP session
would open a TLS connection per trigger; sharing one session per (loop, settings) keeps a
small pool of warm keep-alive connections instead. The client is closed when the last
trigger that borrowed it gives it back, and it is never used from another loop.

Reading the Airflow connection costs a triggerer more than a poll does (Airflow 3 asks its
supervisor and sets up the secrets backends each time), so triggers that start together
share one reading of it, kept for :data:`SETTINGS_TTL_SECONDS` so a changed token is
picked up soon after.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from airflow_provider_census.api.async_client import AsyncCensusClient
from airflow_provider_census.api.settings import ClientSettings

SETTINGS_TTL_SECONDS = 60.0


@dataclass
class _Reading:
    settings: asyncio.Future[ClientSettings]
    read_at: float


_readings: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Reading]] = weakref.WeakKeyDictionary()


async def settings_for(conn_id: str, read: Callable[[], Awaitable[ClientSettings]]) -> ClientSettings:
    """The connection's settings: read at most once per loop and TTL, however many triggers ask at once.

    A failed read is not kept, so the next trigger tries again.
    """
    loop = asyncio.get_running_loop()
    readings = _readings.setdefault(loop, {})
    reading = readings.get(conn_id)
    if reading is None or loop.time() - reading.read_at > SETTINGS_TTL_SECONDS:
        reading = readings[conn_id] = _Reading(asyncio.ensure_future(read()), loop.time())
    try:
        return await asyncio.shield(reading.settings)
    except Exception:
        if readings.get(conn_id) is reading:
            del readings[conn_id]
        raise


@dataclass
class _Lease:
    client: AsyncCensusClient
    holders: int = 0


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ClientSettings, _Lease]] = (
    weakref.WeakKeyDictionary()
)


def borrow(settings: ClientSettings) -> AsyncCensusClient:
    """The running loop's client for these settings, opened if this is its first borrower."""
    leases = _clients.setdefault(asyncio.get_running_loop(), {})
    lease = leases.get(settings)
    if lease is None:
        lease = leases[settings] = _Lease(AsyncCensusClient(settings))
    lease.holders += 1
    return lease.client


async def give_back(client: AsyncCensusClient) -> None:
    """Return a borrowed client; the last borrower closes it."""
    leases = _clients.get(asyncio.get_running_loop(), {})
    lease = leases.get(client.settings)
    if lease is None or lease.client is not client:
        await client.aclose()
        return
    lease.holders -= 1
    if lease.holders <= 0:
        del leases[client.settings]
        await client.aclose()


def open_clients() -> int:
    """How many shared clients the running loop holds (for tests and benchmarks)."""
    return len(_clients.get(asyncio.get_running_loop(), {}))
