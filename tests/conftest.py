"""Shared fixtures: a hook wired to the bundled emulator with quick retries.

The emulator fixtures (``census_emulator``, ``census_conn``) come from the package's own
pytest plugin, loaded here as its users load it (it is opt-in).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "example_dags"
# Airflow reads its configuration when first imported, so this comes before any import of it.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="census-airflow-home-"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(EXAMPLE_DAGS)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

import pytest  # noqa: E402

pytest_plugins = ["airflow_provider_census.testing.pytest_plugin"]

from airflow_provider_census.api.retry import RetryPolicy  # noqa: E402
from airflow_provider_census.hooks.census import CensusHook  # noqa: E402
from airflow_provider_census.testing import CensusEmulator  # noqa: E402

QUICK_RETRIES = RetryPolicy(max_attempts=4, budget_seconds=10.0, initial_wait=0.01, max_wait=0.05, max_retry_after=0.3)


@pytest.fixture
def hook(census_conn: CensusEmulator) -> CensusHook:
    """A hook on ``census_default``, pointed at a fresh emulator, with quick retries."""
    return CensusHook(retry_policy=QUICK_RETRIES, trigger_settle_seconds=0.05)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated SQLite metadata database in this run's AIRFLOW_HOME, made once per session."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
