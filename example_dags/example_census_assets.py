"""A Census sync as an asset: the sync task updates it, and a DAG scheduled on it runs after.

``sync_users`` triggers the sync and waits for its run; when the run succeeds, Airflow records
an event of the sync's asset (``census://default/syncs/<id>``), whose ``extra`` the provider
fills with the run: sync and run ids, status, record counts, the run's URL. ``after_census``
is scheduled on that asset and reads them. A failed run fails the task, so no event is
recorded and nothing downstream runs on stale data.

The sync id comes from an environment variable only so that the tests can point this file
at the bundled emulator; write your own in.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow_provider_census.assets.census import census_sync_asset
from airflow_provider_census.operators.census import CensusTriggerSyncOperator

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[assignment]
    from airflow.decorators import task  # type: ignore[attr-defined,no-redef]

SYNC_ID = int(os.environ.get("CENSUS_EXAMPLE_SYNC_ID", "4895"))
POLL_INTERVAL = float(os.environ.get("CENSUS_EXAMPLE_POLL_INTERVAL", "30"))
USERS_SYNCED = census_sync_asset(SYNC_ID)

with DAG(
    dag_id="census_sync_updates_an_asset",
    start_date=datetime(2025, 1, 1),
    schedule=None,
    catchup=False,
    tags=["census", "example"],
):
    CensusTriggerSyncOperator(
        task_id="sync_users", sync_id=SYNC_ID, deferrable=True, poll_interval=POLL_INTERVAL, outlets=[USERS_SYNCED]
    )

with DAG(
    dag_id="after_census",
    start_date=datetime(2025, 1, 1),
    schedule=[USERS_SYNCED],
    catchup=False,
    tags=["census", "example"],
):

    @task
    def report(**context: Any) -> None:
        """Print what each triggering sync run did (Airflow 2.11 calls them dataset events)."""
        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events") or {}
        for asset in events:
            for event in events[asset]:
                print(f"{asset.uri}: run {event.extra['sync_run_id']}, {event.extra['records_updated']} updated")

    report()
