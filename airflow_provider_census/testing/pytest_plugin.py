"""pytest fixtures for testing DAGs and hooks against the Census emulator.

Opt-in: load it where you want it, in a root ``conftest.py``
(``pytest_plugins = ["airflow_provider_census.testing.pytest_plugin"]``) or with
``pytest -p airflow_provider_census.testing.pytest_plugin``. Installing the provider loads
nothing into anyone's pytest runs. It imports nothing heavy at module level: the emulator (and
with it aiohttp) is imported only when a test asks for a fixture.

``census_conn`` runs each test that uses it once per API version (V2 first, as it is
what Census keeps), because a client must behave the same whichever one it talks to. It
points the Airflow connection ``census_conn_id`` names at the emulator: ``census_default``,
unless a test module or conftest overrides that fixture to return its own id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_census.testing.emulator import CensusEmulator

CONN_ENV_VAR = "AIRFLOW_CONN_CENSUS_DEFAULT"
"""The environment variable of the default connection, ``census_default``."""
API_VERSION_PARAMS = ["v2", "v1"]


@pytest.fixture
def census_v2_routes() -> str:
    """What ``census_emulator`` serves on V2: ``"all"`` routes, or only the ``"documented"`` ones.

    Override it (or parametrize it) to run tests against a V2 that serves nothing its reference
    does not document, as Census may on the day v1 is switched off.
    """
    return "all"


@pytest.fixture
def census_rate_limit() -> int | None:
    """Requests per token ``census_emulator`` accepts in any second: None, no limit.

    Override it (or parametrize it) to run tests against a Census that answers 429 beyond N
    requests a second; ``census_emulator.rate_limited`` then counts the refusals.
    """
    return None


@pytest.fixture
def census_emulator(census_v2_routes: str, census_rate_limit: int | None) -> Iterator[CensusEmulator]:
    """A started Census emulator on a free port, serving both API versions, stopped when the test ends."""
    from airflow_provider_census.testing.emulator import CensusEmulator

    emulator = CensusEmulator(v2_routes=census_v2_routes, rate_limit=census_rate_limit).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(params=API_VERSION_PARAMS, ids=API_VERSION_PARAMS)
def census_api_version(request: pytest.FixtureRequest) -> str:
    """The API version ``census_conn`` points at: ``"v2"`` in one run of the test, ``"v1"`` in the other."""
    return str(request.param)


@pytest.fixture
def census_conn_id() -> str:
    """The Airflow connection ``census_conn`` points at the emulator; override it to use your DAGs' own id."""
    return "census_default"


@pytest.fixture
def census_conn(
    census_emulator: CensusEmulator, census_api_version: str, census_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> CensusEmulator:
    """The emulator, with the Airflow connection ``census_conn_id`` pointing at one of its API versions.

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
    monkeypatch.setenv(f"AIRFLOW_CONN_{census_conn_id.upper()}", json.dumps(conn))
    return census_emulator
