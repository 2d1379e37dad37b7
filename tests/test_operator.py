"""CensusTriggerSyncOperator against the emulator, in both waiting modes."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_census.api.errors import (
    CensusError,
    CensusInputError,
    CensusPollingError,
    CensusRejectedRecordsError,
    CensusRunCanceledError,
    CensusRunError,
    CensusRunFailedError,
    CensusRunSkippedError,
    CensusRunTimeoutError,
    CensusRunUnknownStateError,
)
from airflow_provider_census.core.steps import WaitState
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.operators.base import execution_timeout_margin
from airflow_provider_census.operators.census import MAX_RETRIGGERS_AFTER_SKIPS, CensusTriggerSyncOperator
from airflow_provider_census.testing import RUN_READS, CensusEmulator, RunScript
from airflow_provider_census.triggers.census import CensusSyncRunTrigger
from tests.conftest import QUICK_RETRIES
from tests.task_context import FakeTaskInstance, context_for, run_deferred

pytestmark = pytest.mark.v2_routes

MODES = [pytest.param(False, id="poll"), pytest.param(True, id="deferrable")]


def operator(sync_id: int | str, **kwargs: Any) -> CensusTriggerSyncOperator:
    kwargs.setdefault("poll_interval", 0.02)
    task = CensusTriggerSyncOperator(task_id="census_sync", sync_id=sync_id, **kwargs)
    task.hook = CensusHook(task.census_conn_id, retry_policy=QUICK_RETRIES, trigger_settle_seconds=0.05)
    return task


def run_task(task: CensusTriggerSyncOperator, ti: FakeTaskInstance | None = None) -> tuple[Any, FakeTaskInstance]:
    ti = ti or FakeTaskInstance()
    return run_deferred(task, context_for(ti)), ti


@pytest.mark.parametrize("deferrable", MODES)
@pytest.mark.parametrize("outcome", ["completed", "retired"])
def test_success_returns_run_id_and_publishes_before_waiting(
    census_conn: CensusEmulator, census_v2_routes: str, deferrable: bool, outcome: str
) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome=outcome, records_processed=40, records_updated=39))
    result, ti = run_task(operator(sync_id, deferrable=deferrable))
    (run,) = census_conn.runs_of(sync_id)
    assert result == run["id"]
    assert [key for key, _ in ti.pushed] == ["sync_run_id", "sync_run_url", "sync_run"]
    assert ti.xcom("sync_run_url").endswith(f"/syncs/{sync_id}/history?sync_run_id={run['id']}")
    summary = ti.xcom("sync_run")
    counts = (None, None) if census_v2_routes == "documented" else (40, 39)  # test_status carries no counts
    assert (summary["outcome"], summary["records_processed"], summary["records_updated"]) == ("succeeded", *counts)
    assert ("records_processed" in summary["unread"]) is (census_v2_routes == "documented")
    json.dumps(summary)
    assert len(census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger")) == 1


def test_deferral_hands_over_json_kwargs_and_no_timeout(census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="never"))
    task = operator(sync_id, deferrable=True, timeout=60, execution_timeout=timedelta(minutes=10))
    with pytest.raises(TaskDeferred) as info:
        task.execute(context_for())
    assert info.value.timeout is None
    assert info.value.method_name == "execute_complete"
    trigger = info.value.trigger
    assert isinstance(trigger, CensusSyncRunTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_census.triggers.census.CensusSyncRunTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["cancel_deadline"] == pytest.approx(time.time() + 600 - 30, abs=5)
    assert kwargs["wait_deadline"] == pytest.approx(time.time() + 60, abs=5)


def test_the_run_is_canceled_a_tenth_of_execution_timeout_before_the_kill_and_at_most_30_s() -> None:
    """The margin on its own: the cancel-deadline row of tests/test_rules_every_driver.py moves the deadline."""
    assert [execution_timeout_margin(total) for total in (2.0, 60.0, 300.0, 600.0, 3600.0)] == [
        0.2,
        6.0,
        30.0,
        30.0,
        30.0,
    ]


FAILURES: list[tuple[RunScript, type[CensusRunError]]] = [
    (RunScript(outcome="failed", error_code="JSON_ARRAY_ERROR", error_message="bad"), CensusRunFailedError),
    (RunScript(outcome="canceled"), CensusRunCanceledError),
    (RunScript(outcome="canceled", cancel_status="completed"), CensusRunCanceledError),
    (RunScript(outcome="skipped"), CensusRunSkippedError),
    (RunScript(outcome="unknown", status_name="exploded"), CensusRunUnknownStateError),
]


@pytest.mark.parametrize("deferrable", MODES)
@pytest.mark.parametrize(("script", "error_class"), FAILURES, ids=lambda v: getattr(v, "outcome", None))
def test_each_bad_end_raises_its_own_error(
    census_conn: CensusEmulator,
    census_v2_routes: str,
    deferrable: bool,
    script: RunScript,
    error_class: type[CensusRunError],
) -> None:
    sync_id = census_conn.add_sync(script)
    task = operator(sync_id, deferrable=deferrable, unknown_state_timeout=0.1)
    if census_v2_routes == "documented" and script.outcome == "canceled":
        # Only GET /syncs/test_status reads runs: it has no `canceled`, so the run is what its status says.
        assert_read_without_canceled(task, census_conn, sync_id, script.cancel_status)
        return
    with pytest.raises(error_class) as info:
        run_task(task)
    (run,) = census_conn.runs_of(sync_id)
    message = str(info.value)
    assert f"Census sync {sync_id} run {run['id']}" in message
    assert f"sync_run_id={run['id']}" in message
    assert info.value.summary["sync_run_id"] == run["id"]
    assert info.value.summary["outcome"] != "succeeded"
    assert census_conn.token not in message


def assert_read_without_canceled(
    task: CensusTriggerSyncOperator, emulator: CensusEmulator, sync_id: int, status: str
) -> None:
    """A run canceled in Census, read where `canceled` is not served: its status decides, `canceled` is unknown."""
    if status == "completed":
        _, ti = run_task(task)
        summary = ti.xcom("sync_run")
    else:
        with pytest.raises(CensusRunFailedError) as info:
            run_task(task)
        summary = info.value.summary
    (run,) = emulator.runs_of(sync_id)
    assert run["canceled"] is True
    assert (summary["status"], summary["canceled"]) == (status, None)
    assert "canceled" in summary["unread"]


def test_failed_run_message_carries_every_census_field(census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(
        RunScript(
            outcome="failed", error_code="JSON_ARRAY_ERROR", error_message="not an array", error_detail="field Users"
        )
    )
    with pytest.raises(CensusRunFailedError) as info:
        run_task(operator(sync_id))
    message = str(info.value)
    for fragment in ("status 'failed'", "error_code=JSON_ARRAY_ERROR", "'not an array'", "'field Users'", "records:"):
        assert fragment in message


@pytest.mark.parametrize("deferrable", MODES)
def test_timeout_stops_waiting_and_leaves_the_run(census_conn: CensusEmulator, deferrable: bool) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="never"))
    with pytest.raises(CensusRunTimeoutError, match="did not finish in time"):
        run_task(operator(sync_id, deferrable=deferrable, timeout=0.3))
    (run,) = census_conn.runs_of(sync_id)
    assert run["canceled"] is False


@pytest.mark.parametrize("deferrable", MODES)
def test_execution_timeout_cancels_the_run_before_airflow_kills_the_task(
    census_conn: CensusEmulator, deferrable: bool
) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="never"))
    task = operator(sync_id, deferrable=deferrable, execution_timeout=timedelta(seconds=1))
    with pytest.raises(CensusRunTimeoutError, match="was canceled"):
        run_task(task)
    (run,) = census_conn.runs_of(sync_id)
    assert run["canceled"] is True
    assert len(census_conn.requests_for("POST", f"/sync_runs/{run['id']}/cancel")) == 1


def trigger_posts(emulator: CensusEmulator, sync_id: int) -> list[Any]:
    return emulator.requests_for("POST", f"/syncs/{sync_id}/trigger")


@pytest.mark.parametrize("deferrable", MODES)
def test_a_skipped_run_with_wait_waits_for_the_blocking_run_then_a_fresh_run_decides(
    census_conn: CensusEmulator, census_v2_routes: str, deferrable: bool
) -> None:
    """The earlier run may have read the models before dbt rebuilt them: it must never decide the task."""
    sync_id = census_conn.add_sync(RunScript(outcome="completed", working_polls=4))
    earlier = census_conn.trigger(sync_id)
    task = operator(sync_id, deferrable=deferrable, on_skipped="wait", reattach_on_retry=False)
    if census_v2_routes == "documented":
        # Without a run list the blocking run cannot be found: the skip stands, with no second trigger.
        with pytest.raises(CensusRunSkippedError, match="no earlier run was left to wait for"):
            run_task(task)
        assert len(trigger_posts(census_conn, sync_id)) == 1
        return
    result, ti = run_task(task)
    newest_first = census_conn.runs_of(sync_id)
    fresh, skipped, blocking = newest_first
    assert (blocking["id"], skipped["status"], fresh["status"]) == (earlier, "skipped", "completed")
    assert result == fresh["id"] == ti.xcom("sync_run_id")
    assert ti.xcom("sync_run")["outcome"] == "succeeded"
    assert census_conn.run_finished_at(earlier) <= min(r.started_at for r in trigger_posts(census_conn, sync_id)[1:])
    assert len(trigger_posts(census_conn, sync_id)) == 2
    assert census_conn.requests_for("POST", f"/sync_runs/{earlier}/cancel") == []

    other = census_conn.add_sync(RunScript(outcome="never"))
    census_conn.trigger(other)
    result, ti = run_task(operator(other, deferrable=deferrable, on_skipped="succeed"))
    assert ti.xcom("sync_run")["outcome"] == "skipped"
    assert result == ti.xcom("sync_run_id")


@pytest.mark.parametrize(
    ("limits", "error"),
    [
        ({"max_rejected_share": 0.05}, CensusRejectedRecordsError),
        ({"max_rejected_records": 9}, CensusRejectedRecordsError),
        ({"max_rejected_records": 10}, None),
        ({"max_rejected_share": 0.1}, None),
    ],
)
def test_rejected_records_gate(
    census_conn: CensusEmulator, census_v2_routes: str, limits: dict[str, Any], error: type | None
) -> None:
    sync_id = census_conn.add_sync(
        RunScript(outcome="completed", records_processed=100, records_failed=6, records_invalid=4)
    )
    task = operator(sync_id, **limits)
    if census_v2_routes == "documented":
        # test_status carries no counts: a limit that cannot be checked never lets the run pass.
        with pytest.raises(CensusRejectedRecordsError, match="cannot be checked"):
            run_task(task)
        return
    if error is None:
        run_task(task)
        return
    with pytest.raises(error, match="rejected 10"):
        run_task(task)


def test_retry_attaches_to_the_run_left_in_progress(census_conn: CensusEmulator, census_v2_routes: str) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="completed", working_polls=3))
    left_over = census_conn.trigger(sync_id)
    if census_v2_routes == "documented":
        # Before Airflow 3.3 only the run list shows a run left going: without it the retry triggers once more,
        # and Census skips that run because the earlier one is still going; the task fails, nothing runs twice.
        with pytest.raises(CensusRunSkippedError):
            run_task(operator(sync_id), FakeTaskInstance(try_number=2))
        assert len(census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger")) == 1
        return
    result, _ = run_task(operator(sync_id), FakeTaskInstance(try_number=2))
    assert result == left_over
    assert census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger") == []


def test_retry_triggers_again_when_nothing_is_in_progress_or_when_switched_off(census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="completed", queued_polls=0, working_polls=0))
    first = census_conn.trigger(sync_id)
    assert CensusHook().get_sync_run(first).status == "completed"
    result, _ = run_task(operator(sync_id), FakeTaskInstance(try_number=2))
    assert result != first
    assert len(census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger")) == 1
    busy = census_conn.add_sync(RunScript(outcome="never"))
    census_conn.trigger(busy)
    with pytest.raises(CensusRunSkippedError):
        run_task(operator(busy, reattach_on_retry=False), FakeTaskInstance(try_number=2))
    assert len(census_conn.requests_for("POST", f"/syncs/{busy}/trigger")) == 1


def test_no_wait_returns_at_once(census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="never"))
    result, ti = run_task(operator(sync_id, wait_for_completion=False, force_full_sync=True))
    (trigger,) = census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger")
    assert trigger.query == {"force_full_sync": "true"}
    assert result == ti.xcom("sync_run_id")
    assert census_conn.requests_for("GET", f"/sync_runs/{result}") == []


def test_templated_ids_are_read_and_empty_ones_are_refused(census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="completed", working_polls=0))
    result, _ = run_task(operator(f" {sync_id} "))
    assert result == census_conn.runs_of(sync_id)[0]["id"]
    with pytest.raises(CensusInputError, match="sync_id must be a positive integer Census id, got ''"):
        run_task(operator(""))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"on_skipped": "maybe"}, "on_skipped must be one of fail, succeed, wait"),
        ({"poll_interval": 0}, "poll_interval must be a positive number"),
        ({"timeout": -1}, "timeout must be a positive number"),
        ({"max_rejected_share": 2}, "max_rejected_share must be between 0 and 1"),
        ({"max_rejected_records": -1}, "max_rejected_records must be a whole number"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(CensusInputError, match=fragment):
        operator(1, **kwargs)


def test_malformed_event_fails_clearly() -> None:
    task = operator(1)
    for event in (None, {"status": "finished"}, {"schema_version": 1, "status": "done", "sync_run_id": 3}):
        with pytest.raises(CensusError, match="event cannot be read"):
            task.execute_complete(context_for(), event)


def test_on_kill_cancels_the_run_being_waited_for(census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="never"))
    task = operator(sync_id, timeout=30)

    def kill_once_waiting() -> None:
        deadline = time.monotonic() + 10
        while task.waiting is None and time.monotonic() < deadline:
            time.sleep(0.01)
        task.on_kill()

    killer = threading.Thread(target=kill_once_waiting)
    killer.start()
    with pytest.raises(CensusRunCanceledError):
        run_task(task)
    killer.join()
    (run,) = census_conn.runs_of(sync_id)
    assert run["canceled"] is True


def test_on_kill_does_nothing_when_switched_off_or_finished(census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="completed", working_polls=0))
    task = operator(sync_id)
    run_task(task)
    task.on_kill()
    keep = operator(sync_id, cancel_on_kill=False)
    keep.waiting = WaitState(census_conn.trigger(census_conn.add_sync(RunScript(outcome="never"))))
    keep.on_kill()
    assert [r for r in census_conn.requests if r.path.endswith("/cancel")] == []


@pytest.mark.parametrize("deferrable", MODES)
def test_poll_failures_are_tolerated_then_reported(census_conn: CensusEmulator, deferrable: bool) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="completed", working_polls=2))
    census_conn.fail_next("503", count=2, method="GET", path_prefix=RUN_READS)
    result, _ = run_task(operator(sync_id, deferrable=deferrable, max_poll_failures=3))
    assert result == census_conn.runs_of(sync_id)[0]["id"]

    flaky = census_conn.add_sync(RunScript(outcome="never"))
    census_conn.fail_next("drop", count=1000, method="GET", path_prefix=RUN_READS)
    with pytest.raises(CensusPollingError, match="failed 3 times in a row"):
        run_task(operator(flaky, deferrable=deferrable, max_poll_failures=3))


def test_fresh_runs_after_skips_are_capped_and_the_failure_says_so(
    census_conn: CensusEmulator, census_v2_routes: str
) -> None:
    """A sync kept busy by something else: a bounded number of fresh runs, then a clear failure.

    Without a run list (V2 as documented) nothing shows what keeps the sync busy: the first skip stands."""
    sync_id = census_conn.add_sync(RunScript(outcome="skipped"))
    with pytest.raises(CensusRunSkippedError) as info:
        run_task(operator(sync_id, on_skipped="wait"))
    posts = census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger")
    assert len(posts) == (1 if census_v2_routes == "documented" else 1 + MAX_RETRIGGERS_AFTER_SKIPS)
    assert "set on_skipped" not in str(info.value)
