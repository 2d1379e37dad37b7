"""Provider 2.1's names keep working after the upgrade, with this provider's state rules and messages.

A DAG written for 2.1 (``CensusOperator`` then ``CensusSensor``), a trigger row 2.1 wrote, an
event 2.1's trigger left in a deferred task, and 2.1's hook methods: each against the emulator,
on both API versions, and the DAG and the trigger row in real Airflow.
"""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, TaskDeferred

from airflow_provider_census.api.errors import (
    CensusError,
    CensusInputError,
    CensusRunCanceledError,
    CensusRunFailedError,
    CensusRunSkippedError,
    CensusRunUnknownStateError,
)
from airflow_provider_census.api.settings import sync_run_app_url
from airflow_provider_census.core.events import RunEvent
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.operators.census import CensusOperator, CensusTriggerSyncOperator
from airflow_provider_census.sensors.census import CensusSensor, CensusSyncRunSensor
from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.triggers.census import CensusSyncRunTrigger, CensusTrigger
from airflow_provider_census.version_compat import AirflowProviderDeprecationWarning
from tests.airflow_runs import extra_link, run_example_dag, task_states, xcom
from tests.task_context import FakeTaskInstance, context_for, only_event, run_deferred
from tests.test_trigger import (  # encrypting_fernet is a fixture, used by name
    encrypting_fernet,  # noqa: F401
    from_classpath,
    kwargs_as_the_triggerer_reads_them,
)

CLASSPATH_21 = "airflow_provider_census.triggers.census.CensusTrigger"
ENDS_AT_FIRST_POLL = {"queued_polls": 0, "working_polls": 0}


def deprecations(make: Callable[[], Any]) -> tuple[Any, list[str]]:
    """What ``make`` returns, and the messages of the AirflowProviderDeprecationWarnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = make()
    return made, [str(w.message) for w in caught if issubclass(w.category, AirflowProviderDeprecationWarning)]


def census_sensor(sync_run_id: int | str, **kwargs: Any) -> CensusSensor:
    kwargs.setdefault("poke_interval", 0.02)
    kwargs.setdefault("timeout", 60)  # a hang guard: the waits here end otherwise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AirflowProviderDeprecationWarning)
        return CensusSensor(task_id="sensor", sync_run_id=sync_run_id, **kwargs)


def census_operator(sync_id: int | str, **kwargs: Any) -> CensusOperator:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AirflowProviderDeprecationWarning)
        return CensusOperator(task_id="sync", sync_id=sync_id, **kwargs)


def started_run(emulator: CensusEmulator, script: RunScript) -> int:
    return emulator.trigger(emulator.add_sync(script))


def run_gets(emulator: CensusEmulator, run_id: int) -> int:
    return len(emulator.requests_for("GET", f"/sync_runs/{run_id}"))


# -- each old name warns and names its successor -----------------------------------------


def test_census_operator_warns_once_naming_its_successor_and_how_to_keep_21s_behaviour() -> None:
    task, messages = deprecations(lambda: CensusOperator(task_id="sync", sync_id=5))
    assert len(messages) == 1, messages
    assert "CensusTriggerSyncOperator" in messages[0]
    assert "wait_for_completion=False" in messages[0]
    assert isinstance(task, CensusTriggerSyncOperator)
    assert task.wait_for_completion is False


def test_census_sensor_warns_once_naming_its_successor() -> None:
    task, messages = deprecations(lambda: CensusSensor(task_id="sensor", sync_run_id="{{ x }}"))
    assert len(messages) == 1, messages
    assert "CensusSyncRunSensor" in messages[0]
    assert isinstance(task, CensusSyncRunSensor)
    assert task.deferrable is False, "2.1's sensor did not defer unless asked to"
    assert "sync_run_id" in task.template_fields


def test_the_21_trigger_needs_no_warning() -> None:
    _, messages = deprecations(lambda: CensusTrigger(sync_run_id="7"))
    assert messages == []


@pytest.mark.parametrize(
    ("call", "successor"),
    [
        (lambda hook, sync_id, run_id: hook.trigger_sync(sync_id), "CensusHook.trigger_sync_run"),
        (lambda hook, sync_id, run_id: hook.get_sync_run_info(run_id), "CensusHook.get_sync_run"),
        (lambda hook, sync_id, run_id: hook.get_api_base_url(), "CensusHook.base_url"),
        (lambda hook, sync_id, run_id: hook.get_sync_history_url(sync_id, run_id), "sync_run_url"),
        (lambda hook, sync_id, run_id: hook.get_auth_headers(), "the hook's own calls"),
    ],
    ids=["trigger_sync", "get_sync_run_info", "get_api_base_url", "get_sync_history_url", "get_auth_headers"],
)
def test_each_21_hook_method_warns_naming_its_successor(
    census_conn: CensusEmulator, hook: CensusHook, call: Callable[[CensusHook, int, int], Any], successor: str
) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="never"))
    run_id = census_conn.trigger(sync_id)
    _, messages = deprecations(lambda: call(hook, sync_id, run_id))
    assert len(messages) == 1, messages
    assert successor in messages[0]


def test_a_21_hook_method_warns_at_the_line_that_calls_it(census_conn: CensusEmulator, hook: CensusHook) -> None:
    """The warning points at the DAG's line to change, not at the provider."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hook.get_api_base_url()
    (warning,) = [w for w in caught if issubclass(w.category, AirflowProviderDeprecationWarning)]
    assert warning.filename == __file__


