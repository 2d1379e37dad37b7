"""CensusTriggerSyncsOperator against the emulator: many syncs, one deferral, every way a run ends.

The task runs directly (as Airflow's own provider tests run operators), in both waiting modes;
what it did is read back from the emulator: the triggers it received and each run's state.
"""

from __future__ import annotations

import functools
import json
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_census.api.errors import (
    CensusError,
    CensusNoSyncSelectedError,
    CensusSyncRunsFailedError,
)
from airflow_provider_census.assets.tables import selection_from_asset_events
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.operators.census import CensusTriggerSyncsOperator
from airflow_provider_census.selectors import CensusSelectorError, parse_selection
from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.triggers.census import CensusSyncRunsTrigger
from airflow_provider_census.version_compat import AirflowSkipException
from tests.conftest import QUICK_RETRIES
from tests.task_context import FakeTaskInstance, context_for, run_deferred

MODES = [pytest.param(False, id="poll"), pytest.param(True, id="deferrable")]


def operator(select: Any, **kwargs: Any) -> CensusTriggerSyncsOperator:
    kwargs.setdefault("poll_interval", 0.02)
    task = CensusTriggerSyncsOperator(task_id="census_syncs", select=select, **kwargs)
    task.hook = CensusHook(task.census_conn_id, retry_policy=QUICK_RETRIES, trigger_settle_seconds=0.05)
    return task


def run_task(task: CensusTriggerSyncsOperator, ti: FakeTaskInstance | None = None) -> tuple[Any, FakeTaskInstance]:
    ti = ti or FakeTaskInstance()
    return run_deferred(task, context_for(ti)), ti


def labeled_syncs(emulator: CensusEmulator, label: str, *scripts: RunScript) -> list[int]:
    return [emulator.add_sync(script, label=f"{label}_{index}") for index, script in enumerate(scripts)]


def trigger_posts(emulator: CensusEmulator, sync_id: int) -> list[Any]:
    return emulator.requests_for("POST", f"/syncs/{sync_id}/trigger")


def only_run(emulator: CensusEmulator, sync_id: int) -> dict[str, Any]:
    (run,) = emulator.runs_of(sync_id)
    return run


@pytest.mark.parametrize("deferrable", MODES)
def test_every_selected_sync_runs_once_and_the_task_returns_their_runs(
    census_conn: CensusEmulator, deferrable: bool
) -> None:
    chosen = labeled_syncs(census_conn, "crm", RunScript(), RunScript(working_polls=5), RunScript(records_updated=7))
    other = census_conn.add_sync(RunScript(), label="finance")
    result, ti = run_task(operator(["label:crm_*"], deferrable=deferrable))
    assert result == {str(sync_id): only_run(census_conn, sync_id)["id"] for sync_id in chosen}
    assert [len(trigger_posts(census_conn, sync_id)) for sync_id in chosen] == [1, 1, 1]
    assert census_conn.runs_of(other) == []
    assert ti.xcom("sync_run_ids") == result
    summaries = ti.xcom("sync_runs")
    assert sorted(summaries) == sorted(result)
    assert summaries[str(chosen[2])]["records_updated"] == 7
    assert {summary["outcome"] for summary in summaries.values()} == {"succeeded"}
    assert ti.xcom("sync_runs_url").endswith("/syncs")
    json.dumps(summaries)


def test_all_runs_wait_in_one_deferral(census_conn: CensusEmulator) -> None:
    chosen = labeled_syncs(census_conn, "crm", *[RunScript(outcome="never")] * 4)
    task = operator(["label:crm_*"], deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context_for())
    trigger = deferred.value.trigger
    assert isinstance(trigger, CensusSyncRunsTrigger)
    assert sorted(trigger.sync_run_ids) == sorted(only_run(census_conn, sync_id)["id"] for sync_id in chosen)
    assert deferred.value.timeout is None
    assert not deferred.value.kwargs, "what the task needs back travels in the event (dag.test() drops kwargs)"
    assert json.loads(json.dumps(trigger.serialize()[1])) == trigger.serialize()[1]


@pytest.mark.parametrize("deferrable", MODES)
def test_failure_after_all_runs_ended_names_each_failed_sync(census_conn: CensusEmulator, deferrable: bool) -> None:
    failing = RunScript(outcome="failed", error_code="E_DEST", error_message="Destination refused")
    good, bad, slow = labeled_syncs(census_conn, "crm", RunScript(), failing, RunScript(working_polls=8))
    with pytest.raises(CensusSyncRunsFailedError) as raised:
        run_task(operator(["label:crm_*"], deferrable=deferrable))
    message = str(raised.value)
    bad_run = only_run(census_conn, bad)["id"]
    assert message.startswith("1 of 3 Census syncs did not succeed:")
    assert f"- sync {bad}: The Census sync run failed" in message
    assert "error_code=E_DEST error_message='Destination refused'" in message
    assert f"/syncs/{bad}/history?sync_run_id={bad_run}" in message
    assert only_run(census_conn, slow)["status"] == "completed", "without fail_fast every run goes to its end"
    assert sorted(raised.value.summary["failed"]) == [str(bad)]
    assert sorted(raised.value.summary["runs"]) == sorted(str(s) for s in (good, bad, slow))


