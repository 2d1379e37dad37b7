"""The asynchronous transport under load: waiting for a pooled connection is not a failed request."""

from __future__ import annotations

import asyncio

from airflow_provider_census.api.async_client import AsyncCensusClient
from airflow_provider_census.api.endpoints import GET_SYNC
from airflow_provider_census.api.retry import RetryPolicy
from airflow_provider_census.api.settings import ClientSettings
from airflow_provider_census.testing import CensusEmulator, FaultProfile

CONCURRENT = 450
"""Well beyond the 100 connections the client once capped itself at: the later requests then queued
for a connection, and the queueing counted against a total timeout (here 4 + 4 s, passed by the
fifth wave of 2 s answers). Each answer has 2 s to spare on its 4 s read timeout, for a busy machine."""


async def test_a_slow_census_gets_every_request_sent_however_many_are_waiting(census_emulator: CensusEmulator) -> None:
    census_emulator.set_faults(FaultProfile(latency=2.0))
    settings = ClientSettings(
        base_url=census_emulator.api_base_url("v1"),
        token=census_emulator.token_for("v1"),
        timeout=4.0,
        connect_timeout=4.0,
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
    assert len(census_emulator.requests_for("GET", "/syncs/60")) == CONCURRENT


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
