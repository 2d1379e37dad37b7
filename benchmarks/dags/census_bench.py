"""The DAGs of the deployment benchmark (``benchmarks/deployment.py``), which sets their syncs.

- ``census_bench_many``: one ``CensusTriggerSyncsOperator`` over the syncs in
  ``CENSUS_BENCH_MANY_SYNCS`` (one task, one deferral, one trigger);
- ``census_bench_mapped``: ``CensusTriggerSyncOperator`` mapped over the syncs in
  ``CENSUS_BENCH_MAPPED_SYNCS`` (one task instance, deferral and trigger per sync);
- ``census_bench_warmup``: one sync, one deferral, run first so that neither measured DAG pays
  the deployment's first task and first trigger.

All deferrable, with the poll interval in ``CENSUS_BENCH_POLL_INTERVAL``.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow_provider_census.operators.census import CensusTriggerSyncOperator, CensusTriggerSyncsOperator

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG  # type: ignore[assignment]

POLL_INTERVAL = float(os.environ.get("CENSUS_BENCH_POLL_INTERVAL", "10"))


def sync_ids(variable: str) -> list[int]:
    return [int(part) for part in os.environ.get(variable, "").split(",") if part.strip()]


DEFAULTS = {"retries": 0}

with DAG(dag_id="census_bench_many", start_date=datetime(2025, 1, 1), schedule=None, default_args=DEFAULTS):
    CensusTriggerSyncsOperator(
        task_id="census_syncs",
        select=sync_ids("CENSUS_BENCH_MANY_SYNCS") or [1],
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )

with DAG(dag_id="census_bench_mapped", start_date=datetime(2025, 1, 1), schedule=None, default_args=DEFAULTS):
    CensusTriggerSyncOperator.partial(task_id="census_sync", deferrable=True, poll_interval=POLL_INTERVAL).expand(
        sync_id=sync_ids("CENSUS_BENCH_MAPPED_SYNCS")
    )

with DAG(dag_id="census_bench_warmup", start_date=datetime(2025, 1, 1), schedule=None, default_args=DEFAULTS):
    CensusTriggerSyncOperator(
        task_id="census_sync",
        sync_id=(sync_ids("CENSUS_BENCH_WARMUP_SYNCS") or [1])[0],
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )
