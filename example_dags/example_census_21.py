"""The example DAG of provider 2.1, as its users wrote it: it keeps working after the upgrade.

``CensusOperator`` and ``CensusSensor`` are 2.1's names (deprecated; each warns and names its
successor); they now read every state by this provider's rules, so a failed run fails the
sensor with Census's ``error_code`` and a skipped or canceled run never counts as success.
For new DAGs see ``example_census_trigger_then_sensor.py``.

The sync id, connection, poll interval and retry delay come from environment variables only
so that the tests can point this file at the bundled emulator; write your own values in.
"""

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_census.operators.census import CensusOperator
from airflow_provider_census.sensors.census import CensusSensor

SYNC_ID = int(os.environ.get("CENSUS_EXAMPLE_SYNC_ID", "4895"))
CONN_ID = os.environ.get("CENSUS_EXAMPLE_CONN_ID", "census_default")
POLL_INTERVAL = float(os.environ.get("CENSUS_EXAMPLE_POLL_INTERVAL", "60"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("CENSUS_EXAMPLE_RETRY_DELAY", "300")))

default_args = {
    "owner": "airflow",
    "retries": 1,
    "retry_delay": RETRY_DELAY,
}

with DAG(
    dag_id="example_census",
    start_date=datetime(2024, 1, 1),
    schedule="@daily",
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
) as dag:
    sync = CensusOperator(
        task_id="sync",
        census_conn_id=CONN_ID,
        sync_id=SYNC_ID,
    )

    sensor = CensusSensor(
        task_id="sensor",
        sync_run_id="{{ ti.xcom_pull(task_ids='sync') }}",
        census_conn_id=CONN_ID,
        deferrable=True,
        poke_interval=POLL_INTERVAL,
    )

    sync >> sensor
