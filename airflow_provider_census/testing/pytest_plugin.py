"""pytest fixtures for testing DAGs and hooks against the Census emulator.

Registered through the ``pytest11`` entry point, so it is loaded in every pytest run of
anyone who installs the provider: it imports nothing heavy at module level. The
emulator (and with it aiohttp) is imported only when a test asks for a fixture.

``census_conn`` runs each test that uses it once per API version (V2 first, as it is
what Census keeps), because a client must behave the same whichever one it talks to.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_census.testing.emulator import CensusEmulator

CONN_ENV_VAR = "AIRFLOW_CONN_CENSUS_DEFAULT"
API_VERSION_PARAMS = ["v2", "v1"]


@pytest.fixture
def census_emulator() -> Iterator[CensusEmulator]:
    """A started Census emulator on a free port, serving both API versions, stopped when the test ends."""
    from airflow_provider_census.testing.emulator import CensusEmulator

    emulator = CensusEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(params=API_VERSION_PARAMS, ids=API_VERSION_PARAMS)
def census_api_version(request: pytest.FixtureRequest) -> str:
    """The API version ``census_conn`` points at: ``"v2"`` in one run of the test, ``"v1"`` in the other."""
    return str(request.param)


@pytest.fixture
def census_conn(
    census_emulator: CensusEmulator, census_api_version: str, monkeypatch: pytest.MonkeyPatch
) -> CensusEmulator:
    """The emulator, with Airflow's ``census_default`` connection pointing at one of its API versions.

    An emulator that does not serve the version (a test may override ``census_emulator``)
    skips that run rather than failing it, since there is nothing to connect to.
    """
    version = census_api_version
    if version not in census_emulator.api_versions:
        pytest.skip(f"the census_emulator of this test does not serve API {version}")
    extra: dict[str, Any] = {"base_url": census_emulator.api_base_url(version), "api_version": version}
    if version == "v2":
        extra["group_id"] = census_emulator.group_id
    conn = {"conn_type": "census", "password": census_emulator.token_for(version), "extra": extra}
    monkeypatch.setenv(CONN_ENV_VAR, json.dumps(conn))
    return census_emulator
