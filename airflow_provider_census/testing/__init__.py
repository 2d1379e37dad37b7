"""An emulated Census management API, v1 and V2 (Activations), for tests, demos and benchmarks.

It is an independent implementation of Census's behaviour, written from the API
documents, and never imports the provider it is meant to test. One emulator is one
workspace that both versions reach, each with its own kind of token. Importing this
package is cheap (aiohttp is loaded only when an emulator starts), because the pytest
plugin that offers the ``census_emulator`` fixture is loaded in every pytest run.
"""

from airflow_provider_census.testing.emulator import DEFAULT_GROUP_ID, DEFAULT_PAT, DEFAULT_TOKEN, CensusEmulator
from airflow_provider_census.testing.faults import FAULT_KINDS, RUN_READS, FaultProfile
from airflow_provider_census.testing.history import DurationModel
from airflow_provider_census.testing.requestlog import RecordedRequest
from airflow_provider_census.testing.runs import RunScript

__all__ = [
    "DEFAULT_GROUP_ID",
    "DEFAULT_PAT",
    "DEFAULT_TOKEN",
    "FAULT_KINDS",
    "RUN_READS",
    "CensusEmulator",
    "DurationModel",
    "FaultProfile",
    "RecordedRequest",
    "RunScript",
]
