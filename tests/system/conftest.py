"""Fixtures for system tests: one PostgreSQL server per test session with a migrated template
database, and per test a fresh copy of it with real Airflow components around it."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_census.testing import CensusEmulator
from tests.system.cluster import CLI_TIMEOUT_SECONDS, AirflowCluster, base_env, running_cluster
from tests.system.postgres import PostgresServer

TEMPLATE_DATABASE = "airflow_template"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for this session, stopped and deleted at its end."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def airflow_template_db(postgres: PostgresServer) -> str:
    """A database migrated to this Airflow's schema once, which each test copies (seconds saved per test)."""
    postgres.create_database(TEMPLATE_DATABASE)
    with tempfile.TemporaryDirectory(prefix="census-airflow-migrate-") as home:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=base_env(Path(home), postgres.url(TEMPLATE_DATABASE)),
            cwd=home,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_SECONDS * 2,
            check=False,
        )
    assert done.returncode == 0, f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return TEMPLATE_DATABASE


@pytest.fixture
def cluster(
    tmp_path: Path,
    postgres: PostgresServer,
    airflow_template_db: str,
    census_emulator: CensusEmulator,
    census_api_version: str,
) -> Iterator[AirflowCluster]:
    """An Airflow deployment with nothing started yet, its Census connection on the parametrized API version."""
    home = tmp_path / "airflow-home"
    with running_cluster(home, postgres, airflow_template_db, census_emulator, census_api_version) as airflow:
        yield airflow
