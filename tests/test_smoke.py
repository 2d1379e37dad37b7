"""Smoke tests: the operator, the sensor and the trigger in real Airflow, through ``dag.test()``.

These are what `python3 dev/run.py test` runs on the older Airflow 3 releases users still run
(3.0, 3.1, 3.2: ``pytest -m smoke``); the full suites on 2.11 and 3.3 run them too.

One DAG per test, against the emulator (``census_conn``: once on API V2, once on v1):

- ``sync``: ``CensusTriggerSyncOperator`` triggering a sync and waiting for its run;
- ``trigger`` then ``wait``: the operator without waiting, then ``CensusSyncRunSensor`` on the
  run it started (another sync, so that the two runs do not skip each other).

Deferrable, the waits go through ``CensusSyncRunTrigger`` in Airflow's own inline triggerer
and resume in ``execute_complete``; not deferrable, they never defer. A run that fails must
fail its tasks with Census's ``error_code`` and ``error_message``, in the exception the task
failed with and in its log.

Airflow 3 runs ``dag.test()`` only for a DAG its metadata database has from a DAG bundle, so the
DAG file is written to a temporary folder that is added to ``[dag_processor]
dag_bundle_config_list`` beside the dags folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pytest

from airflow_provider_census.api.errors import CensusRunFailedError
from airflow_provider_census.operators.census import CensusTriggerSyncOperator
from airflow_provider_census.sensors.census import CensusSyncRunSensor
from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.triggers.census import CensusSyncRunTrigger
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from tests.airflow_runs import FAILURES, dag_bundle_folder, one_try_dag, parse_built_dag, task_states, xcom

pytestmark = pytest.mark.smoke

SMOKE_BUNDLE = "census-smoke"
SMOKE_ONLY_LINE = AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_3_PLUS
"""Airflow 3.0 to 3.2, where only this module runs. Which API version a hook talks is the hook's
business, tested on both versions on the full lines (3.3 and 2.11, where this module runs on
both too); the smoke lines prove the Airflow side, on V2, in half the time."""


@pytest.fixture(params=["v2"] if SMOKE_ONLY_LINE else ["v2", "v1"])
def census_api_version(request: pytest.FixtureRequest) -> str:
    """Both API versions on the full lines, V2 on the smoke-only lines (see SMOKE_ONLY_LINE)."""
    return str(request.param)


# What Census says about the failed run of each task's sync, distinct so the log tells them apart.
ERRORS = {
    "sync": ("SMOKE_SOURCE_UNREACHABLE", "The smoke source warehouse did not answer."),
    "wait": ("SMOKE_DESTINATION_REJECTED", "The smoke destination refused the batch."),
}
MODES = [pytest.param(False, id="poll"), pytest.param(True, id="deferrable")]
# Under dag.test(), Airflow 3.0 to 3.2 call task callbacks without context["exception"] (a worker
# process sets it; the in-process runner of dag.test() does not); 2.11 and 3.3 pass it.
CALLBACKS_GET_EXCEPTION = AIRFLOW_V_3_3_PLUS or not AIRFLOW_V_3_0_PLUS


def build_smoke_dag(dag_id: str, *, sync_id: int, sensor_sync_id: int, deferrable: bool) -> Any:
    """The DAG the smoke DAG file builds; its tasks poll every 0.1 s and never retry."""
    with one_try_dag(dag_id) as dag:
        CensusTriggerSyncOperator(task_id="sync", sync_id=sync_id, deferrable=deferrable, poll_interval=0.1)
        trigger = CensusTriggerSyncOperator(task_id="trigger", sync_id=sensor_sync_id, wait_for_completion=False)
        wait = CensusSyncRunSensor(
            task_id="wait",
            sync_run_id="{{ ti.xcom_pull(task_ids='trigger') }}",
            deferrable=deferrable,
            mode="poke",
            poke_interval=0.1,
            timeout=120,
        )
        trigger >> wait
    return dag


@pytest.fixture
def smoke_dags(tmp_path: Path, airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder for the DAG file, known to Airflow 3 as a DAG bundle (Airflow 2 needs none)."""
    folder = dag_bundle_folder(tmp_path, SMOKE_BUNDLE, monkeypatch)
    FAILURES.clear()
    return folder


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every ``execute_complete`` (task resumed after deferring) and every trigger run, in order."""
    seen: list[tuple[str, Any]] = []

    def spy_resume(cls: type[Any]) -> None:
        original = cls.execute_complete

        def execute_complete(self: Any, context: Any, event: object = None) -> Any:
            seen.append(("resume", self.task_id))
            return original(self, context, event)

        monkeypatch.setattr(cls, "execute_complete", execute_complete)

    spy_resume(CensusTriggerSyncOperator)
    spy_resume(CensusSyncRunSensor)
    original_run = CensusSyncRunTrigger.run

    async def run(self: CensusSyncRunTrigger) -> Any:
        seen.append(("trigger", self.sync_run_id))
        async for event in original_run(self):
            yield event

    monkeypatch.setattr(CensusSyncRunTrigger, "run", run)
    return seen


def run_smoke_dag(folder: Path, dag_id: str, **params: Any) -> Any:
    """Write the DAG file, parse it as Airflow does, and run the DAG with ``dag.test()``."""
    return parse_built_dag(folder, build_smoke_dag, dag_id, **params).test()


def scripted_syncs(emulator: CensusEmulator, outcome: Literal["completed", "failed"]) -> tuple[int, int]:
    """The syncs of ``sync`` and ``wait``: each run stays queued one poll, working two, then ends in ``outcome``."""

    def script(task_id: str) -> RunScript:
        code, message = ERRORS[task_id]
        return RunScript(outcome=outcome, error_code=code, error_message=message, queued_polls=1, working_polls=2)

    return emulator.add_sync(script("sync")), emulator.add_sync(script("wait"))


def logged_errors(output: str) -> list[str]:
    """What follows each ``CensusRunFailedError:`` in the output, whitespace folded.

    Airflow 3.0's console renderer wraps a traceback's lines at 80 columns and frames them in boxes.
    """
    text = re.sub(r"[\s\u2502]+", " ", output)
    return [chunk[:600] for chunk in text.split("CensusRunFailedError: ")[1:]]


def dag_id_for(request: pytest.FixtureRequest, outcome: str, deferrable: bool) -> str:
    version = request.getfixturevalue("census_api_version")
    return f"census_smoke_{outcome}_{'deferrable' if deferrable else 'poll'}_{version}"


def check_waits(calls: list[tuple[str, Any]], deferrable: bool, run_ids: set[int]) -> None:
    """Deferrable: both waits went through the trigger and resumed once; else nothing deferred."""
    if deferrable:
        assert sorted(name for kind, name in calls if kind == "resume") == ["sync", "wait"], calls
        assert {run_id for kind, run_id in calls if kind == "trigger"} == run_ids, calls
    else:
        assert calls == [], calls


def run_scripted(
    emulator: CensusEmulator,
    folder: Path,
    request: pytest.FixtureRequest,
    outcome: Literal["completed", "failed"],
    deferrable: bool,
) -> tuple[Any, int, int]:
    """The smoke DAG over two syncs whose runs end with ``outcome``: the DAG run and both sync ids."""
    sync_id, sensor_sync_id = scripted_syncs(emulator, outcome)
    dag_run = run_smoke_dag(
        folder,
        dag_id_for(request, outcome, deferrable),
        sync_id=sync_id,
        sensor_sync_id=sensor_sync_id,
        deferrable=deferrable,
    )
    return dag_run, sync_id, sensor_sync_id


@pytest.mark.parametrize("deferrable", MODES)
def test_run_that_completes(
    census_conn: CensusEmulator,
    smoke_dags: Path,
    calls: list[tuple[str, Any]],
    request: pytest.FixtureRequest,
    deferrable: bool,
) -> None:
    dag_run, sync_id, sensor_sync_id = run_scripted(census_conn, smoke_dags, request, "completed", deferrable)
    assert task_states(dag_run) == {("sync", -1): "success", ("trigger", -1): "success", ("wait", -1): "success"}
    assert str(dag_run.state) == "success"
    assert FAILURES == {}
    (run,) = census_conn.runs_of(sync_id)
    (sensed,) = census_conn.runs_of(sensor_sync_id)
    assert xcom(dag_run, "sync") == run["id"]
    assert xcom(dag_run, "trigger") == sensed["id"]
    for task_id, run_id in (("sync", run["id"]), ("wait", sensed["id"])):
        summary = xcom(dag_run, task_id, key="sync_run")
        assert (summary["sync_run_id"], summary["outcome"], summary["records_processed"]) == (run_id, "succeeded", 100)
    check_waits(calls, deferrable, {run["id"], sensed["id"]})
    for synced in (sync_id, sensor_sync_id):
        assert len(census_conn.requests_for("POST", f"/syncs/{synced}/trigger")) == 1


@pytest.mark.parametrize("deferrable", MODES)
def test_run_that_fails(
    census_conn: CensusEmulator,
    smoke_dags: Path,
    calls: list[tuple[str, Any]],
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
    deferrable: bool,
) -> None:
    dag_run, sync_id, sensor_sync_id = run_scripted(census_conn, smoke_dags, request, "failed", deferrable)
    assert task_states(dag_run) == {("sync", -1): "failed", ("trigger", -1): "success", ("wait", -1): "failed"}
    assert str(dag_run.state) == "failed"
    (run,) = census_conn.runs_of(sync_id)
    (sensed,) = census_conn.runs_of(sensor_sync_id)
    output = capfd.readouterr()
    logged = logged_errors(output.out + output.err)
    assert sorted(FAILURES) == ["sync", "wait"], "the failure callback of each failed task ran"
    for task_id, run_id in (("sync", run["id"]), ("wait", sensed["id"])):
        code, message = ERRORS[task_id]
        # The task failed with the run's error, error_code and error_message in it, and logged it.
        assert any(code in chunk and message in chunk for chunk in logged), (task_id, [c[:200] for c in logged])
        error = FAILURES[task_id]
        if error is not None or CALLBACKS_GET_EXCEPTION:
            assert isinstance(error, CensusRunFailedError), (task_id, repr(error))
            assert code in str(error) and message in str(error), (task_id, str(error))
            assert (error.summary["error_code"], error.summary["sync_run_id"]) == (code, run_id)
        summary = xcom(dag_run, task_id, key="sync_run")
        assert (summary["sync_run_id"], summary["outcome"], summary["error_code"]) == (run_id, "failed", code)
    check_waits(calls, deferrable, {run["id"], sensed["id"]})
    for synced in (sync_id, sensor_sync_id):
        assert len(census_conn.requests_for("POST", f"/syncs/{synced}/trigger")) == 1
