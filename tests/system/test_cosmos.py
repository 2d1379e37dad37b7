"""dbt with Cosmos, then Census, in a real Airflow 3 deployment: the post-dbt promise as users run it.

A small dbt project (``dbt_analytics/``: ``dim_users``, ``fct_orders`` and ``dim_accounts`` in
schema ``analytics`` of database ``prod``) is built by astronomer-cosmos's ``DbtDag`` (local
execution, dbt-core and dbt-postgres) against the session's PostgreSQL, selecting two of the
three models. Cosmos names each rebuilt model's table as an asset; a Census DAG scheduled on
those two assets runs ``CensusTriggerSyncsOperator(select=selection_from_asset_events)``, and
exactly the syncs that read the rebuilt tables run, once each: not the sync of a same-named
table in another schema, nor the sync of the model Cosmos did not build.

The DAG file is written into the deployment's test DAG bundle while it runs (see
``cluster.own_dag_bundle_settings``), so that the other system tests do not parse a dbt project.
Airflow 3 only: the ``cosmos`` extra (Cosmos, dbt) is installed on the full Airflow 3 line only.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from airflow_provider_census.testing import CensusEmulator
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS
from tests.system.cluster import AirflowCluster
from tests.system.postgres import PostgresServer

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Cosmos and dbt are installed on the full Airflow 3 line only"),
]

DBT_PROJECT = Path(__file__).resolve().parent / "dbt_analytics"
DBT_DAG = "dbt_analytics"
CENSUS_DAG = "census_after_cosmos"
WAREHOUSE_DATABASE = "prod"
RUN_ID = "system_test_cosmos"
DBT_RUN_TIMEOUT_SECONDS = 240

PROFILES = """\
analytics:
  target: prod
  outputs:
    prod:
      type: postgres
      host: 127.0.0.1
      port: {port}
      user: postgres
      password: ""
      dbname: {database}
      schema: analytics
      threads: 1
"""

# An Airflow DAG file as a user writes it; only the paths and the warehouse's address are the test's.
DAG_FILE = """\
import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Asset
from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig

from airflow_provider_census.assets.tables import selection_from_asset_events
from airflow_provider_census.operators.census import CensusTriggerSyncsOperator

dbt_analytics = DbtDag(  # a module-level name: Airflow collects DAGs that are not in a `with` block by name
    dag_id={dbt_dag!r},
    project_config=ProjectConfig({project!r}),
    profile_config=ProfileConfig(profile_name="analytics", target_name="prod", profiles_yml_filepath={profiles!r}),
    execution_config=ExecutionConfig(dbt_executable_path=str(Path(sys.executable).with_name("dbt"))),
    render_config=RenderConfig(select=["dim_users", "fct_orders"]),
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args={{"retries": 0}},
)

# The tables Cosmos names when it rebuilds the models: Airflow 3's form of their OpenLineage names.
DIM_USERS = Asset("{warehouse}/prod/analytics/dim_users")
FCT_ORDERS = Asset("{warehouse}/prod/analytics/fct_orders")

with DAG(
    {census_dag!r},
    schedule=[DIM_USERS, FCT_ORDERS],  # once both are rebuilt: one run for the dbt run
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args={{"retries": 0}},
):
    CensusTriggerSyncsOperator(
        task_id="census_syncs",
        select=selection_from_asset_events,
        on_no_match="fail",
        deferrable=True,
        poll_interval=1,
        timeout=timedelta(minutes=5),
    )
"""


@pytest.fixture
def census_api_version() -> str:
    """V2 only: the API versions are the hook's business, tested on both elsewhere."""
    return "v2"


@pytest.fixture
def warehouse(postgres: PostgresServer, tmp_path: Path) -> Path:
    """An empty database ``prod`` on the session's PostgreSQL, and a dbt profiles.yml for it."""
    with contextlib.closing(postgres.connect()) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {WAREHOUSE_DATABASE}")
    postgres.create_database(WAREHOUSE_DATABASE)
    profiles = tmp_path / "profiles.yml"
    profiles.write_text(PROFILES.format(port=postgres.port, database=WAREHOUSE_DATABASE))
    return profiles


