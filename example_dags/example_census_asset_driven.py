"""Asset-driven: when dbt rebuilds models, run the Census syncs that read them, and no others.

``dbt_build_models`` stands in for your dbt DAG (Cosmos names each dbt model's asset by its
warehouse table's URI, as here; any task can declare such ``outlets``). ``census_after_dbt``
is scheduled on those assets, either one (``|``): Airflow runs it after each dbt run that
updates one, and hands it the triggering asset events (dataset events on Airflow 2.11).
``syncs_to_run`` turns them into a selection, so it asks Census when the DAG runs which syncs
read the rebuilt tables: syncs whose source is the table ``prod.analytics.dim_users`` or
``prod.analytics.fct_orders``, and syncs whose source is a Census model named ``dim_users`` or
``fct_orders`` (see ``airflow_provider_census.assets.tables`` for the rules). A manual run has
no triggering events and skips its syncs. Each selected sync is one mapped task that waits in
the triggerer.

``census_after_dbt_one_task`` is the same on one task: ``CensusTriggerSyncsOperator`` with
``select=selection_from_asset_events``, which the task calls with its context when it runs,
triggers every selected sync and waits for all their runs in one deferral.

The poll interval comes from an environment variable only so that the tests can point this
file at the bundled emulator.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_census.assets.tables import selection_from_asset_events
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.operators.census import CensusTriggerSyncOperator, CensusTriggerSyncsOperator
from airflow_provider_census.version_compat import Asset

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[assignment]
    from airflow.decorators import task  # type: ignore[attr-defined,no-redef]

POLL_INTERVAL = float(os.environ.get("CENSUS_EXAMPLE_POLL_INTERVAL", "30"))
DIM_USERS = Asset("snowflake://xxxxxxx.us-east-1/prod/analytics/dim_users")
FCT_ORDERS = Asset("snowflake://xxxxxxx.us-east-1/prod/analytics/fct_orders")

with DAG(
    dag_id="dbt_build_models",
    start_date=datetime(2025, 1, 1),
    schedule=None,
    catchup=False,
    tags=["census", "example"],
):

    @task(outlets=[DIM_USERS, FCT_ORDERS])
    def dbt_build() -> None:
        """Stand-in for ``dbt build``: succeeding updates both models' assets."""
        print("dbt build: dim_users and fct_orders are fresh")

    dbt_build()

with DAG(
    dag_id="census_after_dbt",
    start_date=datetime(2025, 1, 1),
    schedule=DIM_USERS | FCT_ORDERS,
    catchup=False,
    tags=["census", "example"],
    default_args={"retries": 0},
):

    @task
    def syncs_to_run(**context: Any) -> list[int]:
        """The ids of the syncs that read the tables this run's asset events name; a manual run skips."""
        selection = selection_from_asset_events(context)
        return sorted(sync.id for sync in CensusHook().select_syncs(selection, on_no_match="skip"))

    CensusTriggerSyncOperator.partial(
        task_id="census_sync",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=2),
    ).expand(sync_id=syncs_to_run())

with DAG(
    dag_id="census_after_dbt_one_task",
    start_date=datetime(2025, 1, 1),
    schedule=DIM_USERS | FCT_ORDERS,
    catchup=False,
    tags=["census", "example"],
    default_args={"retries": 0},
):
    CensusTriggerSyncsOperator(
        task_id="census_syncs",
        select=selection_from_asset_events,
        on_no_match="skip",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=2),
    )
