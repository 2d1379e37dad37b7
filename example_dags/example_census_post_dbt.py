"""After dbt builds the models, push them out: several Census syncs at once, deferrable.

``dbt_build`` stands in for your dbt task (``dbt build`` through Cosmos, the dbt Cloud
provider, or a BashOperator). The syncs are mapped from a list, so adding a sync is one id;
each one waits in the triggerer, not in a worker slot, and fails with Census's own
``error_code`` and ``error_message`` if its run fails.

The sync ids and poll interval come from environment variables only so that the demo and
the tests can point this file at the bundled emulator; write your own ids in.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow_provider_census.operators.census import CensusTriggerSyncOperator

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[assignment]
    from airflow.decorators import task  # type: ignore[attr-defined,no-redef]

SYNC_IDS = [int(sync_id) for sync_id in os.environ.get("CENSUS_EXAMPLE_SYNC_IDS", "60,61").split(",")]
POLL_INTERVAL = float(os.environ.get("CENSUS_EXAMPLE_POLL_INTERVAL", "30"))

with DAG(
    dag_id="census_post_dbt",
    start_date=datetime(2025, 1, 1),
    schedule=None,
    catchup=False,
    tags=["census", "example"],
    default_args={"retries": 0},
) as dag:

    @task
    def dbt_build() -> None:
        """Stand-in for ``dbt build``."""
        print("dbt build: models are fresh")

    census_syncs = CensusTriggerSyncOperator.partial(
        task_id="census_sync",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=2),
        on_skipped="wait",
        max_rejected_share=0.05,
    ).expand(sync_id=SYNC_IDS)

    dbt_build() >> census_syncs