def table_syncs(emulator: CensusEmulator) -> dict[str, int]:
    """A sync per warehouse table, named ``schema.table``: two that Cosmos rebuilds, two it does not."""
    syncs = {}
    for schema, table in [
        ("analytics", "dim_users"),
        ("analytics", "fct_orders"),
        ("staging", "dim_users"),
        ("analytics", "dim_accounts"),
    ]:
        emulator.add_table(table, catalog=WAREHOUSE_DATABASE, schema=schema)
        source = {"type": "table", "table_catalog": WAREHOUSE_DATABASE, "table_schema": schema, "table_name": table}
        syncs[f"{schema}.{table}"] = emulator.add_sync(source=source)
    return syncs


def triggers_per_sync(emulator: CensusEmulator, syncs: dict[str, int]) -> dict[str, int]:
    return {name: len(emulator.requests_for("POST", f"/syncs/{sync_id}/trigger")) for name, sync_id in syncs.items()}


def asset_triggered_runs(cluster: AirflowCluster, dag_id: str) -> list[tuple[str, str]]:
    rows = cluster.query(
        "SELECT run_id, state FROM dag_run WHERE dag_id = %s AND run_type = 'asset_triggered' ORDER BY id", dag_id
    )
    return [(str(run_id), str(state)) for run_id, state in rows]


def emitted_uris(cluster: AirflowCluster, dag_id: str) -> list[str]:
    """The URIs of the asset events the DAG's tasks recorded, as Airflow stored them."""
    rows = cluster.query(
        "SELECT a.uri FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE e.source_dag_id = %s", dag_id
    )
    return sorted(str(uri) for (uri,) in rows)


def test_census_runs_exactly_the_syncs_reading_the_models_cosmos_rebuilt(
    cluster: AirflowCluster, postgres: PostgresServer, warehouse: Path
) -> None:
    syncs = table_syncs(cluster.emulator)
    address = f"postgres://127.0.0.1:{postgres.port}"
    dag_file = DAG_FILE.format(
        dbt_dag=DBT_DAG, census_dag=CENSUS_DAG, project=str(DBT_PROJECT), profiles=str(warehouse), warehouse=address
    )
    (cluster.test_dags / "cosmos_then_census.py").write_text(dag_file)
    cluster.wait(f"the DAG {CENSUS_DAG} to be parsed", lambda: cluster.dag_is_parsed(CENSUS_DAG))
    cluster.wait_for_rest()
    status, answer = cluster.rest("PATCH", f"/dags/{CENSUS_DAG}?update_mask=is_paused", {"is_paused": False})
    assert status == 200, (status, answer)

    cluster.trigger_dag(DBT_DAG, RUN_ID)
    assert cluster.wait_for_dag_run_end(DBT_DAG, RUN_ID, timeout=DBT_RUN_TIMEOUT_SECONDS) == "success"
    assert emitted_uris(cluster, DBT_DAG) == [
        f"{address}/prod/analytics/dim_users",
        f"{address}/prod/analytics/fct_orders",
    ]

    ((census_run, _),) = cluster.wait(
        f"{CENSUS_DAG}'s asset-triggered run", lambda: asset_triggered_runs(cluster, CENSUS_DAG)
    )
    assert cluster.wait_for_dag_run_end(CENSUS_DAG, census_run) == "success", cluster.explain()
    assert triggers_per_sync(cluster.emulator, syncs) == {
        "analytics.dim_users": 1,
        "analytics.fct_orders": 1,
        "staging.dim_users": 0,
        "analytics.dim_accounts": 0,
    }
    assert len(asset_triggered_runs(cluster, CENSUS_DAG)) == 1
