"""CensusSyncRunsTrigger: many runs in one trigger, one wait loop per run, fail_fast, kill, serialization.

Each case polls runs on the bundled emulator over real HTTP and reads back what the trigger
did from the emulator: the runs' states, and its request log (polls, cancels).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from airflow_provider_census.api import async_pool
from airflow_provider_census.api.errors import CensusError
from airflow_provider_census.core.events import RunsEvent
from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.triggers.census import CensusSyncRunsTrigger
from tests.task_context import only_event
from tests.test_trigger import (
    HANG_GUARD_SECONDS,
    QUICK_POLL,
    cancel_requests,
    canceled_outcome,
    constructor_arguments,
    from_classpath,
    polls_of,
    read_path,
    started_run,
    wait_until,
)

pytestmark = pytest.mark.v2_routes


def many_trigger(run_ids: list[int], **kwargs: Any) -> CensusSyncRunsTrigger:
    """A quickly polling trigger of many runs; its wait deadline turns a hang into a failing test."""
    kwargs.setdefault("poll_interval", QUICK_POLL)
    kwargs.setdefault("wait_deadline", time.time() + HANG_GUARD_SECONDS)
    return CensusSyncRunsTrigger(run_ids, **kwargs)


async def events_of(trigger: CensusSyncRunsTrigger) -> dict[int, Any]:
    """The trigger's one event, read back as the task reads it, keyed by run id."""
    payload = await only_event(trigger)
    parsed = RunsEvent.from_dict(json.loads(json.dumps(payload)))
    return {event.sync_run_id: event for event in parsed.runs}


async def test_one_event_holds_every_run_in_the_order_given(census_conn: CensusEmulator) -> None:
    scripts = [RunScript(working_polls=5), RunScript(), RunScript(outcome="failed", error_code="E_X")]
    run_ids = [started_run(census_conn, script) for script in scripts]
    payload = await only_event(many_trigger(run_ids))
    assert [event["sync_run_id"] for event in payload["runs"]] == run_ids
    assert [event["summary"]["outcome"] for event in payload["runs"]] == ["succeeded", "succeeded", "failed"]
    assert payload["runs"][2]["summary"]["error_code"] == "E_X"
    assert async_pool.open_clients() == 0


async def test_without_fail_fast_every_run_is_waited_for_to_its_end(census_conn: CensusEmulator) -> None:
    failing = started_run(census_conn, RunScript(outcome="failed", queued_polls=0, working_polls=0))
    slow = started_run(census_conn, RunScript(working_polls=8))
    events = await events_of(many_trigger([failing, slow]))
    assert events[slow].summary is not None and events[slow].summary.status == "completed"
    assert cancel_requests(census_conn, slow) == []


async def test_fail_fast_cancels_the_tasks_own_runs_still_going(census_conn: CensusEmulator) -> None:
    failing = started_run(census_conn, RunScript(outcome="failed", queued_polls=0, working_polls=1))
    going = [started_run(census_conn, RunScript(outcome="never")) for _ in range(2)]
    events = await events_of(many_trigger([failing, *going], fail_fast=True))
    assert events[failing].summary is not None and events[failing].summary.outcome.value == "failed"
    for run_id in going:
        assert (events[run_id].status, events[run_id].canceled_run) == ("stopped", True)
        assert f"run {failing} did not succeed" in events[run_id].message
        assert len(cancel_requests(census_conn, run_id)) == 1
        assert census_conn.run(run_id)["canceled"] is True


async def test_fail_fast_never_cancels_a_run_it_only_watches(census_conn: CensusEmulator) -> None:
    failing = started_run(census_conn, RunScript(outcome="failed", queued_polls=0, working_polls=1))
    blocker = started_run(census_conn, RunScript(outcome="never"))
    events = await events_of(many_trigger([failing], watched_run_ids=[blocker], fail_fast=True))
    assert (events[blocker].status, events[blocker].canceled_run) == ("stopped", False)
    assert cancel_requests(census_conn, blocker) == []
    assert census_conn.run(blocker)["canceled"] is False


async def test_fail_fast_follows_the_tasks_checks(census_conn: CensusEmulator) -> None:
    """A completed run over the rejected-records limit is a failure; a skip the task waits out is not."""
    rejecting = started_run(census_conn, RunScript(records_failed=7, queued_polls=0, working_polls=1))
    going = started_run(census_conn, RunScript(outcome="never"))
    events = await events_of(many_trigger([rejecting, going], fail_fast=True, max_rejected_records=5))
    assert events[going].status == "stopped"

    skipped = started_run(census_conn, RunScript(outcome="skipped"))
    slow = started_run(census_conn, RunScript(working_polls=6))
    events = await events_of(many_trigger([skipped, slow], fail_fast=True, on_skipped="wait"))
    assert events[slow].status == "finished"
    assert events[skipped].summary is not None and events[skipped].summary.outcome.value == "skipped"


