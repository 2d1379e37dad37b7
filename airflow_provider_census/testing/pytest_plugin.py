"""pytest fixtures for testing DAGs and hooks against the Census emulator.

Registered through the ``pytest11`` entry point, so it is loaded in every pytest run of
anyone who installs the provider: it imports nothing heavy at module level. The
emulator (and with it aiohttp) is imported only when a test asks for a fixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_census.testing.emulator import CensusEmulator

CONN_ENV_VAR = "AIRFLOW_CONN_CENSUS_DEFAULT"


@pytest.fixture
def census_emulator() -> Iterator[CensusEmulator]:
    """A started Census emulator on a free port, stopped when the test ends."""
    from airflow_provider_census.testing.emulator import CensusEmulator

    emulator = CensusEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def census_conn(census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch) -> CensusEmulator:
    """The emulator, with Airflow's ``census_default`` connection pointing at it."""
    conn = {
        "conn_type": "census",
        "password": census_emulator.token,
        "extra": {"base_url": census_emulator.base_url},
    }
    monkeypatch.setenv(CONN_ENV_VAR, json.dumps(conn))
    return census_emulator
