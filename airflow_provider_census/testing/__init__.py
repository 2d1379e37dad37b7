"""An emulated Census management API (v1) for tests, demos and benchmarks.

It is an independent implementation of Census's behaviour, written from the API
documents, and never imports the provider it is meant to test. Importing this package is
cheap (aiohttp is loaded only when an emulator starts), because the pytest plugin that
offers the ``census_emulator`` fixture is loaded in every pytest run.
"""

from airflow_provider_census.testing.emulator import CensusEmulator
from airflow_provider_census.testing.faults import FAULT_KINDS, FaultProfile
from airflow_provider_census.testing.requestlog import RecordedRequest
from airflow_provider_census.testing.runs import RunScript

__all__ = ["FAULT_KINDS", "CensusEmulator", "FaultProfile", "RecordedRequest", "RunScript"]