async def test_a_watched_run_ending_badly_stops_nothing(census_conn: CensusEmulator) -> None:
    blocker = started_run(census_conn, RunScript(outcome="failed", queued_polls=0, working_polls=0))
    own = started_run(census_conn, RunScript(working_polls=6))
    events = await events_of(many_trigger([own], watched_run_ids=[blocker], fail_fast=True))
    assert events[own].status == "finished"
    assert events[own].summary is not None and events[own].summary.status == "completed"


async def test_cancel_deadline_cancels_own_runs_and_leaves_watched_ones(census_conn: CensusEmulator) -> None:
    own = started_run(census_conn, RunScript(outcome="never"))
    blocker = started_run(census_conn, RunScript(outcome="never"))
    trigger = many_trigger([own], watched_run_ids=[blocker], cancel_deadline=time.time() + 0.3)
    events = await events_of(trigger)
    assert (events[own].status, events[own].canceled_run) == ("timeout", True)
    assert (events[blocker].status, events[blocker].canceled_run) == ("timeout", False)
    assert cancel_requests(census_conn, blocker) == []
    assert census_conn.run(blocker)["canceled"] is False


async def test_one_runs_passing_faults_do_not_end_the_others(census_conn: CensusEmulator) -> None:
    faulty = started_run(census_conn, RunScript(working_polls=3))
    steady = started_run(census_conn, RunScript(working_polls=3))
    census_conn.fail_next("503", count=2, method="GET", path_prefix=read_path(census_conn, faulty))
    events = await events_of(many_trigger([faulty, steady], fail_fast=True, max_poll_failures=3))
    assert [events[run_id].status for run_id in (faulty, steady)] == ["finished", "finished"]
    assert [request.fault for request in polls_of(census_conn, faulty)][:2] == ["503", "503"]


async def test_on_kill_cancels_only_the_own_runs_still_going(census_conn: CensusEmulator) -> None:
    done = started_run(census_conn, RunScript(queued_polls=0, working_polls=0))
    going = started_run(census_conn, RunScript(outcome="never"))
    blocker = started_run(census_conn, RunScript(outcome="never"))
    trigger = many_trigger([done, going], watched_run_ids=[blocker])
    waiting = asyncio.create_task(only_event(trigger))
    await wait_until(lambda: len(polls_of(census_conn, done)) >= 1)
    polled = len(polls_of(census_conn, going))
    await wait_until(lambda: len(polls_of(census_conn, going)) >= polled + 2)  # the done run's answer is read by then
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await trigger.on_kill()
    assert [len(cancel_requests(census_conn, run_id)) for run_id in (done, going, blocker)] == [0, 1, 0]
    assert async_pool.open_clients() == 0


async def test_runs_share_one_pooled_client(census_conn: CensusEmulator) -> None:
    run_ids = [started_run(census_conn, RunScript(outcome="never")) for _ in range(6)]
    waiting = asyncio.create_task(only_event(many_trigger(run_ids)))
    await wait_until(lambda: all(len(polls_of(census_conn, run_id)) >= 2 for run_id in run_ids))
    assert async_pool.open_clients() == 1
    for run_id in run_ids:
        census_conn.workspace.cancel_run(run_id)
    payload = await waiting
    assert [event["summary"]["outcome"] for event in payload["runs"]] == [canceled_outcome(census_conn)] * len(run_ids)


def test_serialized_kwargs_are_json_and_rebuild_the_same_trigger() -> None:
    trigger = CensusSyncRunsTrigger(
        [3, 4],
        watched_run_ids=[2],
        fail_fast=True,
        on_skipped="wait",
        max_rejected_records=3,
        max_rejected_share=0.5,
        census_conn_id="census_eu",
        poll_interval=15,
        wait_deadline=1_800_000_000.5,
        cancel_deadline=1_800_000_100.25,
        started_at=1_799_999_000.75,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_census.triggers.census.CensusSyncRunsTrigger"
    assert set(kwargs) == constructor_arguments(CensusSyncRunsTrigger), "every argument must travel"
    assert json.loads(json.dumps(kwargs)) == kwargs
    rebuilt = from_classpath(classpath, kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    "event",
    [None, {"schema_version": 1}, {"schema_version": 2, "runs": []}, {"schema_version": 1, "runs": [{"x": 1}]}],
)
def test_an_unreadable_event_fails_loudly(event: object) -> None:
    with pytest.raises(CensusError, match="cannot be read"):
        RunsEvent.from_dict(event)