@pytest.mark.parametrize("deferrable", MODES)
def test_fail_fast_cancels_the_other_runs(census_conn: CensusEmulator, deferrable: bool) -> None:
    failing = RunScript(outcome="failed", queued_polls=0, working_polls=1)
    bad, going = labeled_syncs(census_conn, "crm", failing, RunScript(outcome="never"))
    with pytest.raises(CensusSyncRunsFailedError) as raised:
        run_task(operator(["label:crm_*"], deferrable=deferrable, fail_fast=True))
    assert only_run(census_conn, going)["canceled"] is True
    assert f"sync {going}: fail_fast: Census sync run {only_run(census_conn, bad)['id']}" in str(raised.value)
    assert raised.value.summary["failed"].keys() == {str(bad), str(going)}


def test_a_sync_that_fails_to_trigger_is_reported_and_the_others_still_run(census_conn: CensusEmulator) -> None:
    good, refused = labeled_syncs(census_conn, "crm", RunScript(), RunScript())
    census_conn.fail_next("403", count=1, method="POST", path_prefix=f"/syncs/{refused}/trigger")
    with pytest.raises(CensusSyncRunsFailedError) as raised:
        run_task(operator(["label:crm_*"]))
    assert f"sync {refused}: triggering it failed" in str(raised.value)
    assert only_run(census_conn, good)["status"] == "completed"
    assert census_conn.runs_of(refused) == []


def test_triggers_go_out_a_few_at_a_time(census_conn: CensusEmulator) -> None:
    chosen = labeled_syncs(census_conn, "crm", *[RunScript()] * 6)
    census_conn.fail_next("latency", count=6, method="POST", path_prefix="/syncs/", latency=0.3)  # triggers overlap
    result, _ = run_task(operator(["label:crm_*"], max_concurrent_triggers=2))
    assert len(result) == 6
    posts = sorted(
        (request for sync_id in chosen for request in trigger_posts(census_conn, sync_id)),
        key=lambda request: request.started_at,
    )
    assert len(posts) == 6
    in_flight = [sum(1 for other in posts if other.started_at <= post.started_at < other.finished_at) for post in posts]
    assert max(in_flight) <= 2, in_flight


def test_skipped_runs_with_wait_wait_for_the_blocking_run_then_run_afresh(census_conn: CensusEmulator) -> None:
    busy, idle = labeled_syncs(census_conn, "crm", RunScript(working_polls=4), RunScript())
    earlier = census_conn.trigger(busy)
    result, ti = run_task(operator(["label:crm_*"], on_skipped="wait", reattach_on_retry=False))
    fresh, skipped, blocking = census_conn.runs_of(busy)
    assert (blocking["id"], skipped["status"], fresh["status"]) == (earlier, "skipped", "completed")
    assert result[str(busy)] == fresh["id"]
    assert ti.xcom("sync_runs")[str(busy)]["sync_run_id"] == fresh["id"]
    assert census_conn.requests_for("POST", f"/sync_runs/{earlier}/cancel") == []
    assert len(trigger_posts(census_conn, idle)) == 1


def test_rejected_records_gate_applies_to_each_run(census_conn: CensusEmulator) -> None:
    clean, rejecting = labeled_syncs(census_conn, "crm", RunScript(), RunScript(records_failed=9))
    expected = f"sync {rejecting}: The Census sync run completed but rejected 9"
    with pytest.raises(CensusSyncRunsFailedError, match=expected):
        run_task(operator(["label:crm_*"], max_rejected_records=5))
    assert only_run(census_conn, clean)["status"] == "completed"


def test_timeout_fails_with_the_runs_still_going(census_conn: CensusEmulator) -> None:
    (going,) = labeled_syncs(census_conn, "crm", RunScript(outcome="never"))
    with pytest.raises(CensusSyncRunsFailedError, match="did not finish in time"):
        run_task(operator(["label:crm_*"], timeout=0.3, deferrable=True))
    assert only_run(census_conn, going)["canceled"] is False


