"""The asynchronous transport under load: waiting for a pooled connection is not a failed request."""

from __future__ import annotations

import asyncio

from airflow_provider_census.api.async_client import AsyncCensusClient
from airflow_provider_census.api.endpoints import GET_SYNC
from airflow_provider_census.api.retry import RetryPolicy
from airflow_provider_census.api.settings import ClientSettings
from airflow_provider_census.testing import CensusEmulator, FaultProfile

CONCURRENT = 300
"""Three times the pool cap the client once had: with a cap, the later requests queued for a connection."""


async def test_a_slow_census_gets_every_request_sent_however_many_are_waiting(census_emulator: CensusEmulator) -> None:
    census_emulator.set_faults(FaultProfile(latency=1.0))
    settings = ClientSettings(
        base_url=census_emulator.api_base_url("v1"),
        token=census_emulator.token_for("v1"),
        timeout=1.5,
        connect_timeout=0.5,
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
