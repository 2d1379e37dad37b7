"""A canary API token must never leak: not into a task log, an exception, XCom, a rendered
template field or a request URL.

The connection's password is a token unique to this run (``cnry-`` and a UUID), so finding
its UUID anywhere is a leak. Every search first finds a control string known to be in the
same material, so a search that looks at nothing (an empty log, a table never written)
fails instead of passing. Under ``dag.test`` a task's log is the process output (neither
Airflow line writes task log files there), and a failed task's exception reaches it as a
traceback.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_census.api.errors import CensusError
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.testing.pytest_plugin import CONN_ENV_VAR
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS, AirflowSensorTimeout
from tests.airflow_runs import run_example_dag, task_states
from tests.task_context import FakeTaskInstance, context_for, resume
from tests.test_bad_input import PAT, ROWS, TOKEN, BadInput, Scene, operator, sensor, urls_received

CANARY = TOKEN.removeprefix("cnry-")  # the UUID alone, so a leak is found even with the prefix cut off
PROVIDER_LOGGER = "airflow_provider_census"


@pytest.fixture
def census_emulator() -> Iterator[CensusEmulator]:
    """The plugin's emulator, expecting the canary as its tokens (v1 and V2): every request carries it."""
    with CensusEmulator(token=TOKEN, pat=PAT) as emulator:
        yield emulator


@pytest.fixture
def scene(census_conn: CensusEmulator, census_api_version: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scene]:
    with Scene(census_conn, monkeypatch, census_api_version) as staged:
        yield staged


@pytest.fixture
def provider_debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The provider's logs down to debug, where each request is logged (method, path, status)."""
    caplog.set_level(logging.DEBUG, logger=PROVIDER_LOGGER)
    return caplog


def assert_no_canary(material: str, text: str, control: str) -> None:
    """The canary is not in ``text``; ``control`` is, which proves ``text`` is the material meant."""
    assert control in text, f"the {material} does not hold {control!r}, so searching it proves nothing:\n{text[:2000]}"
    assert CANARY not in text, f"the API token leaked into the {material}"