@pytest.mark.parametrize(
    ("make", "run_field"), [(CensusOperator, "sync_id"), (CensusSensor, "sync_run_id")], ids=["operator", "sensor"]
)
def test_default_args_fill_in_the_21_parameters(make: type[Any], run_field: str) -> None:
    from airflow.providers.common.compat.sdk import DAG

    default_args = {run_field: "41", "census_conn_id": "census_from_default_args"}
    with DAG(dag_id=f"default_args_{make.__name__}", schedule=None, default_args=default_args):
        task, _ = deprecations(lambda: make(task_id="task"))
    assert (getattr(task, run_field), task.census_conn_id) == ("41", "census_from_default_args")


# -- CensusOperator and the 2.1 hook methods: what 2.1 returned ----------------------------


def test_census_operator_returns_the_int_run_id_at_once_and_publishes_the_link(census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="failed", **ENDS_AT_FIRST_POLL))  # waiting would fail the task
    ti = FakeTaskInstance()
    result = census_operator(str(sync_id)).execute(context_for(ti))
    (run,) = census_conn.runs_of(sync_id)
    assert type(result) is int
    assert result == run["id"]
    assert ti.xcom("sync_run_id") == run["id"]
    assert ti.xcom("sync_run_url") == sync_run_app_url(CensusHook().base_url, sync_id, run["id"])
    assert run_gets(census_conn, run["id"]) == 0, "2.1's operator did not wait, nor does this one"


def test_21_hook_methods_return_what_21_returned(census_conn: CensusEmulator, census_api_version: str) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="failed", error_code="E_21", **ENDS_AT_FIRST_POLL))
    hook = CensusHook()
    app = f"http://{census_conn.host}:{census_conn.port}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AirflowProviderDeprecationWarning)
        run_id = hook.trigger_sync(sync_id)
        info = hook.get_sync_run_info(str(run_id))
        base = hook.get_api_base_url()
        history = hook.get_sync_history_url(sync_id)
        run_page = hook.get_sync_history_url(sync_id, run_id)
        headers = hook.get_auth_headers()
    assert type(run_id) is int
    assert census_conn.runs_of(sync_id)[0]["id"] == run_id
    assert isinstance(info, dict)
    assert (info["status"], info["error_code"]) == ("failed", "E_21")
    assert base == app, "scheme and host, without /api/..."
    assert history == f"{app}/syncs/{sync_id}/history"
    assert run_page == f"{app}/syncs/{sync_id}/history?sync_run_id={run_id}"
    assert headers == {"Authorization": f"Bearer {census_conn.token_for(census_api_version)}"}


# -- CensusSensor: every state by this provider's rules, in poke and deferrable modes -----

