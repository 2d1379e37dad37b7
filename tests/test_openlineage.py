"""OpenLineage: dataset naming per warehouse, the facets, and the events of real task runs.

The naming tests need nothing beyond the package. The rest need the ``openlineage`` extra,
which the full lines (Airflow 3.3 and 2.11) install; the smoke lines run only ``-m smoke``,
so these are never collected to run there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_census.api.models import Sync, SyncDestination, SyncSource
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.openlineage import (
    FACET_SCHEMA_URL,
    PRODUCER,
    RUN_FACET_KEY,
    CensusLineageMixin,
    DatasetName,
    SyncLineage,
    build_lineage,
    census_namespace,
    input_dataset,
    output_dataset,
)
from airflow_provider_census.runs import RunSummary
from airflow_provider_census.testing import CensusEmulator, RunScript
from tests.airflow_runs import dag_bundle_folder

CENSUS_NS = "census://app.getcensus.com"
TABLE = SyncSource(connection_id=7, kind="table", catalog="prod", schema="analytics", table="dim_users")


def source(kind: str | None, slug: str = "warehouse", **credentials: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"id": 7, "slug": slug, "name": "Warehouse", "credentials": credentials}
    if kind is not None:
        found["type"] = kind
    return found


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (source("snowflake", account="AB12345.us-east-1"), "snowflake://ab12345.us-east-1"),
        (source("big_query", project_id="prod"), "bigquery"),
        (source("postgres", host="db.example.com", port=6543), "postgres://db.example.com:6543"),
        (source("postgres", host="db.example.com"), "postgres://db.example.com:5432"),
        (
            source("redshift", host="examplecluster.abc123xyz789.us-west-2.redshift.amazonaws.com"),
            "redshift://examplecluster.us-west-2:5439",
        ),
        (source("redshift", host="10.0.0.5", port="5440"), "redshift://10.0.0.5:5440"),
        (source("databricks", server_hostname="dbc-1234.cloud.databricks.com"), "databricks://dbc-1234.cloud.databricks.com"),
        (source("mysql", host="mysql.example.com"), "mysql://mysql.example.com:3306"),
        # A v1-shaped answer (no type): the slug's first word names the warehouse.
        (source(None, slug="snowflake-xxxxxxx-us-east-1", account="xxxxxxx.us-east-1"), "snowflake://xxxxxxx.us-east-1"),
    ],
    ids=["snowflake", "bigquery", "postgres", "postgres-default-port", "redshift", "redshift-ip", "databricks",
         "mysql", "v1-slug"],
)  # fmt: skip
def test_a_table_of_a_known_warehouse_is_named_by_the_openlineage_spec(found: dict[str, Any], expected: str) -> None:
    assert input_dataset(TABLE, found, CENSUS_NS) == DatasetName(expected, "prod.analytics.dim_users")


@pytest.mark.parametrize(
    "found",
    [
        source("elasticsearch", host="es.example.com"),
        source("snowflake"),  # no account to name it by
        source(None, slug="my-warehouse"),
        None,  # the source could not be read
    ],
    ids=["unknown-type", "no-account", "unknown-slug", "unread"],
)
def test_a_table_of_an_unknown_warehouse_falls_back_to_the_census_namespace(found: dict[str, Any] | None) -> None:
    assert input_dataset(TABLE, found, CENSUS_NS) == DatasetName(CENSUS_NS, "sources/7/tables/prod.analytics.dim_users")


@pytest.mark.parametrize(
    ("sync_source", "name"),
    [
        (SyncSource(connection_id=4, kind="model", object_id=15, name="dim_users"), "sources/4/models/dim_users"),
        (SyncSource(connection_id=4, kind="model", object_id=15), "sources/4/models/15"),
        (SyncSource(connection_id=4, kind="segment", object_id=3, name="trial"), "sources/4/segments/trial"),
        (SyncSource(connection_id=4, kind="dataset", object_id=2, name="c360"), "sources/4/datasets/c360"),
    ],
    ids=["model", "model-without-name", "segment", "dataset"],
)  # fmt: skip
def test_census_objects_are_named_under_the_census_host(sync_source: SyncSource, name: str) -> None:
    warehouse = source("snowflake", account="ab12345")
    assert input_dataset(sync_source, warehouse, CENSUS_NS) == DatasetName(CENSUS_NS, name)


def test_the_census_namespace_is_the_api_host() -> None:
    assert census_namespace("https://app-eu.getcensus.com/api/v2") == "census://app-eu.getcensus.com"
    assert census_namespace("http://127.0.0.1:8765/api/v1") == "census://127.0.0.1:8765"


def test_a_destination_is_named_by_its_type_and_slug_else_under_the_census_host() -> None:
    destination = SyncDestination(connection_id="steady_harbor", object_name="Contact")
    activation = {"id": "steady_harbor", "slug": "salesforce-production", "type": "salesforce", "name": "SF"}
    named = DatasetName("salesforce://salesforce-production", "Contact")
    assert output_dataset(destination, activation, CENSUS_NS) == named
    by_id = DatasetName("salesforce://16", "Contact")
    assert output_dataset(destination, {"id": 16, "type": "Salesforce"}, CENSUS_NS) == by_id
    unknown = DatasetName(CENSUS_NS, "destinations/steady_harbor/Contact")
    assert output_dataset(destination, None, CENSUS_NS) == unknown


def summary(outcome: RunOutcome, **details: Any) -> RunSummary:
    status = {RunOutcome.SUCCEEDED: "completed", RunOutcome.FAILED: "failed"}[outcome]
    return RunSummary(
        sync_id=60, sync_run_id=900, status=status, outcome=outcome, url="https://app.getcensus.com/syncs/60/history",
        records_processed=100, records_updated=98, records_failed=2, records_invalid=0, **details,
    )  # fmt: skip


SYNC = Sync(
    id=60, label="crm", operation="upsert", paused=False, status="Ready",
    source=SyncSource(connection_id=4, kind="model", object_id=15, name="dim_users"),
    destination=SyncDestination(connection_id=16, object_name="Contact"),
)  # fmt: skip


def facets_as_json(lineage: Any) -> dict[str, Any]:
    from openlineage.client.serde import Serde

    return {key: Serde.to_dict(facet) for key, facet in lineage.run_facets.items()}


def test_the_run_facet_carries_ids_counts_and_url_with_its_own_producer_and_schema() -> None:
    lineage = build_lineage([SyncLineage(60, SYNC, summary=summary(RunOutcome.SUCCEEDED))], CENSUS_NS)
    facets = facets_as_json(lineage)
    assert set(facets) == {RUN_FACET_KEY}
    facet = facets[RUN_FACET_KEY]
    assert (facet["_producer"], facet["_schemaURL"]) == (PRODUCER, FACET_SCHEMA_URL)
    (run,) = facet["runs"]
    assert run["sync_run_id"] == 900 and run["records_processed"] == 100 and run["records_failed"] == 2
    assert run["url"] == "https://app.getcensus.com/syncs/60/history" and run["outcome"] == "succeeded"
    assert [(d.namespace, d.name) for d in lineage.inputs] == [(CENSUS_NS, "sources/4/models/dim_users")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [(CENSUS_NS, "destinations/16/Contact")]


def test_a_failed_run_gives_an_error_message_facet_with_censuss_words() -> None:
    failed = summary(RunOutcome.FAILED, error_code="JSON_ARRAY_ERROR", error_message="Bad array")
    facets = facets_as_json(build_lineage([SyncLineage(60, SYNC, summary=failed)], CENSUS_NS))
    assert "JSON_ARRAY_ERROR: Bad array" in facets["errorMessage"]["message"]
    assert facets[RUN_FACET_KEY]["runs"][0]["error_code"] == "JSON_ARRAY_ERROR"


class FakeTask(CensusLineageMixin):
    def __init__(self, hook: Any, sync_id: object = 60) -> None:
        self.hook = hook
        self.sync_id = sync_id


def test_lineage_that_cannot_be_read_never_fails_the_task(census_conn: CensusEmulator) -> None:
    # Census unreadable: the run's facet stays, the datasets are left out.
    lineage = FakeTask(_broken_census_hook()).get_openlineage_facets_on_complete(None)
    assert (lineage.inputs, lineage.outputs) == ([], [])
    assert facets_as_json(lineage)[RUN_FACET_KEY]["runs"] == [{"sync_id": 60}]
    # No hook at all: empty lineage, no exception.
    lineage = FakeTask(hook=None).get_openlineage_facets_on_failure(None)
    assert (lineage.inputs, lineage.outputs, lineage.run_facets) == ([], [], {})


def _broken_census_hook() -> Any:
    from airflow_provider_census.hooks.census import CensusHook

    class Broken(CensusHook):
        def get_sync(self, sync_id: int | str) -> Sync:
            raise RuntimeError("Census is down")

    return Broken()


# -- real task runs, the OpenLineage provider enabled, events written to a file ------------------

LINEAGE_BUNDLE = "census-lineage"
DAG_FILE = """\
# An Airflow DAG file written by tests/test_openlineage.py.
from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

