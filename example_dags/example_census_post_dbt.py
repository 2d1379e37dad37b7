"""After dbt builds the models, push them out: every Census sync that reads them, deferrable.

Two ways to write it, one DAG each. ``census_post_dbt`` maps one task per selected sync (a
task, a trigger and a retry of its own for each sync); ``census_post_dbt_one_task`` runs them
all in one ``CensusTriggerSyncsOperator`` task (one deferral and one trigger for every run, one
failure message listing each failed sync, and a retry that runs again only the syncs that failed).

``dbt_build`` stands in for your dbt task (``dbt build`` through Cosmos, the dbt Cloud
provider, or a BashOperator). ``syncs_to_run`` asks Census, when the DAG runs (never while
it is parsed), which syncs the selection picks: here the syncs that read the rebuilt models
(``source:dim_users``) and those labelled ``crm_*``, so a sync someone adds in Census is run
without editing the DAG. Each selected sync is one mapped task that waits in the triggerer,
not in a worker slot, and fails with Census's own ``error_code`` and ``error_message`` if its
run fails. Selectors: see ``airflow_provider_census.selectors``.

The selection and poll interval come from environment variables only so that the demo and
the tests can point this file at the bundled emulator; write your own selectors in.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.operators.census import CensusTriggerSyncOperator, CensusTriggerSyncsOperator
from airflow_provider_census.selectors import parse_selection

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[assignment]
    from airflow.decorators import task  # type: ignore[attr-defined,no-redef]

# Parsed here, so that a mistyped selector fails the DAG file's import with the fix, not the run.
SELECTION = parse_selection(os.environ.get("CENSUS_EXAMPLE_SELECT", "source:dim_users,label:crm_*").split(","))
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

    @task
    def syncs_to_run() -> list[int]:
        """The ids of the syncs the selection picks now (paused ones left out), in a stable order."""
        return sorted(sync.id for sync in CensusHook().select_syncs(SELECTION))

    census_syncs = CensusTriggerSyncOperator.partial(
        task_id="census_sync",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=2),
        on_skipped="wait",
        max_rejected_share=0.05,
    ).expand(sync_id=syncs_to_run())

    dbt_build() >> census_syncs


with DAG(
    dag_id="census_post_dbt_one_task",
    start_date=datetime(2025, 1, 1),
    schedule=None,
    catchup=False,
    tags=["census", "example"],
    default_args={"retries": 0},
) as one_task_dag:

    @task(task_id="dbt_build")
    def dbt_build_models() -> None:
        """Stand-in for ``dbt build``."""
        print("dbt build: models are fresh")

    dbt_build_models() >> CensusTriggerSyncsOperator(
        task_id="census_syncs",
        select=SELECTION,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=2),
        on_skipped="wait",
        max_rejected_share=0.05,
    )
