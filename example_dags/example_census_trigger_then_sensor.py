"""Trigger a sync in one task and wait for its run in another.

Useful when something else should happen between the trigger and the wait, or when the
wait should free even the triggerer: the sensor here reschedules between pokes.
``trigger_sync`` returns the run id, which the sensor pulls from XCom.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow_provider_census.operators.census import CensusTriggerSyncOperator
from airflow_provider_census.sensors.census import CensusSyncRunSensor

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[assignment]

SYNC_ID = int(os.environ.get("CENSUS_EXAMPLE_SYNC_ID", "60"))
POLL_INTERVAL = float(os.environ.get("CENSUS_EXAMPLE_POLL_INTERVAL", "60"))
SENSOR_MODE = os.environ.get("CENSUS_EXAMPLE_SENSOR_MODE", "reschedule")

with DAG(
    dag_id="census_trigger_then_sensor",
    start_date=datetime(2025, 1, 1),
    schedule=None,
    catchup=False,
    tags=["census", "example"],
    default_args={"retries": 0},
) as dag:
    trigger_sync = CensusTriggerSyncOperator(
        task_id="trigger_sync",
        sync_id=SYNC_ID,
        wait_for_completion=False,
    )
    wait_for_run = CensusSyncRunSensor(
        task_id="wait_for_run",
        sync_run_id="{{ ti.xcom_pull(task_ids='trigger_sync') }}",
        sync_id=SYNC_ID,  # optional: names the run's sync where Census's answer does not (V2's test_status)
        mode=SENSOR_MODE,
        poke_interval=POLL_INTERVAL,
        timeout=timedelta(hours=2).total_seconds(),
    )
    trigger_sync >> wait_for_run
