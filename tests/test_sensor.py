"""CensusSyncRunSensor in poke and deferrable modes (reschedule runs in the example DAG tests)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, TaskDeferred

from airflow_provider_census.api.errors import (
    CensusApiError,
    CensusAuthenticationError,
    CensusNotFoundError,
    CensusPollingError,
    CensusRunFailedError,
    CensusRunSkippedError,
)
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.sensors.census import CensusSyncRunSensor
from airflow_provider_census.testing import RUN_READS, CensusEmulator, RunScript
from tests.conftest import QUICK_RETRIES
from tests.task_context import FakeTaskInstance, context_for, only_event, run_deferred

pytestmark = pytest.mark.v2_routes


HANG_GUARD_SECONDS = 60
"""A sensor's ``timeout`` where the wait must end otherwise: it turns a hang into a failure, far beyond
what any wait here takes on a busy machine. Tests of the timeout itself set a short one."""


def sensor(sync_run_id: int | str, **kwargs: Any) -> CensusSyncRunSensor:
    kwargs.setdefault("poke_interval", 0.02)
    kwargs.setdefault("timeout", HANG_GUARD_SECONDS)
    return CensusSyncRunSensor(task_id="wait_for_run", sync_run_id=sync_run_id, **kwargs)


@pytest.mark.parametrize("sync_id_given", [True, False], ids=["with_sync_id", "run_id_only"])
def test_poke_follows_the_run(census_conn: CensusEmulator, census_v2_routes: str, sync_id_given: bool) -> None:
    """The run's link names its sync, unless only V2's documented test_status read it and no sync_id was given:
    then it leads to the syncs page, and the summary says which fields that route does not carry."""
    sync_id = census_conn.add_sync(RunScript(outcome="completed", working_polls=1, records_processed=7))
    run_id = census_conn.trigger(sync_id)
    task = sensor(str(run_id), sync_id=str(sync_id) if sync_id_given else None)
    ti = FakeTaskInstance()
    pokes = [task.poke(context_for(ti)) for _ in range(3)]
    assert [(poke.is_done, poke.xcom_value) for poke in pokes] == [(False, None), (False, None), (True, run_id)]
    summary = ti.xcom("sync_run")
    assert summary["outcome"] == "succeeded"
    only_test_status = census_v2_routes == "documented" and not sync_id_given
    if only_test_status:
        assert ti.xcom("sync_run_url").endswith("/syncs")
        assert (summary["sync_id"], summary["canceled"], summary["records_processed"]) == (None, None, None)
        assert {"sync_id", "canceled", "records_processed"} <= set(summary["unread"])
    else:
        assert ti.xcom("sync_run_url").endswith(f"/syncs/{sync_id}/history?sync_run_id={run_id}")
        assert summary["sync_id"] == sync_id


def test_poke_raises_census_error_for_a_failed_run(census_conn: CensusEmulator) -> None:
    run_id = census_conn.trigger(census_conn.add_sync(RunScript(outcome="failed", error_code="E42", working_polls=0)))
    task = sensor(run_id)
    assert not task.poke(context_for()).is_done
    with pytest.raises(CensusRunFailedError, match="error_code=E42"):
        task.poke(context_for())


def test_deferrable_sensor_waits_in_the_trigger_and_never_cancels(census_conn: CensusEmulator) -> None:
    run_id = census_conn.trigger(census_conn.add_sync(RunScript(outcome="completed", working_polls=3)))
    task = sensor(run_id, deferrable=True)
    with pytest.raises(TaskDeferred) as info:
        task.execute(context_for())
    _, kwargs = info.value.trigger.serialize()
    assert (kwargs["cancel_on_kill"], kwargs["cancel_deadline"]) == (False, None)
    assert run_deferred(task, context_for()) == run_id


def test_deferrable_sensor_timeout_is_a_sensor_timeout(census_conn: CensusEmulator) -> None:
    run_id = census_conn.trigger(census_conn.add_sync(RunScript(outcome="never")))
    with pytest.raises(AirflowSensorTimeout, match="did not finish in time"):
        run_deferred(sensor(run_id, deferrable=True, timeout=0.3), context_for())
    assert census_conn.run(run_id)["canceled"] is False


@pytest.mark.parametrize("deferrable", [False, True])
def test_skipped_run_rules_match_the_operator(
    census_conn: CensusEmulator, census_v2_routes: str, deferrable: bool
) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="completed", working_polls=2))
    earlier = census_conn.trigger(sync_id)
    skipped = census_conn.trigger(sync_id)
    assert census_conn.run(skipped)["status"] == "skipped"
    with pytest.raises(CensusRunSkippedError):
        run_deferred(sensor(skipped, deferrable=deferrable, mode="poke"), context_for())
    waiting = sensor(skipped, sync_id=sync_id, deferrable=deferrable, on_skipped="wait")
    if census_v2_routes == "documented":
        # No run list on this V2: the earlier run cannot be found, so the skip stands, and says so.
        with pytest.raises(CensusRunSkippedError, match="no earlier run was left to wait for"):
            run_deferred(waiting, context_for())
        return
    ti = FakeTaskInstance()
    run_deferred(waiting, context_for(ti))
    assert ti.xcom("sync_run")["sync_run_id"] == earlier
    assert ti.xcom("sync_run")["outcome"] == "succeeded"


def test_a_skip_with_nothing_to_wait_for_does_not_tell_to_set_what_is_set(census_conn: CensusEmulator) -> None:
    skipped = census_conn.trigger(census_conn.add_sync(RunScript(outcome="skipped")))
    with pytest.raises(CensusRunSkippedError) as info:
        sensor(skipped, on_skipped="wait").poke(context_for())
    assert "set on_skipped" not in str(info.value)
    assert "on_skipped='wait' is set, but no earlier run was left to wait for" in str(info.value)


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize(
    ("script", "error_name"),
    [
        (RunScript(outcome="failed"), "CensusRunFailedError"),
        (RunScript(outcome="canceled"), "CensusRunCanceledError"),
        (RunScript(outcome="unknown"), "CensusRunUnknownStateError"),
        (RunScript(outcome="retired"), None),
        (RunScript(outcome="completed", queued_polls=3, working_polls=3), None),
    ],
    ids=lambda v: getattr(v, "outcome", None),
)
def test_every_way_a_run_ends_through_the_sensor(
    census_conn: CensusEmulator, census_v2_routes: str, deferrable: bool, script: RunScript, error_name: str | None
) -> None:
    if census_v2_routes == "documented" and script.outcome == "canceled":
        error_name = "CensusRunFailedError"  # test_status has no `canceled`: the run is its status, 'failed'
    run_id = census_conn.trigger(census_conn.add_sync(script))
    task = sensor(run_id, deferrable=deferrable, mode="poke", unknown_state_timeout=0.2)
    if error_name is None:
        assert run_deferred(task, context_for()) in (run_id, None)
        assert census_conn.run(run_id)["status"] == "completed"
        return
    with pytest.raises(Exception) as info:
        run_deferred(task, context_for())
    assert type(info.value).__name__ == error_name, "the same rules in poke mode as deferred"


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [("401", CensusAuthenticationError), ("403", CensusAuthenticationError), ("404", CensusNotFoundError)],
)
@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_a_failure_raises_the_same_class_deferred_or_not(
    census_conn: CensusEmulator, fault: str, error_class: type[Exception], deferrable: bool
) -> None:
    """Retry rules written on the class must hold whether the failure came in the worker or the triggerer."""
    run_id = census_conn.trigger(census_conn.add_sync(RunScript(outcome="never")))
    task = sensor(run_id, deferrable=deferrable)
    if not deferrable:
        census_conn.fail_next(fault, count=10, method="GET", path_prefix=RUN_READS)
        with pytest.raises(error_class) as info:
            task.poke(context_for())
    else:
        with pytest.raises(TaskDeferred) as deferred:
            task.execute(context_for())
        census_conn.fail_next(fault, count=10, method="GET", path_prefix=RUN_READS)
        event = asyncio.run(only_event(deferred.value.trigger))
        with pytest.raises(error_class) as info:
            task.execute_complete(context_for(), event)
    assert type(info.value) is error_class
    assert f"HTTP {fault}" in str(info.value)
    if isinstance(info.value, CensusApiError):
        assert info.value.http_status == int(fault)


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_passing_failures_are_borne_up_to_max_poll_failures_in_every_mode(
    census_conn: CensusEmulator, deferrable: bool
) -> None:
    """Two failed polls in a row are borne, three end the wait: poking or deferred, one rule."""
    steady = census_conn.trigger(census_conn.add_sync(RunScript(outcome="completed", working_polls=3)))
    census_conn.fail_next("503", count=2, method="GET", path_prefix=RUN_READS)
    task = sensor(steady, deferrable=deferrable, mode="poke", max_poll_failures=3)
    task.hook = CensusHook(retry_policy=QUICK_RETRIES)
    assert run_deferred(task, context_for()) in (steady, None)
    assert census_conn.run(steady)["status"] == "completed"

    going = census_conn.trigger(census_conn.add_sync(RunScript(outcome="never")))
    census_conn.fail_next("503", count=1000, method="GET", path_prefix=RUN_READS)
    failing = sensor(going, deferrable=deferrable, mode="poke", max_poll_failures=3)
    failing.hook = CensusHook(retry_policy=QUICK_RETRIES)  # each poke's own call retries, then counts once
    with pytest.raises(CensusPollingError, match="failed 3 times in a row"):
        run_deferred(failing, context_for())
