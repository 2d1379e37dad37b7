"""One pooled async client per event loop and connection, shared by every trigger using it.

A triggerer runs hundreds of triggers in one event loop. Giving each its own HTTP session
would open a TLS connection per trigger; sharing one session per (loop, settings) keeps a
small pool of warm keep-alive connections instead. The client is closed when the last
trigger that borrowed it gives it back, and it is never used from another loop.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

from airflow_provider_census.api.async_client import AsyncCensusClient
from airflow_provider_census.api.client import ClientSettings


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