def exception_text(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, attributes and traceback, for it and every exception behind it."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(vars(current))]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def log_files() -> str:
    """Every file under Airflow's log folder (task logs, when this Airflow writes them there)."""
    from airflow.configuration import conf

    folder = Path(conf.get("logging", "base_log_folder"))
    return "\n".join(path.read_text(errors="replace") for path in sorted(folder.rglob("*")) if path.is_file())


def _dag_run_rows(model: Any, dag_run: Any, show: Callable[[Any], str]) -> str:
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(model).filter(model.dag_id == dag_run.dag_id, model.run_id == dag_run.run_id).all()
        return "\n".join(f"{row.task_id}[{row.map_index}] {show(row)}" for row in rows)


def stored_xcoms(dag_run: Any) -> str:
    """Every XCom row the DAG run left in the metadata database, values as stored."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel as xcom_table
    else:
        from airflow.models.xcom import BaseXCom as xcom_table
    return _dag_run_rows(xcom_table, dag_run, lambda row: f"{row.key} = {row.value!r}")


def stored_rendered_fields(dag_run: Any) -> str:
    """Every task's rendered template fields, as Airflow stored them for the UI."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields

    return _dag_run_rows(RenderedTaskInstanceFields, dag_run, lambda row: repr(row.rendered_fields))


@pytest.fixture
def example_env(census_conn: CensusEmulator, airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> CensusEmulator:
    monkeypatch.setenv("CENSUS_EXAMPLE_POLL_INTERVAL", "0.1")
    return census_conn


def run_post_dbt(emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, int]:
    """One sync succeeds, one fails with Census's error; returns the DAG run and the good sync."""
    good = emulator.add_sync(RunScript(outcome="completed", records_processed=10, records_updated=10))
    bad = emulator.add_sync(RunScript(outcome="failed", error_code="CANARY_CHECK", error_message="bad rows"))
    monkeypatch.setenv("CENSUS_EXAMPLE_SELECT", f"{good},{bad}")
    dag_run = run_example_dag("census_post_dbt")
    assert task_states(dag_run) == {
        ("dbt_build", -1): "success",
        ("syncs_to_run", -1): "success",
        ("census_sync", 0): "success",
        ("census_sync", 1): "failed",
    }
    return dag_run, good


def run_trigger_then_sensor(
    emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch, outcome: str, mode: str
) -> tuple[Any, int]:
    sync_id = emulator.add_sync(RunScript(outcome=outcome, working_polls=2))
    monkeypatch.setenv("CENSUS_EXAMPLE_SYNC_ID", str(sync_id))
    monkeypatch.setenv("CENSUS_EXAMPLE_SENSOR_MODE", mode)
    dag_run = run_example_dag("census_trigger_then_sensor")
    wanted = "success" if outcome == "completed" else "failed"
    assert task_states(dag_run) == {("trigger_sync", -1): "success", ("wait_for_run", -1): wanted}
    return dag_run, sync_id


EXAMPLE_RUNS: list[Any] = [
    pytest.param(run_post_dbt, id="post_dbt-one-succeeds-one-fails"),
    pytest.param(lambda env, mp: run_trigger_then_sensor(env, mp, "completed", "reschedule"), id="sensor-succeeds"),
    pytest.param(lambda env, mp: run_trigger_then_sensor(env, mp, "failed", "poke"), id="sensor-fails"),
]


@pytest.mark.parametrize("run_dag", EXAMPLE_RUNS)
def test_example_dag_runs_leak_no_token(
    example_env: CensusEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    provider_debug_logs: pytest.LogCaptureFixture,
    run_dag: Callable[[CensusEmulator, pytest.MonkeyPatch], tuple[Any, int]],
) -> None:
    dag_run, sync_id = run_dag(example_env, monkeypatch)
    (run, *_) = example_env.runs_of(sync_id)
    output = capfd.readouterr()
    task_log = "\n".join([output.out, output.err, provider_debug_logs.text, log_files()])
    assert_no_canary("task log", task_log, f"Triggered Census sync {sync_id}: run {run['id']}")
    assert_no_canary("task log", task_log, f"sync_run_id={run['id']}")
    assert_no_canary("XCom table", stored_xcoms(dag_run), f"sync_run_id={run['id']}")
    assert_no_canary("rendered template fields", stored_rendered_fields(dag_run), "'census_conn_id': 'census_default'")
    assert_no_canary("request URLs", "\n".join(urls_received(example_env)), f"/syncs/{sync_id}/trigger")
    assert all(request.status != 401 for request in example_env.requests), "the token travels in the header"


def finish(task: Any, context: dict[str, Any]) -> Any:
    """Run a task to its end as Airflow would: resume after deferral, poke a sensor until it is done."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    try:
        if getattr(task, "deferrable", False) or not hasattr(task, "poke"):
            return task.execute(context)
        while not task.poke(context):
            pass
    except TaskDeferred as deferred:
        return resume(task, context, deferred)
    return None


def operator_run(script: RunScript, **kwargs: Any) -> Callable[[Scene], Any]:
    def make(scene: Scene) -> Any:
        return operator(sync_id=scene.emulator.add_sync(script), **kwargs)

    return make


def sensor_run(script: RunScript, **kwargs: Any) -> Callable[[Scene], Any]:
    def make(scene: Scene) -> Any:
        return sensor(sync_run_id=scene.emulator.trigger(scene.emulator.add_sync(script)), **kwargs)

    return make


FAILED = RunScript(outcome="failed", error_code="CANARY_CHECK", error_message="bad rows", error_detail="row 7")
TASK_FAILURES: list[Any] = [
    pytest.param(operator_run(FAILED, deferrable=deferrable), id=f"operator-failed-run-{mode}")
    for deferrable, mode in ((False, "poll"), (True, "deferred"))
] + [
    pytest.param(operator_run(RunScript(outcome="canceled"), deferrable=True), id="operator-canceled-run"),
    pytest.param(operator_run(RunScript(outcome="skipped")), id="operator-skipped-run"),
    pytest.param(operator_run(RunScript(outcome="unknown"), unknown_state_timeout=0.1), id="operator-unknown-state"),
    pytest.param(operator_run(RunScript(outcome="never"), deferrable=True, timeout=0.3), id="operator-timeout"),
    pytest.param(operator_run(RunScript(outcome="completed", records_failed=9), max_rejected_records=1), id="rejected"),
    pytest.param(sensor_run(FAILED), id="sensor-poke-failed-run"),
    pytest.param(sensor_run(FAILED, deferrable=True), id="sensor-deferred-failed-run"),
    pytest.param(sensor_run(RunScript(outcome="never"), deferrable=True, timeout=0.3), id="sensor-timeout"),
]


@pytest.mark.parametrize("make_task", TASK_FAILURES)
def test_failed_tasks_leak_no_token(
    scene: Scene,
    capfd: pytest.CaptureFixture[str],
    provider_debug_logs: pytest.LogCaptureFixture,
    make_task: Callable[[Scene], Any],
) -> None:
    task, ti = make_task(scene), FakeTaskInstance()
    with pytest.raises((CensusError, AirflowSensorTimeout)) as info:
        finish(task, context_for(ti))
    run_id = ti.xcom("sync_run_id")
    assert_no_canary("exception", exception_text(info.value), f"run {run_id}")
    output = capfd.readouterr()
    task_log = "\n".join([output.out, output.err, provider_debug_logs.text])
    assert_no_canary("task log", task_log, f"/sync_runs/{run_id} -> HTTP 200")
    assert_no_canary("XComs pushed", repr(ti.pushed), f"sync_run_id={run_id}")
    task.render_template_fields(context_for(ti))
    rendered = repr({name: getattr(task, name) for name in task.template_fields})
    assert_no_canary("rendered template fields", rendered, "census_default")
    assert_no_canary("request URLs", "\n".join(scene.received_urls()), f"/sync_runs/{run_id}")


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_bad_input_failures_leak_no_token(
    scene: Scene, capfd: pytest.CaptureFixture[str], provider_debug_logs: pytest.LogCaptureFixture, row: BadInput
) -> None:
    """Every row of the bad-input table, searched beyond its message: traceback, causes, logs, URLs."""
    logging.getLogger(PROVIDER_LOGGER).info("canary check starts: %s", row.name)
    with pytest.raises(row.error) as info:
        row.attempt(scene)
    assert_no_canary("exception", exception_text(info.value), row.phrases[0])
    output = capfd.readouterr()
    task_log = "\n".join([output.out, output.err, provider_debug_logs.text])
    assert_no_canary("log", task_log, f"canary check starts: {row.name}")
    for url in scene.received_urls():
        assert_no_canary("request URL", url, "/api/v")


def airflow_redact(text: str) -> Any:
    """Airflow's secrets masker, as it treats a task log line on this Airflow."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.log import redact
    else:
        from airflow.utils.log.secrets_masker import redact
    return redact(text)


def test_reading_the_connection_registers_the_token_with_airflows_secrets_masker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second line of defence: were a token ever logged through Airflow's task logging, it would show as ***.

    Under ``dag.test`` the provider's own module loggers print unmasked (checked by hand on
    both Airflow lines), so the tests above assert that nothing logs the token at all.
    """
    fresh = f"cnry-{uuid.uuid4().hex}"
    conn = {"conn_type": "census", "password": fresh, "extra": {"region": "eu"}}
    monkeypatch.setenv(CONN_ENV_VAR, json.dumps(conn))
    line = f"Authorization: Bearer {fresh}"
    assert airflow_redact(line) == line, "the masker does not know this token before the connection is read"
    assert CensusHook().settings.token == fresh
    assert airflow_redact(line) == "Authorization: Bearer ***"
