"""Provider 2.1's operator, ``CensusOperator``, kept so that DAGs written against 2.1 run unchanged.

Its public path stays ``airflow_provider_census.operators.census.CensusOperator`` (that module exports it).
"""

from __future__ import annotations

import warnings
from typing import Any

from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.operators.trigger_sync import CensusTriggerSyncOperator
from airflow_provider_census.version_compat import AirflowProviderDeprecationWarning


class CensusOperator(CensusTriggerSyncOperator):
    """Deprecated (provider 2.1): trigger a sync and return its run id at once, without waiting.

    It is :class:`CensusTriggerSyncOperator` with ``wait_for_completion`` defaulting to False,
    so it checks its input, publishes the run's link, and on a retry reattaches to the run an
    earlier try left going, as the successor does. Use that class instead; every argument of
    it passes through.

    ``sync_id`` and ``census_conn_id`` stay in this signature because Airflow fills in
    ``default_args`` only for the parameters a class's own ``__init__`` names.

    :param sync_id: the Census sync to trigger (templated).
    :param census_conn_id: the Airflow connection to Census (templated).
    """

    def __init__(
        self,
        *,
        sync_id: int | str,
        census_conn_id: str = CensusHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        warnings.warn(
            "CensusOperator is the name of airflow-provider-census 2.1; use "
            "airflow_provider_census.operators.census.CensusTriggerSyncOperator. For 2.1's behaviour "
            "(trigger, return the run id, do not wait) pass wait_for_completion=False; by default it "
            "also waits for the run and fails the task if the run fails.",
            AirflowProviderDeprecationWarning,
            stacklevel=2,
        )
        kwargs.setdefault("wait_for_completion", False)
        super().__init__(sync_id=sync_id, census_conn_id=census_conn_id, **kwargs)
