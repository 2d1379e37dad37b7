"""dbt with Cosmos, then Census, in a real Airflow 3 deployment: the post-dbt promise as users run it.

A small dbt project (``dbt_analytics/``: ``dim_users``, ``fct_orders`` and ``dim_accounts`` in
schema ``analytics`` of database ``prod``) is built by astronomer-cosmos's ``DbtDag`` (local
execution, dbt-core and dbt-postgres) against the session's PostgreSQL, selecting two of the
three models. Cosmos names each rebuilt model's table as an asset; a Census DAG scheduled on
those two assets runs ``CensusTriggerSyncsOperator(select=selection_from_asset_events)``, and
exactly the syncs that read the rebuilt tables run, once each: not the sync of a same-named
table in another schema, nor the sync of the model Cosmos did not build.

On Airflow 3 the DAG file is the one ``docs/how-to/cosmos.md`` shows, its paths and the
warehouse's address the test's own, in the session's real deployment: it is written into the
deployment's test DAG bundle while it runs (see ``cluster.own_dag_bundle_settings``), so that
the other system tests do not parse a dbt project.

On Airflow 2.11 the same DAGs, in Airflow 2's spelling (datasets, and the dotted URIs Cosmos
records there), run in the test's process: the dbt DAG with ``dag.test()``, then the
scheduler's own code makes the Census DAG's dataset-triggered run, which ``dag.test()`` runs
(as in tests/test_asset_driven.py). Airflow 2's one DAG folder gives a running deployment no
place for a test's DAG file; the scheduling itself is the scheduler's code either way.
"""

from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path

import pytest

from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS
from tests.airflow_runs import run_scheduled_run, schedule_asset_triggered_run
from tests.docs_blocks import SYSTEM, code_blocks
from tests.system.cluster import AirflowCluster
from tests.system.postgres import PostgresServer

pytestmark = pytest.mark.system

DBT_PROJECT = Path(__file__).resolve().parent / "dbt_analytics"
DBT_DAG = "dbt_analytics"
CENSUS_DAG = "census_after_cosmos"
WAREHOUSE_DATABASE = "prod"
DBT_RUN_TIMEOUT_SECONDS = 240
AT_ONCE = RunScript(queued_polls=0, working_polls=0)

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

DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "cosmos.md"


def dag_file_from_the_docs(settings: dict[str, str]) -> str:
    """The how-to's DAG file (its one ``system`` block), with the test's own value for each setting named."""
    (block,) = [block for block in code_blocks(DOCS_PAGE) if block.kind == SYSTEM]
    code = block.code
    for name, value in settings.items():
        code, found = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", code, count=1, flags=re.MULTILINE)
        assert found, f"{block.name} sets no {name}"
    return code


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
    """A sync per warehouse table, named ``schema.table``: two that Cosmos rebuilds, two it does not.

    Their runs have completed by the task's first look (the docs' DAG polls at the default
    interval; waiting in the triggerer is what the other system tests check)."""
    syncs = {}
    for schema, table in [
        ("analytics", "dim_users"),
        ("analytics", "fct_orders"),
        ("staging", "dim_users"),
        ("analytics", "dim_accounts"),
    ]:
        emulator.add_table(table, catalog=WAREHOUSE_DATABASE, schema=schema)
        source = {"type": "table", "table_catalog": WAREHOUSE_DATABASE, "table_schema": schema, "table_name": table}
        syncs[f"{schema}.{table}"] = emulator.add_sync(AT_ONCE, source=source)
    return syncs


def triggers_per_sync(emulator: CensusEmulator, syncs: dict[str, int]) -> dict[str, int]:
    return {name: len(emulator.requests_for("POST", f"/syncs/{sync_id}/trigger")) for name, sync_id in syncs.items()}


def dag_runs(cluster: AirflowCluster, dag_id: str) -> list[tuple[str, str, str]]:
    """Every run of the DAG, oldest first: its id, its type and its state."""
    rows = cluster.query("SELECT run_id, run_type, state FROM dag_run WHERE dag_id = %s ORDER BY id", dag_id)
    return [(str(run_id), str(run_type), str(state)) for run_id, run_type, state in rows]


def unpause(cluster: AirflowCluster, dag_id: str) -> None:
    status, answer = cluster.rest("PATCH", f"/dags/{dag_id}?update_mask=is_paused", {"is_paused": False})
    assert status == 200, (status, answer)


