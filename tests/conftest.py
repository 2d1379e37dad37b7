"""Shared fixtures: a hook wired to the bundled emulator with quick retries.

The emulator fixtures (``census_emulator``, ``census_conn``) come from the package's own
pytest plugin, registered through its ``pytest11`` entry point.
"""

from __future__ import annotations

import pytest

from airflow_provider_census.api.retry import RetryPolicy
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.testing import CensusEmulator

QUICK_RETRIES = RetryPolicy(max_attempts=4, budget_seconds=10.0, initial_wait=0.01, max_wait=0.05, max_retry_after=0.3)


@pytest.fixture
def hook(census_conn: CensusEmulator) -> CensusHook:
    """A hook on ``census_default``, pointed at a fresh emulator, with quick retries."""
    return CensusHook(retry_policy=QUICK_RETRIES, trigger_settle_seconds=0.05)