SENSOR_ENDS: list[Any] = [
    pytest.param(RunScript(outcome="completed", working_polls=1), None, id="completed"),
    pytest.param(RunScript(outcome="failed", error_code="E_DEST"), CensusRunFailedError, id="failed"),
    pytest.param(RunScript(outcome="skipped"), CensusRunSkippedError, id="skipped"),
    pytest.param(RunScript(outcome="canceled", cancel_status="completed"), CensusRunCanceledError, id="canceled"),
    pytest.param(RunScript(outcome="unknown"), CensusRunUnknownStateError, id="unknown"),
]


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
@pytest.mark.parametrize(("script", "error"), SENSOR_ENDS)
def test_census_sensor_reads_every_state_by_our_rules(
    census_conn: CensusEmulator, deferrable: bool, script: RunScript, error: type[Exception] | None
) -> None:
    run_id = started_run(census_conn, script)
    task = census_sensor(str(run_id), deferrable=deferrable, mode="poke", timeout=60, unknown_state_timeout=0.2)
    ti = FakeTaskInstance()
    if error is None:
        assert run_deferred(task, context_for(ti)) == run_id
        assert ti.xcom("sync_run")["outcome"] == "succeeded"
        return
    with pytest.raises(error) as info:  # an unknown state ends after unknown_state_timeout in both modes
        run_deferred(task, context_for(ti))
    if error is CensusRunFailedError:
        assert "error_code=E_DEST" in str(info.value)


def test_census_sensor_in_reschedule_mode_pokes_once_per_try(census_conn: CensusEmulator) -> None:
    """Each reschedule is one poke in a fresh try: the run is read, never trusted from an earlier try."""
    run_id = started_run(census_conn, RunScript(outcome="failed", error_code="E_LATE", working_polls=1))
    task = census_sensor(str(run_id), mode="reschedule")
    assert [task.poke(context_for()).is_done for _ in range(2)] == [False, False]
    with pytest.raises(CensusRunFailedError, match="error_code=E_LATE"):
        task.poke(context_for())


# -- the 2.1 example DAG, unchanged, in real Airflow ----------------------------------------

DAG_ENDS: list[Any] = [
    pytest.param(RunScript(outcome="completed", working_polls=2), "success", "succeeded", id="completed"),
    pytest.param(
        RunScript(outcome="failed", error_code="E_21_DAG", error_message="Destination refused"),
        "failed",
        "E_21_DAG",
        id="failed",
    ),
    pytest.param(RunScript(outcome="skipped"), "failed", "Census skipped the run", id="skipped"),
    pytest.param(
        RunScript(outcome="canceled", cancel_status="completed"),
        "failed",
        "was canceled before it finished",
        id="canceled",
    ),
]


@pytest.mark.parametrize(("script", "sensor_state", "evidence"), DAG_ENDS)
def test_the_21_example_dag_ends_right(
    census_conn: CensusEmulator,
    airflow_db: None,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    script: RunScript,
    sensor_state: str,
    evidence: str,
) -> None:
    sync_id = census_conn.add_sync(script)
    monkeypatch.setenv("AIRFLOW_CONN_CENSUS_21", os.environ["AIRFLOW_CONN_CENSUS_DEFAULT"])
    for name, value in {
        "SYNC_ID": str(sync_id),
        "CONN_ID": "census_21",
        "POLL_INTERVAL": "0.1",
        "RETRY_DELAY": "0",
    }.items():
        monkeypatch.setenv(f"CENSUS_EXAMPLE_{name}", value)
    dag_run = run_example_dag("example_census")
    assert task_states(dag_run) == {("sync", -1): "success", ("sensor", -1): sensor_state}
    (run,) = census_conn.runs_of(sync_id)
    assert xcom(dag_run, "sync") == run["id"]
    if dag_run.get_task_instance("sync").task is None:
        dag_run.get_task_instance("sync").task = dag_run.dag.get_task("sync")
    assert extra_link(dag_run, "sync").endswith(f"/syncs/{sync_id}/history?sync_run_id={run['id']}")
    output = capfd.readouterr()
    if sensor_state == "success":
        assert xcom(dag_run, "sensor", key="sync_run")["outcome"] == evidence
    else:
        assert evidence in output.out + output.err


# -- a trigger row 2.1 wrote, through Airflow's trigger table -------------------------------


def trigger_row_as_21_wrote_it(sync_run_id: str) -> int:
    """Store a Trigger row with 2.1's class path and kwargs (its sensor rendered the run id to text)."""
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    kwargs = {"sync_run_id": sync_run_id, "census_conn_id": "census_default", "poll_interval": 1.0}
    with create_session() as session:
        row = Trigger(classpath=CLASSPATH_21, kwargs=kwargs)
        session.add(row)
        session.flush()
        return int(row.id)