from airflow_provider_census.operators.census import CensusTriggerSyncOperator, CensusTriggerSyncsOperator

with DAG(dag_id={dag_id!r}, start_date=datetime(2025, 1, 1), schedule=None, default_args={{"retries": 0}}):
    CensusTriggerSyncOperator(task_id="complete", sync_id={completes}, poll_interval=0.1)
    CensusTriggerSyncOperator(task_id="fail", sync_id={fails}, poll_interval=0.1, deferrable=True)
    CensusTriggerSyncsOperator(task_id="many", select=["label:lineage_*"], poll_interval=0.1, deferrable=True)
"""
RUNNER = """\
import sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
bag.get_dag(sys.argv[2]).test()
"""


def run_with_openlineage(folder: Path, dag_id: str, events: Path, **sync_ids: int) -> list[dict[str, Any]]:
    """Run the DAG with ``dag.test()`` in a fresh Airflow process whose OpenLineage provider writes to ``events``.

    A process of its own, because the provider reads its configuration and registers its
    listener once, when Airflow loads its plugins.
    """
    path = folder / f"{dag_id}.py"
    path.write_text(DAG_FILE.format(dag_id=dag_id, **sync_ids))
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    env = {**os.environ, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)}
    env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "census-tests"
    command = [sys.executable, "-c", RUNNER, str(path), dag_id]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert events.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads(line) for line in events.read_text().splitlines() if line.strip()]


def task_event(events: list[dict[str, Any]], task_id: str, event_type: str) -> dict[str, Any]:
    found = [e for e in events if e["eventType"] == event_type and e["job"]["name"].endswith(f".{task_id}")]
    assert len(found) == 1, [(e["eventType"], e["job"]["name"]) for e in events]
    return found[0]


def test_task_runs_emit_census_lineage(
    census_conn: CensusEmulator,
    census_api_version: str,
    airflow_db: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = dag_bundle_folder(tmp_path, LINEAGE_BUNDLE, monkeypatch)
    census_conn.add_table("dim_users")
    table = {"type": "table", "table_catalog": "prod", "table_schema": "analytics", "table_name": "dim_users"}
    completes = census_conn.add_sync(RunScript(), source=table, destination={"connection_id": 15, "object": "user"})
    script = RunScript(outcome="failed", error_code="LINEAGE_SOURCE_GONE", error_message="The table was dropped.")
    fails = census_conn.add_sync(script, source={"type": "model", "name": "braze_test"})
    many = []
    for name in ("t1", "t2"):
        census_conn.add_table(name)
        many.append(census_conn.add_sync(RunScript(), label=f"lineage_{name}", source={**table, "table_name": name}))
    events = run_with_openlineage(
        folder, f"census_lineage_{census_api_version}", tmp_path / "events.jsonl", completes=completes, fails=fails
    )

    complete = task_event(events, "complete", "COMPLETE")
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [
        ("snowflake://xxxxxxx.us-east-1", "prod.analytics.dim_users")
    ]
    assert [(d["namespace"], d["name"]) for d in complete["outputs"]] == [("braze://braze", "user")]
    (run,) = complete["run"]["facets"][RUN_FACET_KEY]["runs"]
    (census_run,) = census_conn.runs_of(completes)
    assert (run["sync_id"], run["sync_run_id"], run["status"]) == (completes, census_run["id"], "completed")
    assert run["records_processed"] == census_run["records_processed"] and run["url"].startswith("http")

    failed = task_event(events, "fail", "FAIL")
    host = census_namespace(census_conn.api_base_url(census_api_version))
    assert [(d["namespace"], d["name"]) for d in failed["inputs"]] == [(host, "sources/4/models/braze_test")]
    assert "LINEAGE_SOURCE_GONE" in failed["run"]["facets"]["errorMessage"]["message"]
    assert "The table was dropped." in failed["run"]["facets"]["errorMessage"]["message"]
    assert failed["run"]["facets"][RUN_FACET_KEY]["runs"][0]["error_code"] == "LINEAGE_SOURCE_GONE"

    together = task_event(events, "many", "COMPLETE")
    assert sorted(d["name"] for d in together["inputs"]) == ["prod.analytics.t1", "prod.analytics.t2"]
    assert sorted(run["sync_id"] for run in together["run"]["facets"][RUN_FACET_KEY]["runs"]) == many

    # The token is in no event.
    text = (tmp_path / "events.jsonl").read_text()
    assert census_conn.token_for(census_api_version) not in text
