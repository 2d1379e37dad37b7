"""The core flow on a V2 Census that serves only what its reference documents, in real Airflow.

Trigger (``POST /syncs/{id}/trigger``), wait (``GET /syncs/test_status``) and cancel
(``POST /sync_runs/{id}/cancel``) are all the emulator serves on V2 here
(``v2_routes="documented"``): every run state must end the task right, with one trigger each,
and the assumed routes that are missing must cost one request per process, not one per poll.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_census.api.errors import (
    CensusNotFoundError,
    CensusRunError,
    CensusRunFailedError,
    CensusRunSkippedError,
    CensusRunUnknownStateError,
)
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.testing import CensusEmulator, RunScript
from tests.airflow_runs import run_example_dag, task_states, xcom
from tests.conftest import QUICK_RETRIES
from tests.task_context import FakeTaskInstance, context_for, run_deferred

MODES = [pytest.param(False, id="poll"), pytest.param(True, id="deferrable")]
OUTCOMES: list[Any] = [
    pytest.param(RunScript(outcome="completed", working_polls=2), None, id="completed"),
    pytest.param(RunScript(outcome="failed", error_code="E_DEST", error_message="refused"), CensusRunFailedError,
                 id="failed"),
    pytest.param(RunScript(outcome="skipped"), CensusRunSkippedError, id="skipped"),
    pytest.param(RunScript(outcome="canceled"), CensusRunFailedError, id="canceled"),  # read as its status
    pytest.param(RunScript(outcome="unknown", status_name="exploded"), CensusRunUnknownStateError, id="unknown"),
]  # fmt: skip


@pytest.fixture
def census_api_version() -> str:
    return "v2"


@pytest.fixture
def census_v2_routes() -> str:
    return "documented"


def route_requests(emulator: CensusEmulator, api_path_start: str) -> list[Any]:
    return [request for request in emulator.requests if request.api_path.startswith(api_path_start)]


@pytest.mark.parametrize("deferrable", MODES)
@pytest.mark.parametrize(("script", "error"), OUTCOMES)
def test_many_syncs_operator_ends_right_with_one_trigger_each(
    census_conn: CensusEmulator, deferrable: bool, script: RunScript, error: type[CensusRunError] | None
) -> None:
    """Syncs named by id need no read of the sync (GET /syncs/{id} is not documented): each triggers once."""
    from airflow_provider_census.operators.census import CensusTriggerSyncsOperator

    sync_ids = [census_conn.add_sync(script), census_conn.add_sync(RunScript(outcome="completed"))]
    task = CensusTriggerSyncsOperator(
        task_id="census_syncs", select=[str(sync_id) for sync_id in sync_ids], deferrable=deferrable,
        poll_interval=0.02, unknown_state_timeout=0.2,
    )  # fmt: skip
    task.hook = CensusHook(retry_policy=QUICK_RETRIES, trigger_settle_seconds=0.05)
    ti = FakeTaskInstance()
    if error is None:
        run_deferred(task, context_for(ti))
    else:
        with pytest.raises(CensusRunError, match="1 of 2 Census syncs did not succeed") as info:
            run_deferred(task, context_for(ti))
        assert str(sync_ids[0]) in info.value.summary["failed"]
    assert [len(census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger")) for sync_id in sync_ids] == [1, 1]
    assert {request.status for request in route_requests(census_conn, "/syncs/test_status")} == {200}


def test_a_missing_route_costs_one_request_per_process_not_one_per_poll(census_conn: CensusEmulator) -> None:
    hook = CensusHook(retry_policy=QUICK_RETRIES)
    sync_id = census_conn.add_sync(RunScript(outcome="completed", working_polls=5))
    run_id = hook.trigger_sync_run(sync_id)
    while hook.get_sync_run(run_id, sync_id=sync_id).outcome.value == "in_progress":
        pass
    assert len(route_requests(census_conn, "/sync_runs/")) == 1
    assert len(route_requests(census_conn, f"/syncs/{sync_id}/sync_runs")) == 1, "the pre-trigger look, once"
    assert len(census_conn.reads_of(run_id)) >= 6


def test_a_label_selector_fails_clearly_naming_both_possibilities(census_conn: CensusEmulator) -> None:
    with pytest.raises(CensusNotFoundError) as info:
        CensusHook(retry_policy=QUICK_RETRIES).select_syncs(["label:crm_*"])
    message = str(info.value)
    assert "does not document" in message and "either this Census does not serve it" in message
    assert "python -m airflow_provider_census check" in message


@pytest.mark.parametrize(("script", "state"), [(RunScript(working_polls=2), "success"),
                                               (RunScript(outcome="failed"), "failed")])  # fmt: skip
def test_trigger_then_sensor_dag_in_real_airflow(
    census_conn: CensusEmulator, airflow_db: None, monkeypatch: pytest.MonkeyPatch, script: RunScript, state: str
) -> None:
    sync_id = census_conn.add_sync(script)
    monkeypatch.setenv("CENSUS_EXAMPLE_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("CENSUS_EXAMPLE_SYNC_ID", str(sync_id))
    monkeypatch.setenv("CENSUS_EXAMPLE_SENSOR_MODE", "poke")
    dag_run = run_example_dag("census_trigger_then_sensor")
    assert task_states(dag_run) == {("trigger_sync", -1): "success", ("wait_for_run", -1): state}
    (run,) = census_conn.runs_of(sync_id)
    assert len(census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger")) == 1
    if state == "success":
        summary = xcom(dag_run, "wait_for_run", key="sync_run")
        assert (summary["sync_run_id"], summary["sync_id"], summary["canceled"]) == (run["id"], sync_id, None)
        assert summary["url"].endswith(f"/syncs/{sync_id}/history?sync_run_id={run['id']}")


def test_the_one_task_post_dbt_dag_in_real_airflow_runs_syncs_named_by_id(
    census_conn: CensusEmulator, airflow_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented many-syncs usage through dag.test(): each sync triggered once, the failed one named."""
    good = census_conn.add_sync(RunScript(records_processed=5))
    bad = census_conn.add_sync(RunScript(outcome="failed", error_code="JSON_ARRAY_ERROR"))
    monkeypatch.setenv("CENSUS_EXAMPLE_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("CENSUS_EXAMPLE_SELECT", f"{good},{bad}")
    dag_run = run_example_dag("census_post_dbt_one_task")
    assert task_states(dag_run) == {("dbt_build", -1): "success", ("census_syncs", -1): "failed"}
    assert [len(census_conn.requests_for("POST", f"/syncs/{sync}/trigger")) for sync in (good, bad)] == [1, 1]
    summaries = xcom(dag_run, "census_syncs", key="sync_runs")
    assert {key: summary["outcome"] for key, summary in summaries.items()} == {
        str(good): "succeeded",
        str(bad): "failed",
    }
    assert summaries[str(bad)]["error_code"] == "JSON_ARRAY_ERROR"
    assert "records_processed" in summaries[str(good)]["unread"], "test_status carries no counts"


# -- the preflight -------------------------------------------------------------------------------

MIGRATION_GUIDE = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "migrate.md"
DOC_TABLE = re.compile(r"<!-- preflight:start -->\n```text\n(.*?)```\n<!-- preflight:end -->", re.DOTALL)


def preflight(emulator: CensusEmulator, *args: str) -> tuple[int, str]:
    """``python -m airflow_provider_census check`` as a user runs it, on the connection census_default."""
    from airflow_provider_census.__main__ import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["check", "--conn-id", "census_default", *args])
    return code, out.getvalue()


