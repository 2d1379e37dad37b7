"""The example DAGs in real Airflow against the emulator: success and failure paths."""

from __future__ import annotations

import pytest

from airflow_provider_census.links.census import CensusSyncRunsLink
from airflow_provider_census.testing import CensusEmulator, RunScript
from tests.airflow_runs import extra_link, run_example_dag, task_states, xcom


@pytest.fixture
def example_env(census_conn: CensusEmulator, airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> CensusEmulator:
    monkeypatch.setenv("CENSUS_EXAMPLE_POLL_INTERVAL", "0.1")
    return census_conn


def test_post_dbt_dag_one_sync_succeeds_one_fails(
    example_env: CensusEmulator, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The DAG runs exactly the syncs its selection picks when it runs: two crm_* syncs, no other."""
    good = example_env.add_sync(
        RunScript(outcome="completed", records_processed=500, records_updated=500), label="crm_users"
    )
    bad = example_env.add_sync(
        RunScript(outcome="failed", error_code="JSON_ARRAY_ERROR", error_message="Users is not a JSON array"),
        label="crm_events",
    )
    other = example_env.add_sync(RunScript(), label="finance_ledger")
    monkeypatch.setenv("CENSUS_EXAMPLE_SELECT", "label:crm_*")
    dag_run = run_example_dag("census_post_dbt")
    assert xcom(dag_run, "syncs_to_run") == [good, bad]
    triggered = sorted(r.api_path for r in example_env.requests if r.method == "POST")
    assert triggered == sorted([f"/syncs/{good}/trigger", f"/syncs/{bad}/trigger"])
    assert example_env.runs_of(other) == []
    states = task_states(dag_run)
    assert states[("dbt_build", -1)] == "success"
    assert states[("census_sync", 0)] == "success"
    assert states[("census_sync", 1)] == "failed"
    assert str(dag_run.state) == "failed"
    (good_run,) = example_env.runs_of(good)
    assert xcom(dag_run, "census_sync", map_index=0) == good_run["id"]
    summary = xcom(dag_run, "census_sync", key="sync_run", map_index=0)
    assert (summary["outcome"], summary["records_processed"]) == ("succeeded", 500)
    assert summary["url"].endswith(f"/syncs/{good}/history?sync_run_id={good_run['id']}")
    if dag_run.get_task_instance("census_sync", map_index=0).task is None:
        dag_run.get_task_instance("census_sync", map_index=0).task = dag_run.dag.get_task("census_sync")
    assert extra_link(dag_run, "census_sync", map_index=0) == summary["url"]
    (bad_run,) = example_env.runs_of(bad)
    assert extra_link(dag_run, "census_sync", map_index=1).endswith(f"sync_run_id={bad_run['id']}")
    output = capfd.readouterr()
    assert "JSON_ARRAY_ERROR" in output.out + output.err
    assert "Users is not a JSON array" in output.out + output.err
    assert len(example_env.requests_for("POST", f"/syncs/{good}/trigger")) == 1


def test_post_dbt_one_task_dag_runs_every_selected_sync_and_lists_the_failed_one(
    example_env: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = example_env.add_sync(RunScript(records_processed=500, records_updated=500), label="crm_users")
    script = RunScript(outcome="failed", error_code="JSON_ARRAY_ERROR", error_message="Users is not a JSON array")
    bad = example_env.add_sync(script, label="crm_events")
    other = example_env.add_sync(RunScript(), label="finance_ledger")
    monkeypatch.setenv("CENSUS_EXAMPLE_SELECT", "label:crm_*")
    dag_run = run_example_dag("census_post_dbt_one_task")
    assert task_states(dag_run) == {("dbt_build", -1): "success", ("census_syncs", -1): "failed"}
    assert example_env.runs_of(other) == []
    runs = {sync: example_env.runs_of(sync)[0]["id"] for sync in (good, bad)}
    assert xcom(dag_run, "census_syncs", key="sync_run_ids") == {str(sync): run for sync, run in runs.items()}
    summaries = xcom(dag_run, "census_syncs", key="sync_runs")
    assert {key: summary["outcome"] for key, summary in summaries.items()} == {
        str(good): "succeeded",
        str(bad): "failed",
    }
    assert summaries[str(bad)]["error_code"] == "JSON_ARRAY_ERROR"
    if dag_run.get_task_instance("census_syncs").task is None:
        dag_run.get_task_instance("census_syncs").task = dag_run.dag.get_task("census_syncs")
    link = extra_link(dag_run, "census_syncs", link=CensusSyncRunsLink())
    assert link == summaries[str(bad)]["url"], "the link leads to the failed run"


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_trigger_then_sensor_dag(example_env: CensusEmulator, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    sync_id = example_env.add_sync(RunScript(outcome="completed", working_polls=3))
    monkeypatch.setenv("CENSUS_EXAMPLE_SYNC_ID", str(sync_id))
    monkeypatch.setenv("CENSUS_EXAMPLE_SENSOR_MODE", mode)
    dag_run = run_example_dag("census_trigger_then_sensor")
    assert task_states(dag_run) == {("trigger_sync", -1): "success", ("wait_for_run", -1): "success"}
    (run,) = example_env.runs_of(sync_id)
    assert xcom(dag_run, "trigger_sync") == run["id"]
    assert xcom(dag_run, "wait_for_run", key="sync_run")["outcome"] == "succeeded"
    assert xcom(dag_run, "wait_for_run") == run["id"], f"the sensor returns the run id in {mode} mode too"


def test_trigger_then_sensor_dag_fails_on_a_failed_run(
    example_env: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_id = example_env.add_sync(RunScript(outcome="failed", error_code="TIMEOUT"))
    monkeypatch.setenv("CENSUS_EXAMPLE_SYNC_ID", str(sync_id))
    monkeypatch.setenv("CENSUS_EXAMPLE_SENSOR_MODE", "poke")
    dag_run = run_example_dag("census_trigger_then_sensor")
    assert task_states(dag_run) == {("trigger_sync", -1): "success", ("wait_for_run", -1): "failed"}
