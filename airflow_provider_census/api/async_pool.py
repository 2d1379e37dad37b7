"""One pooled async client per event loop and connection settings, shared by every trigger using it.

A triggerer runs hundreds of triggers in one event loop. Giving each its own HTTP session
would open a TLS connection per trigger; sharing one session per (loop, settings) keeps a
small pool of warm keep-alive connections instead. The client is closed when the last
hook that borrowed it gives it back, and it is never used from another loop.

Reading the Airflow connection costs a triggerer more than a poll does (Airflow 3 asks its
supervisor and sets up the secrets backends each time), so hooks that start together share
one reading of it, kept for :data:`SETTINGS_TTL_SECONDS`; hooks re-read after that, so a
changed token reaches every wait within that time (or at once, when Census refuses the old one).

What is shared lives on the event loop object itself, not in a module-level registry: a
registry keyed by loop would keep every loop alive through the sessions it holds. When the loop
shuts down (``asyncio.run`` ending, a triggerer stopping), the clients still lent out are closed
with it, so a hook its user never closed leaks no session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from airflow_provider_census.api.async_client import AsyncCensusClient
from airflow_provider_census.api.settings import ClientSettings

SETTINGS_TTL_SECONDS = 60.0
_LOOP_ATTRIBUTE = "_airflow_provider_census_pool"


@dataclass
class _Reading:
    settings: asyncio.Future[ClientSettings]
    read_at: float


@dataclass
class _Lease:
    client: AsyncCensusClient
    holders: int = 0


@dataclass
class _LoopShare:
    """Everything one event loop's hooks share: connection readings and leased clients."""

    readings: dict[str, _Reading] = field(default_factory=dict)
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


async def settings_for(conn_id: str, read: Callable[[], Awaitable[ClientSettings]]) -> ClientSettings:
    """The connection's settings: read at most once per loop and TTL, however many hooks ask at once.

    A failed read is not kept, so the next hook tries again.
    """
    loop = asyncio.get_running_loop()
    readings = _share().readings
    reading = readings.get(conn_id)
    if reading is None or loop.time() - reading.read_at > SETTINGS_TTL_SECONDS:
        reading = readings[conn_id] = _Reading(asyncio.ensure_future(read()), loop.time())
    try:
        return await asyncio.shield(reading.settings)
    except Exception:
        if readings.get(conn_id) is reading:
            del readings[conn_id]
        raise


def forget(conn_id: str, refused_token: str) -> None:
    """Drop the kept reading if it still holds the token Census refused, so the next ask reads anew.

    Hooks refused together drop it once and share the one new reading.
    """
    readings = _share().readings
    reading = readings.get(conn_id)
    held = reading is not None and reading.settings.done() and not reading.settings.exception()
    if held and reading is not None and reading.settings.result().token == refused_token:
        del readings[conn_id]


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
