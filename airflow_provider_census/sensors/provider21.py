"""Provider 2.1's sensor, ``CensusSensor``, kept so that DAGs written against 2.1 run unchanged.

Its public path stays ``airflow_provider_census.sensors.census.CensusSensor`` (that module exports it).
"""

from __future__ import annotations

import warnings
from typing import Any

from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.sensors.sync_run import CensusSyncRunSensor
from airflow_provider_census.version_compat import AirflowProviderDeprecationWarning


class CensusSensor(CensusSyncRunSensor):
    """Deprecated (provider 2.1): wait for a sync run; use :class:`CensusSyncRunSensor`.

    It is that sensor with 2.1's signature and ``deferrable`` defaulting to False, as in 2.1, so
    every state is read by this provider's rules: a failed run raises
    :class:`~airflow_provider_census.api.errors.CensusRunFailedError` with Census's error, and a
    skipped, canceled or unknown run never counts as success. Events of 2.1's trigger, and
    2.1's trigger rows, are taken over (see ``CensusSyncRunSensor.execute_complete``).

    ``sync_run_id`` and ``census_conn_id`` stay in this signature because Airflow fills in
    ``default_args`` only for the parameters a class's own ``__init__`` names.

    :param sync_run_id: the run to wait for (templated).
    :param census_conn_id: the Airflow connection to Census (templated).
    :param deferrable: wait in the triggerer (False by default, as in 2.1).
    """

    def __init__(
        self,
        *,
        sync_run_id: int | str,
        census_conn_id: str = CensusHook.default_conn_name,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        warnings.warn(
            "CensusSensor is the name of airflow-provider-census 2.1; use "
            "airflow_provider_census.sensors.census.CensusSyncRunSensor with the same arguments (its "
            "deferrable defaults to Airflow's [operators] default_deferrable instead of False).",
            AirflowProviderDeprecationWarning,
            stacklevel=2,
        )
        super().__init__(sync_run_id=sync_run_id, census_conn_id=census_conn_id, deferrable=deferrable, **kwargs)
