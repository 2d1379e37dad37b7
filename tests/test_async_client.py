"""The asynchronous transport under load: waiting for a pooled connection is not a failed request."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from airflow_provider_census.api.async_client import AsyncCensusClient
from airflow_provider_census.api.endpoints import GET_SYNC
from airflow_provider_census.api.retry import RetryPolicy
from airflow_provider_census.api.settings import ClientSettings
from airflow_provider_census.testing import CensusEmulator, FaultProfile
from airflow_provider_census.testing import server as server_module

CONCURRENT = 450
"""Well beyond the 100 connections the client once capped itself at: the later requests then queued
for a connection, and the queueing counted against a total timeout."""
PATIENCE = 60.0
"""Each request's connect and read timeout: a guard against hanging (a capped pool never sends the
later requests, so the first ones wait for answers that never come), far beyond what the arrival
of every request takes on a busy machine."""


async def test_a_slow_census_gets_every_request_sent_however_many_are_waiting(
    census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Census answers no request until every one of them has arrived: each must be sent at once, not queued
    behind another's answer. (A fixed latency would make the test race the machine's speed instead.)"""
    arrived: list[float] = []
    everyone_arrived = asyncio.Event()  # used only in the emulator's event loop

    async def until_everyone_arrived(seconds: float) -> None:
        arrived.append(seconds)
        if len(arrived) == CONCURRENT:
            everyone_arrived.set()
        await everyone_arrived.wait()

    monkeypatch.setattr(server_module, "asyncio", SimpleNamespace(sleep=until_everyone_arrived))
    census_emulator.set_faults(FaultProfile(latency=1.0))  # every request waits where the latency is waited
    settings = ClientSettings(
        base_url=census_emulator.api_base_url("v1"),
        token=census_emulator.token_for("v1"),
        timeout=PATIENCE,
        connect_timeout=PATIENCE,
        retry=RetryPolicy(max_attempts=1),
    )
    client = AsyncCensusClient(settings)
    try:
        request = GET_SYNC.bind(settings, sync_id=60)
        results = await asyncio.gather(*(client.run(request) for _ in range(CONCURRENT)), return_exceptions=True)
    finally:
        await client.aclose()
    failures = [result for result in results if isinstance(result, BaseException)]
    assert failures == [], f"{len(failures)} of {CONCURRENT} failed, first: {failures[:1]}"
    assert len(arrived) == CONCURRENT
    requests = census_emulator.requests_for("GET", "/syncs/60")
    assert len(requests) == CONCURRENT
    last_arrival = max(request.started_at for request in requests)
    assert all(request.finished_at >= last_arrival for request in requests), "every answer waited for every request"


async def test_the_session_times_the_wire_only_and_does_not_cap_its_pool() -> None:
    settings = ClientSettings(base_url="http://127.0.0.1:9/api/v1", token="t", timeout=30.0, connect_timeout=10.0)
    client = AsyncCensusClient(settings)
    try:
        session = client._open_session()
        assert (session.timeout.total, session.timeout.connect) == (None, None)
        assert (session.timeout.sock_connect, session.timeout.sock_read) == (10.0, 30.0)
        assert session.connector is not None and session.connector.limit == 0
    finally:
        await client.aclose()