def test_nothing_selected_fails_skips_or_succeeds_empty(census_conn: CensusEmulator) -> None:
    census_conn.add_sync(RunScript(), label="finance")
    with pytest.raises(CensusNoSyncSelectedError):
        run_task(operator(["label:crm_*"]))
    with pytest.raises(AirflowSkipException):
        run_task(operator(["label:crm_*"], on_no_match="skip"))
    result, ti = run_task(operator(["label:crm_*"], on_no_match="empty"))
    assert (result, ti.xcom("sync_runs")) == ({}, {})


def test_no_wait_returns_the_runs_at_once(census_conn: CensusEmulator) -> None:
    chosen = labeled_syncs(census_conn, "crm", RunScript(outcome="never"), RunScript(outcome="never"))
    result, _ = run_task(operator(["label:crm_*"], wait_for_completion=False))
    assert result == {str(sync_id): only_run(census_conn, sync_id)["id"] for sync_id in chosen}
    assert [only_run(census_conn, sync_id)["status"] for sync_id in chosen] != ["completed", "completed"]


def test_a_parsed_selection_and_exclude_work(census_conn: CensusEmulator) -> None:
    first, second = labeled_syncs(census_conn, "crm", RunScript(), RunScript())
    result, _ = run_task(operator(parse_selection(["label:crm_*"], exclude=[str(second)])))
    assert list(result) == [str(first)]
    result, _ = run_task(operator(["label:crm_*"], exclude=[f"id:{first}"]))
    assert list(result) == [str(second)]


def test_on_kill_cancels_the_runs_being_waited_for(census_conn: CensusEmulator) -> None:
    chosen = labeled_syncs(census_conn, "crm", RunScript(outcome="never"), RunScript(outcome="never"))
    task = operator(["label:crm_*"], deferrable=True)
    with pytest.raises(TaskDeferred):
        task.execute(context_for())
    task.on_kill()
    assert [only_run(census_conn, sync_id)["canceled"] for sync_id in chosen] == [True, True]


def test_malformed_selectors_fail_when_the_dag_is_parsed() -> None:
    with pytest.raises(CensusSelectorError, match="label"):
        CensusTriggerSyncsOperator(task_id="t", select=["lable:crm_*"])
    with pytest.raises(CensusError, match="on_no_match must be one of fail, skip, empty"):
        CensusTriggerSyncsOperator(task_id="t", select=["1"], on_no_match="ignore")
    with pytest.raises(CensusError, match="max_concurrent_triggers"):
        CensusTriggerSyncsOperator(task_id="t", select=["1"], max_concurrent_triggers=0)
    templated = CensusTriggerSyncsOperator(task_id="t", select=["{{ params.selector }}"])
    assert templated.select == ["{{ params.selector }}"], "a template is parsed once it is rendered"


def test_a_callable_select_is_shown_by_its_name_as_the_rendered_field() -> None:
    partial = functools.partial(selection_from_asset_events, extra_select=["label:always_*"])
    task = CensusTriggerSyncsOperator(task_id="t", select=partial, exclude=lambda context: [])
    assert str(task.select) == "airflow_provider_census.assets.tables.selection_from_asset_events(context, ...)"
    assert str(task.exclude) == (
        "tests.test_many_syncs_operator.test_a_callable_select_is_shown_by_its_name_as_the_rendered_field"
        ".<locals>.<lambda>(context)"
    )


@pytest.mark.parametrize("task_state", [None, {"going": "x"}, "text"])
def test_a_resume_without_readable_state_fails_clearly(task_state: object) -> None:
    task = CensusTriggerSyncsOperator(task_id="t", select=["1"])
    with pytest.raises(CensusError, match="cannot be read"):
        task.execute_complete(context_for(), {"schema_version": 1, "runs": [], "task_state": task_state})


def test_a_callable_select_makes_the_selection_from_the_context(census_conn: CensusEmulator) -> None:
    """``select=selection_from_asset_events``: the syncs that read the tables of the run's triggering events."""
    census_conn.add_table("dim_users")
    census_conn.add_table("fct_orders")
    table = {"type": "table", "table_catalog": "prod", "table_schema": "analytics"}
    reads_users = census_conn.add_sync(RunScript(), source={**table, "table_name": "dim_users"})
    reads_orders = census_conn.add_sync(RunScript(), source={**table, "table_name": "fct_orders"})
    uri = "snowflake://xxxxxxx.us-east-1/prod/analytics/dim_users"
    event = SimpleNamespace(asset=SimpleNamespace(uri=uri), extra={})
    ti = FakeTaskInstance()
    context = {**context_for(ti), "triggering_asset_events": {uri: [event]}}
    task = operator(selection_from_asset_events)
    assert str(task.select) == "airflow_provider_census.assets.tables.selection_from_asset_events(context)", (
        "the rendered field names the function, the same on every parse"
    )
    result = run_deferred(task, context)
    assert list(result) == [str(reads_users)]
    assert census_conn.runs_of(reads_orders) == []