def trigger_from_the_table(row_id: int) -> CensusSyncRunTrigger:
    """Read the row back and build its trigger the way a triggerer does: import the class path, pass the kwargs."""
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.get(Trigger, row_id)
        assert "census_default" not in row.encrypted_kwargs, "Airflow stores the kwargs encrypted"
        classpath, kwargs = row.classpath, kwargs_as_the_triggerer_reads_them(row)
        session.delete(row)
    assert classpath == CLASSPATH_21
    trigger = from_classpath(classpath, kwargs)
    assert isinstance(trigger, CensusTrigger)
    return trigger


@pytest.mark.usefixtures("encrypting_fernet", "airflow_db")
@pytest.mark.parametrize("sensor_class", [CensusSensor, CensusSyncRunSensor])
@pytest.mark.parametrize(
    ("script", "error"),
    [
        pytest.param(RunScript(outcome="completed", **ENDS_AT_FIRST_POLL), None, id="completed"),
        pytest.param(RunScript(outcome="failed", error_code="E_ROW", **ENDS_AT_FIRST_POLL), "E_ROW", id="failed"),
    ],
)
def test_a_21_trigger_row_runs_on_and_its_event_finishes_the_sensor(
    census_conn: CensusEmulator, sensor_class: type[CensusSyncRunSensor], script: RunScript, error: str | None
) -> None:
    run_id = started_run(census_conn, script)
    trigger = trigger_from_the_table(trigger_row_as_21_wrote_it(str(run_id)))
    assert trigger.serialize() == (
        CLASSPATH_21,
        {"sync_run_id": run_id, "census_conn_id": "census_default", "poll_interval": 1.0},
    )
    event = asyncio.run(only_event(trigger))
    assert RunEvent.from_dict(event).status == "finished", "the row's trigger yields this provider's event"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AirflowProviderDeprecationWarning)
        task = sensor_class(task_id="sensor", sync_run_id=str(run_id), deferrable=True)
    ti = FakeTaskInstance()
    if error is None:
        assert task.execute_complete(context_for(ti), event) == run_id
        assert ti.xcom("sync_run")["outcome"] == "succeeded"
        return
    with pytest.raises(CensusRunFailedError, match=f"error_code={error}"):
        task.execute_complete(context_for(ti), event)


def test_the_21_trigger_takes_a_text_run_id_and_keeps_21s_kwargs() -> None:
    text, number = (
        CensusTrigger(" 123 ", "census_eu", 5),
        CensusTrigger(123, census_conn_id="census_eu", poll_interval=5),
    )
    assert (
        text.serialize()
        == number.serialize()
        == (
            CLASSPATH_21,
            {"sync_run_id": 123, "census_conn_id": "census_eu", "poll_interval": 5.0},
        )
    )
    assert CensusTrigger(7).serialize()[1] == {
        "sync_run_id": 7,
        "census_conn_id": "census_default",
        "poll_interval": 60.0,
    }


def test_the_21_trigger_rejects_an_unreadable_run_id_by_name() -> None:
    with pytest.raises(CensusInputError, match="sync_run_id must be a positive integer Census id, got 'None'"):
        CensusTrigger("None")


async def test_killing_a_21_trigger_never_cancels_the_run(census_conn: CensusEmulator) -> None:
    """Only 2.1's sensor wrote these rows, and a sensor only watches a run that something else started."""
    run_id = started_run(census_conn, RunScript(outcome="never"))
    await CensusTrigger(run_id).on_kill()
    assert census_conn.requests_for("POST", f"/sync_runs/{run_id}/cancel") == []
    assert census_conn.run(run_id)["canceled"] is False