def emitted_uris(cluster: AirflowCluster, dag_id: str) -> list[str]:
    """The URIs of the asset events the DAG's tasks recorded, as Airflow stored them."""
    rows = cluster.query(
        "SELECT a.uri FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE e.source_dag_id = %s", dag_id
    )
    return sorted(str(uri) for (uri,) in rows)


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the docs' DAG file is written for Airflow 3; see the next test")
def test_census_runs_exactly_the_syncs_reading_the_models_cosmos_rebuilt(
    cluster: AirflowCluster, postgres: PostgresServer, warehouse: Path
) -> None:
    syncs = table_syncs(cluster.emulator)
    address = f"postgres://127.0.0.1:{postgres.port}"
    settings = {
        "DBT_PROJECT": str(DBT_PROJECT),
        "DBT_PROFILES": str(warehouse),
        "DBT_EXECUTABLE": str(Path(sys.executable).with_name("dbt")),
        "WAREHOUSE": address,
    }
    (cluster.test_dags / "cosmos_then_census.py").write_text(dag_file_from_the_docs(settings))
    for dag_id in (CENSUS_DAG, DBT_DAG):
        cluster.wait(f"the DAG {dag_id} to be parsed", lambda dag_id=dag_id: cluster.dag_is_parsed(dag_id))
    cluster.wait_for_rest()
    unpause(cluster, CENSUS_DAG)
    unpause(cluster, DBT_DAG)  # the scheduler starts its daily run (catchup=False: the latest one only)

    dbt_runs = cluster.wait(f"{DBT_DAG}'s daily run", lambda: dag_runs(cluster, DBT_DAG) or None)
    assert [run_type for _, run_type, _ in dbt_runs] == ["scheduled"]
    assert cluster.wait_for_dag_run_end(DBT_DAG, dbt_runs[0][0], timeout=DBT_RUN_TIMEOUT_SECONDS) == "success"
    assert emitted_uris(cluster, DBT_DAG) == [
        f"{address}/prod/analytics/dim_users",
        f"{address}/prod/analytics/fct_orders",
    ]

    ((census_run, run_type, _),) = cluster.wait(f"{CENSUS_DAG}'s run", lambda: dag_runs(cluster, CENSUS_DAG) or None)
    assert run_type == "asset_triggered"
    assert cluster.wait_for_dag_run_end(CENSUS_DAG, census_run) == "success", cluster.explain()
    assert triggers_per_sync(cluster.emulator, syncs) == {
        "analytics.dim_users": 1,
        "analytics.fct_orders": 1,
        "staging.dim_users": 0,
        "analytics.dim_accounts": 0,
    }
    assert len(dag_runs(cluster, CENSUS_DAG)) == 1


AIRFLOW_2_DAG_FILE = """\
# An Airflow 2.11 DAG file: the how-to's, in Airflow 2's spelling.
import sys
from datetime import datetime
from pathlib import Path

from airflow import DAG
from airflow.datasets import Dataset
from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig

from airflow_provider_census.assets.tables import selection_from_asset_events
from airflow_provider_census.operators.census import CensusTriggerSyncsOperator

dbt_analytics = DbtDag(
    dag_id={dbt_dag!r},
    project_config=ProjectConfig({project!r}),
    profile_config=ProfileConfig(profile_name="analytics", target_name="prod", profiles_yml_filepath={profiles!r}),
    execution_config=ExecutionConfig(dbt_executable_path=str(Path(sys.executable).with_name("dbt"))),
    render_config=RenderConfig(select=["dim_users", "fct_orders"]),
    schedule=None,
    start_date=datetime(2025, 1, 1),
)

with DAG(
    {census_dag!r},
    schedule=[Dataset("{warehouse}/prod.analytics.dim_users"), Dataset("{warehouse}/prod.analytics.fct_orders")],
    start_date=datetime(2025, 1, 1),
):
    CensusTriggerSyncsOperator(task_id="census_syncs", select=selection_from_asset_events, on_no_match="fail")
"""


@pytest.fixture
def cosmos_without_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cosmos in this process reports nothing to its vendor (it reads the setting when first imported)."""
    monkeypatch.setenv("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")
    from cosmos import settings

    monkeypatch.setattr(settings, "enable_telemetry", False)


def recorded_dataset_uris(dag_id: str) -> list[str]:
    """The URIs of the dataset events the DAG's tasks recorded (Airflow 2.11's metadata database)."""
    from airflow.models.dataset import DatasetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.query(DatasetEvent).filter(DatasetEvent.source_dag_id == dag_id).all()
        return sorted(event.dataset.uri for event in events)


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="Airflow 3 runs the deployment test above")
def test_on_airflow_2_cosmos_datasets_select_the_same_syncs(
    census_conn: CensusEmulator,
    postgres: PostgresServer,
    warehouse: Path,
    airflow_db: None,
    cosmos_without_telemetry: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.models.dag import DagModel
    from airflow.models.dagbag import DagBag
    from airflow.utils.session import create_session

    syncs = table_syncs(census_conn)
    address = f"postgres://127.0.0.1:{postgres.port}"
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "cosmos_then_census.py").write_text(
        AIRFLOW_2_DAG_FILE.format(
            dbt_dag=DBT_DAG, census_dag=CENSUS_DAG, project=str(DBT_PROJECT), profiles=str(warehouse), warehouse=address
        )
    )
    bag = DagBag(dag_folder=str(folder), include_examples=False)
    assert not bag.import_errors, bag.import_errors
    bag.sync_to_db()
    with create_session() as session:  # the scheduler queues dataset events only for an unpaused DAG
        session.query(DagModel).filter(DagModel.dag_id == CENSUS_DAG).update({DagModel.is_paused: False})

    dbt_run = bag.get_dag(DBT_DAG).test()
    assert str(dbt_run.state) == "success"
    assert recorded_dataset_uris(DBT_DAG) == [
        f"{address}/prod.analytics.dim_users",
        f"{address}/prod.analytics.fct_orders",
    ]

    census_run = run_scheduled_run(bag.get_dag(CENSUS_DAG), schedule_asset_triggered_run(CENSUS_DAG), monkeypatch)
    assert str(census_run.state) == "success"
    assert triggers_per_sync(census_conn, syncs) == {
        "analytics.dim_users": 1,
        "analytics.fct_orders": 1,
        "staging.dim_users": 0,
        "analytics.dim_accounts": 0,
    }
