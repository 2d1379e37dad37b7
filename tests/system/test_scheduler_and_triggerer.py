"""The post-dbt example DAG in a real Airflow deployment: scheduler, triggerer, DAG processor and
API server (Airflow 3) as separate processes, LocalExecutor, PostgreSQL, the emulator as Census.

Once per API version, one after the other on the session's deployment: the DAG and its
operators are the same, only ``census_default`` differs (see conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_census.testing import RunScript
from tests.system.cluster import POST_DBT_DAG, SYNC_TASK, SYSTEM_TEST_LABEL, AirflowCluster

ONE_TASK_DAG = "census_post_dbt_one_task"

pytestmark = pytest.mark.system

RUN_ID = "system_test_post_dbt_{}"  # .format(the API version): one run per test on the shared deployment
ERROR_CODE = "JSON_ARRAY_ERROR"
ERROR_MESSAGE = "Users is not a JSON array"
# Runs move one step per poll and the trigger polls once a second: several seconds of
# ``working`` with the task deferred, however slow the machine is.
WORKING_POLLS = 5


def watch_deferral(cluster: AirflowCluster, run_id: str, syncs: dict[int, int]) -> dict[int, set[str]]:
    """Until the DAG run ends, sample each mapped task's state and its sync run's status.

    Returns, per map index, what was seen together: ``deferred+working`` when the task was
    deferred while its run was working in Census, ``assigned`` when its trigger was also
    held by a running triggerer at that moment. The task state is read before the run
    status, and runs go straight to working when triggered, so a pair proves overlap.
    """
    seen: dict[int, set[str]] = {map_index: set() for map_index in syncs}

    def sample() -> bool:
        states = cluster.task_states(POST_DBT_DAG, run_id)
        triggerers = cluster.running_triggerer_ids()
        for map_index, sync_id in syncs.items():
            if states.get((SYNC_TASK, map_index)) != "deferred":
                continue
            triggerer = cluster.triggerer_of(POST_DBT_DAG, run_id, SYNC_TASK, map_index)
            runs = cluster.emulator.runs_of(sync_id)
            if runs and runs[0]["status"] == "working":
                seen[map_index].add("deferred+working")
                if triggerer in triggerers:
                    seen[map_index].add("assigned")
        return cluster.dag_run_state(POST_DBT_DAG, run_id) in ("success", "failed")

    cluster.wait("the DAG run to end while watching its deferred tasks", sample, interval=0.2)
    return seen


def files_holding(root: Path, text: str) -> list[Path]:
    """Every file under ``root`` (task logs, component logs, config) that contains ``text``."""
    return sorted(path for path in root.rglob("*") if path.is_file() and text.encode() in path.read_bytes())


def stored_values_holding(cluster: AirflowCluster, text: str, run_id: str | None = None) -> list[str]:
    """XCom values and rendered template fields in the metadata database (of one DAG run, given
    ``run_id``; else of every run) that contain ``text``."""
    rows = cluster.query("SELECT run_id, task_id, key, value FROM xcom")
    rows += cluster.query(
        "SELECT run_id, task_id, 'rendered_fields', rendered_fields FROM rendered_task_instance_fields"
    )
    found = []
    for row_run_id, task_id, key, value in rows:
        if run_id is not None and row_run_id != run_id:
            continue
        shown = bytes(value).decode(errors="replace") if isinstance(value, bytes | memoryview) else str(value)
        if text in shown:
            found.append(f"{row_run_id}/{task_id}/{key}")
    return found


def test_post_dbt_dag_runs_deferred_in_the_triggerer_and_ends_right(cluster: AirflowCluster) -> None:
    emulator = cluster.emulator
    run_id = RUN_ID.format(cluster.api_version)
    good = emulator.add_sync(
        RunScript(outcome="completed", queued_polls=0, working_polls=WORKING_POLLS), label=SYSTEM_TEST_LABEL
    )
    bad = emulator.add_sync(
        RunScript(
            outcome="failed",
            queued_polls=0,
            working_polls=WORKING_POLLS,
            error_code=ERROR_CODE,
            error_message=ERROR_MESSAGE,
        ),
        label=SYSTEM_TEST_LABEL,
    )
    cluster.trigger_dag(POST_DBT_DAG, run_id)

    seen = watch_deferral(cluster, run_id, {0: good, 1: bad})

    explain = f"seen: {seen}\n{cluster.explain()}"
    assert seen == {0: {"deferred+working", "assigned"}, 1: {"deferred+working", "assigned"}}, explain
    assert cluster.task_states(POST_DBT_DAG, run_id) == {
        ("dbt_build", -1): "success",
        ("syncs_to_run", -1): "success",
        (SYNC_TASK, 0): "success",
        (SYNC_TASK, 1): "failed",
    }, explain
    assert cluster.dag_run_state(POST_DBT_DAG, run_id) == "failed"
    failed_log = cluster.task_log(POST_DBT_DAG, run_id, SYNC_TASK, 1)
    assert ERROR_CODE in failed_log, failed_log[-3000:]
    assert ERROR_MESSAGE in failed_log, failed_log[-3000:]
    for map_index, sync_id in ((0, good), (1, bad)):
        (run,) = emulator.runs_of(sync_id)
        link = cluster.extra_link(POST_DBT_DAG, run_id, SYNC_TASK, map_index)
        assert link is not None and link.endswith(f"/syncs/{sync_id}/history?sync_run_id={run['id']}"), link
        assert len(emulator.requests_for("POST", f"/syncs/{sync_id}/trigger")) == 1

    # The token reached Census only in the Authorization header: no log file of any component
    # or task, no XCom and no rendered field holds it (while they do hold Census's error and run ids).
    # The deployment is shared, so the searches cover every test's runs so far, and both tokens.
    assert any(f"run_id={run_id}" in str(path) for path in files_holding(cluster.home, ERROR_CODE)), (
        "the search must reach this run's task logs"
    )
    assert stored_values_holding(cluster, str(emulator.runs_of(good)[0]["id"]), run_id), "the search must reach XComs"
    for token in (emulator.token, emulator.pat):
        assert files_holding(cluster.home, token) == []
        assert stored_values_holding(cluster, token) == []

    # The same syncs in one task: one deferral, one trigger in the triggerer for both runs.
    one_task_run_id = f"{run_id}_one_task"
    ((last_trigger_id,),) = cluster.query("SELECT coalesce(max(id), 0) FROM trigger")
    cluster.trigger_dag(ONE_TASK_DAG, one_task_run_id)
    seen_triggers: set[int] = set()

    def deferred_with_one_trigger() -> bool:
        if cluster.task_states(ONE_TASK_DAG, one_task_run_id).get(("census_syncs", -1)) == "deferred":
            # Triggers made since the run was triggered (earlier tests' may not be cleaned up yet).
            rows = cluster.query("SELECT count(*) FROM trigger WHERE id > %s", last_trigger_id)
            seen_triggers.update(row[0] for row in rows)
        return cluster.dag_run_state(ONE_TASK_DAG, one_task_run_id) in ("success", "failed")

    cluster.wait("the one-task DAG run to end", deferred_with_one_trigger, interval=0.2)
    explain = f"triggers seen: {seen_triggers}\n{cluster.explain()}"
    assert seen_triggers == {1}, explain
    assert cluster.task_states(ONE_TASK_DAG, one_task_run_id)[("census_syncs", -1)] == "failed", explain
    one_task_log = cluster.task_log(ONE_TASK_DAG, one_task_run_id, "census_syncs", -1)
    assert "1 of 2 Census syncs did not succeed" in one_task_log, one_task_log[-3000:]
    assert ERROR_CODE in one_task_log and ERROR_MESSAGE in one_task_log, one_task_log[-3000:]
    for sync_id in (good, bad):
        assert len(emulator.requests_for("POST", f"/syncs/{sync_id}/trigger")) == 2
    # Workers and triggerers alike spoke the API version of this test's connection, and only it
    # (the deployment's connection was on another version in the test before).
    spoken = {request.api_version for request in emulator.requests}
    assert spoken == {cluster.api_version}, spoken
