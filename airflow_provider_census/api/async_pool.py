"""One pooled async client per event loop and connection settings, shared by every trigger using it.

A triggerer runs hundreds of triggers in one event loop. Giving each its own HTTP session
would open a TLS connection per trigger; sharing one session per (loop, settings) keeps a
small pool of warm keep-alive connections instead. The client is closed when the last
hook that borrowed it gives it back, and it is never used from another loop. The pool is
handed settings and never reads a connection: reading one is the async hook's part.

What is shared lives on the event loop object itself, not in a module-level registry: a
registry keyed by loop would keep every loop alive through the sessions it holds. When the loop
shuts down (``asyncio.run`` ending, a triggerer stopping), the clients still lent out are closed
with it, so a hook its user never closed leaks no session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from airflow_provider_census.api.async_client import AsyncCensusClient
from airflow_provider_census.api.settings import ClientSettings

_LOOP_ATTRIBUTE = "_airflow_provider_census_pool"


@dataclass
class _Lease:
    client: AsyncCensusClient
    holders: int = 0


@dataclass
class _LoopShare:
    """The clients one event loop's hooks have borrowed, by their settings."""

    leases: dict[ClientSettings, _Lease] = field(default_factory=dict)
    closer: AsyncIterator[None] | None = None
    parking: asyncio.Task[None] | None = None

    async def close_all(self) -> None:
        leases, self.leases = list(self.leases.values()), {}
        for lease in leases:
            await lease.client.aclose()


async def _close_at_shutdown(share: _LoopShare) -> AsyncIterator[None]:
    """Parked at its ``yield`` for the loop's life: asyncio closes open async generators when the
    loop shuts down, and closing this one closes the clients still lent out."""
    try:
        yield
    finally:
        await share.close_all()


def _share() -> _LoopShare:
    loop = asyncio.get_running_loop()
    share: _LoopShare | None = getattr(loop, _LOOP_ATTRIBUTE, None)
    if share is None:
        share = _LoopShare()
        share.closer = _close_at_shutdown(share)
        share.parking = loop.create_task(share.closer.__anext__())  # type: ignore[arg-type]
        setattr(loop, _LOOP_ATTRIBUTE, share)
    return share


def borrow(settings: ClientSettings) -> AsyncCensusClient:
    """The running loop's client for these settings, opened if this is its first borrower."""
    leases = _share().leases
    lease = leases.get(settings)
    if lease is None:
        lease = leases[settings] = _Lease(AsyncCensusClient(settings))
    lease.holders += 1
    return lease.client


async def give_back(client: AsyncCensusClient) -> None:
    """Return a borrowed client; the last borrower closes it."""
    leases = _share().leases
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
    return len(_share().leases)
