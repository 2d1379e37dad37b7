"""Outlets: a sync task's asset event carries its run, in real Airflow (2.11 and 3.x), on V2 and v1."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_census.assets.census import census_sync_asset, event_extra
from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS
from tests.airflow_runs import run_example_dag, task_states, xcom
from tests.conftest import EXAMPLE_DAGS


def asset_events(uri: str, dag_run: Any) -> list[dict[str, Any]]:
    """The extra of every event the DAG run recorded for the asset (the dataset on 2.11) at ``uri``."""
    from airflow.utils.session import create_session

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        joined = (Event.asset_id == Model.id,)
    else:
        from airflow.models.dataset import DatasetEvent as Event
        from airflow.models.dataset import DatasetModel as Model

        joined = (Event.dataset_id == Model.id,)
    with create_session() as session:
        rows = (
            session.query(Event)
            .join(Model, *joined)
            .filter(Model.uri == uri, Event.source_dag_id == dag_run.dag_id, Event.source_run_id == dag_run.run_id)
        )
        return [dict(event.extra) for event in rows]


@pytest.fixture
def example_env(census_conn: CensusEmulator, airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> CensusEmulator:
    monkeypatch.setenv("CENSUS_EXAMPLE_POLL_INTERVAL", "0.1")
    return census_conn


def run_asset_example(sync_id: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the asset example DAG for ``sync_id``; on 2.11 its DAGs go to the database first.

    Airflow 2.11 records a dataset event only for a dataset its database knows, which the DAG
    processor registers when it syncs a DAG; ``dag.test()`` alone does not (Airflow 3's does).
    """
    monkeypatch.setenv("CENSUS_EXAMPLE_SYNC_ID", str(sync_id))
    if not AIRFLOW_V_3_0_PLUS:
        from airflow.models.dagbag import DagBag

        DagBag(dag_folder=str(EXAMPLE_DAGS), include_examples=False).sync_to_db()
    return run_example_dag("census_sync_updates_an_asset")


def test_a_finished_sync_records_its_run_in_the_asset_event(
    example_env: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_id = example_env.add_sync(RunScript(outcome="completed", records_processed=40, records_updated=38))
    dag_run = run_asset_example(sync_id, monkeypatch)
    assert task_states(dag_run) == {("sync_users", -1): "success"}
    (run,) = example_env.runs_of(sync_id)
    (extra,) = asset_events(census_sync_asset(sync_id).uri, dag_run)
    assert {key: extra[key] for key in ("sync_id", "sync_run_id", "status", "records_updated")} == {
        "sync_id": sync_id,
        "sync_run_id": run["id"],
        "status": "completed",
        "records_updated": 38,
    }
    summary = xcom(dag_run, "sync_users", key="sync_run")
    assert extra["url"] == summary["url"]


def test_a_failed_sync_records_no_event(example_env: CensusEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    sync_id = example_env.add_sync(RunScript(outcome="failed", error_code="E", error_message="no"))
    dag_run = run_asset_example(sync_id, monkeypatch)
    assert task_states(dag_run) == {("sync_users", -1): "failed"}
    assert asset_events(census_sync_asset(sync_id).uri, dag_run) == []


def test_the_asset_names_the_sync_and_its_workspace() -> None:
    assert census_sync_asset("12").uri == "census://default/syncs/12"
    assert census_sync_asset(12, workspace="eu-team").uri == "census://eu-team/syncs/12"


def test_the_event_extra_is_json_primitives_of_the_summary() -> None:
    from airflow_provider_census.api.models import SyncRun
    from airflow_provider_census.runs import RunSummary

    run = SyncRun.from_api({"id": 5, "sync_id": 2, "status": "completed", "records_processed": 3, "records_failed": 1})
    extra = event_extra(RunSummary.of(run, "https://app.getcensus.com/api/v2"))
    assert extra == {
        "sync_id": 2,
        "sync_run_id": 5,
        "status": "completed",
        "records_processed": 3,
        "records_updated": None,
        "records_failed": 1,
        "records_invalid": None,
        "url": "https://app.getcensus.com/syncs/2/history?sync_run_id=5",
    }