async def test_the_21_trigger_says_it_resumed_a_21_wait(
    census_conn: CensusEmulator, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    run_id = started_run(census_conn, RunScript(**ENDS_AT_FIRST_POLL))
    trigger = CensusTrigger(run_id, poll_interval=0.05)
    with caplog.at_level("INFO"):
        event = await only_event(trigger)
    assert event["census_event"]["summary"]["outcome"] == "succeeded"
    output = capfd.readouterr()  # Airflow 3 logs through structlog to stdout, Airflow 2 through logging
    logged = "\n".join([caplog.text, output.out, output.err])
    assert f"Resuming a wait of airflow-provider-census 2.1 for Census sync run {run_id}" in logged


# -- what code written against 2.1's event reads from the 2.1 trigger's event ---------------


def reads_as_21s_sensor_did(event: dict[str, Any]) -> bool:
    """2.1's ``CensusSensor.execute_complete``: True when it would have passed, False when it raised."""
    return event.get("status") == "completed"


def reads_as_failed_only(event: dict[str, Any]) -> bool:
    """Custom code that fails only on ``status == "failed"`` and takes anything else as done."""
    return event["status"] != "failed"


NO_RUN = 987654
"""A run id the emulator never made: polling it fails for good, and the trigger reports an error."""


@pytest.mark.parametrize(
    ("script", "wait", "our_error"),
    [
        pytest.param(RunScript(**ENDS_AT_FIRST_POLL), {}, None, id="completed"),
        pytest.param(RunScript(outcome="failed", **ENDS_AT_FIRST_POLL), {}, CensusRunFailedError, id="failed"),
        pytest.param(
            RunScript(outcome="canceled", cancel_status="completed", **ENDS_AT_FIRST_POLL),
            {},
            CensusRunCanceledError,
            id="canceled",
        ),
        pytest.param(RunScript(outcome="skipped", **ENDS_AT_FIRST_POLL), {}, CensusRunSkippedError, id="skipped"),
        pytest.param(
            RunScript(outcome="unknown", status_name="on_hold", **ENDS_AT_FIRST_POLL),
            {"unknown_state_timeout": 0.1},
            CensusRunUnknownStateError,
            id="unknown-state",
        ),
        pytest.param(RunScript(outcome="never"), {"wait_deadline": 0.3}, AirflowSensorTimeout, id="timeout"),
        pytest.param(None, {}, CensusError, id="error"),
    ],
)
def test_no_reader_of_21s_event_takes_a_run_that_did_not_succeed_for_a_success(
    census_conn: CensusEmulator, script: RunScript | None, wait: dict[str, float], our_error: type[Exception] | None
) -> None:
    run_id = NO_RUN if script is None else started_run(census_conn, script)
    trigger = CensusTrigger(str(run_id), poll_interval=0.05)
    trigger.unknown_state_timeout = wait.get("unknown_state_timeout", trigger.unknown_state_timeout)
    if "wait_deadline" in wait:
        trigger.wait_deadline = time.time() + wait["wait_deadline"]
    event = asyncio.run(only_event(trigger))

    succeeded = our_error is None
    assert {"sync_run_id", "status", "error_message"} <= set(event)
    assert event["sync_run_id"] == run_id
    assert event["status"] == ("completed" if succeeded else "failed")
    assert reads_as_21s_sensor_did(event) is succeeded
    assert reads_as_failed_only(event) is succeeded
    if not succeeded:
        assert event["error_message"], "a reader of 2.1's event has a reason to show"
    if script is not None and script.outcome == "failed":
        assert event["error_message"] == script.error_message, "2.1 gave Census's error message"

    ti = FakeTaskInstance()
    task = census_sensor(run_id)
    if succeeded:
        assert task.execute_complete(context_for(ti), event) == run_id
        assert ti.xcom("sync_run")["outcome"] == "succeeded"
        return
    with pytest.raises(our_error):
        task.execute_complete(context_for(ti), event)


def test_the_21_events_status_never_contradicts_the_one_inside() -> None:
    """``completed`` outside only when the event inside says the run succeeded, whatever else it says."""
    summary = {
        "sync_id": 1,
        "sync_run_id": 2,
        "status": "completed",
        "url": "https://app.getcensus.com/syncs/1/history?sync_run_id=2",
    }
    for status in ("finished", "timeout", "error", "stopped"):
        for outcome in ("succeeded", "failed", "skipped", "canceled", "unknown"):
            inner = RunEvent.from_dict(
                {
                    "schema_version": 1,
                    "status": status,
                    "sync_run_id": 2,
                    "summary": {**summary, "outcome": outcome},
                    "message": "m",
                }
            )
            shaped = inner.in_provider_21_shape()
            expected = "completed" if (status, outcome) == ("finished", "succeeded") else "failed"
            assert shaped["status"] == expected, (status, outcome)
            assert RunEvent.from_dict(shaped) == inner


# -- an event 2.1's trigger left in a deferred task -----------------------------------------


def event_21(sync_run_id: int | str, status: str, error_message: str | None = None) -> dict[str, Any]:
    return {"sync_run_id": sync_run_id, "status": status, "error_message": error_message}


@pytest.mark.parametrize("sensor_class", [CensusSensor, CensusSyncRunSensor])
def test_a_completed_21_event_for_a_failed_run_fails(
    census_conn: CensusEmulator, sensor_class: type[CensusSyncRunSensor]
) -> None:
    run_id = started_run(
        census_conn, RunScript(outcome="failed", error_code="E_STALE", error_message="Refused", **ENDS_AT_FIRST_POLL)
    )
    task = census_sensor(run_id) if sensor_class is CensusSensor else sensor_class(task_id="s", sync_run_id=run_id)
    with pytest.raises(CensusRunFailedError, match="error_code=E_STALE") as info:
        task.execute_complete(context_for(), event_21(run_id, "completed"))
    assert "Refused" in str(info.value)
    assert run_gets(census_conn, run_id) == 1, "the run was read again, not taken from the event"


def test_a_failed_21_event_is_judged_by_what_census_reports(census_conn: CensusEmulator) -> None:
    run_id = started_run(census_conn, RunScript(outcome="completed", **ENDS_AT_FIRST_POLL))
    ti = FakeTaskInstance()
    assert census_sensor(str(run_id)).execute_complete(context_for(ti), event_21(str(run_id), "failed", "?")) == run_id
    assert ti.xcom("sync_run")["outcome"] == "succeeded"
    assert ti.xcom("sync_run_url").endswith(f"sync_run_id={run_id}")


def test_a_21_event_for_a_canceled_run_is_not_a_success(census_conn: CensusEmulator) -> None:
    run_id = started_run(census_conn, RunScript(outcome="canceled", cancel_status="completed", **ENDS_AT_FIRST_POLL))
    with pytest.raises(CensusRunCanceledError):
        census_sensor(run_id).execute_complete(context_for(), event_21(run_id, "completed"))


def test_a_21_event_for_a_run_still_going_waits_again_in_our_trigger(census_conn: CensusEmulator) -> None:
    run_id = started_run(census_conn, RunScript(outcome="completed", queued_polls=2, working_polls=2))
    task = census_sensor(run_id, deferrable=True)
    with pytest.raises(TaskDeferred) as info:
        task.execute_complete(context_for(), event_21(run_id, "completed"))
    classpath, kwargs = info.value.trigger.serialize()
    assert classpath == "airflow_provider_census.triggers.census.CensusSyncRunTrigger"
    assert (kwargs["sync_run_id"], kwargs["cancel_on_kill"]) == (run_id, False)
    event = asyncio.run(only_event(info.value.trigger))
    assert task.execute_complete(context_for(), event) == run_id


@pytest.mark.parametrize(
    "event",
    [{"status": "completed"}, {"sync_run_id": 5, "status": "completed", "error_message": None, "extra": 1}],
    ids=["missing-keys", "extra-key"],
)
def test_an_event_of_neither_shape_fails_clearly(event: dict[str, Any]) -> None:
    with pytest.raises(CensusError, match="cannot be read"):
        census_sensor(5).execute_complete(context_for(), event)


@pytest.mark.parametrize(
    ("make", "run_field"),
    [(CensusTriggerSyncOperator, "sync_id"), (CensusSyncRunSensor, "sync_run_id")],
    ids=["operator", "sensor"],
)
def test_default_args_fill_in_the_shared_waiting_parameters(make: type[Any], run_field: str) -> None:
    """They sit in the private base's signature; Airflow fills in default_args there as in any operator's own."""
    from airflow.providers.common.compat.sdk import DAG

    default_args = {
        run_field: "41",
        "census_conn_id": "census_from_default_args",
        "max_poll_failures": 7,
        "on_skipped": "succeed",
        "deferrable": True,
    }
    with DAG(dag_id=f"shared_default_args_{make.__name__}", schedule=None, default_args=default_args):
        task = make(task_id="task")
    assert (getattr(task, run_field), task.census_conn_id, task.max_poll_failures) == (
        "41",
        "census_from_default_args",
        7,
    )
    assert (task.expectations.on_skipped, task.deferrable) == ("succeed", True)