def rows(table: str) -> dict[str, tuple[str, str]]:
    """The table's rows by call: (route, result)."""
    found = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("call", "---"):
            found[cells[0]] = (cells[1].strip("`"), cells[2])
    return found


def test_preflight_on_documented_v2_reads_runs_by_test_status_and_is_ready(census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="completed"))
    run_id = census_conn.trigger(sync_id)
    code, table = preflight(census_conn, "--sync", str(sync_id), "--run", str(run_id))
    found = rows(table)
    assert code == 0, table
    assert found["token, host, API version, group"] == ("GET /activations", "ok")
    assert found[f"read sync {sync_id} (lineage, selection details)"][1] == "missing"
    assert found[f"read run {run_id} by GET /sync_runs/{{sync_run_id}}"][1] == "missing"
    assert found[f"read run {run_id} (every wait)"] == ("GET /syncs/test_status", "fallback")
    assert "can work" in table
    assert [request for request in census_conn.requests if request.method != "GET"] == [], "read-only"


@pytest.mark.parametrize("census_v2_routes", ["all"])
def test_preflight_on_v2_with_every_route_reads_runs_by_id(census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="completed"))
    run_id = census_conn.trigger(sync_id)
    code, table = preflight(census_conn, "--sync", str(sync_id))
    assert code == 0
    assert rows(table)[f"read run {run_id} (every wait)"] == ("GET /sync_runs/{sync_run_id}", "ok")
    assert "missing" not in table


def test_preflight_fails_when_no_route_reads_the_run(census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="completed"))
    code, table = preflight(census_conn, "--sync", str(sync_id), "--run", "987654")
    assert code == 1
    assert rows(table)["read run 987654 (every wait)"][1] == "failed"
    assert "can NOT work" in table


def test_preflight_with_a_refused_token_stops_at_the_first_check(
    census_conn: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_CENSUS_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_CENSUS_DEFAULT", json.dumps({**conn, "password": "emulator-pat:revoked"}))
    code, table = preflight(census_conn, "--sync", "1")
    assert code == 1
    assert list(rows(table)) == ["token, host, API version, group"]
    assert "revoked" not in table


def test_connection_test_runs_the_checks_that_need_no_sync(census_conn: CensusEmulator) -> None:
    ok, message = CensusHook().test_connection()
    assert ok, message
    assert "list syncs (selectors such as label:crm_*): missing" in message


def test_the_migration_guide_shows_a_real_preflight_run(census_conn: CensusEmulator) -> None:
    """The table in the docs is this command's output against the emulator, but for the port."""
    sync_id = census_conn.add_sync(RunScript(outcome="completed"))
    run_id = census_conn.trigger(sync_id)
    _, printed = preflight(census_conn, "--sync", str(sync_id), "--run", str(run_id))
    table = printed[printed.index("Airflow connection") :]  # Airflow 2 may log to stdout before it
    shown = DOC_TABLE.search(MIGRATION_GUIDE.read_text())
    assert shown is not None, "the migration guide has no preflight table between its markers"
    assert re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", table) == shown.group(1)
