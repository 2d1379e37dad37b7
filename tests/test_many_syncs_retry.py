"""CensusTriggerSyncsOperator through real tries in real Airflow: a retry runs again only what failed.

``dag.test()`` runs a DAG with one ``CensusTriggerSyncsOperator`` task (``retries=1``,
``retry_delay=0``) over three syncs, on Airflow 3.3.2 and 2.11.2, polling in the worker and
deferrable (Airflow's inline triggerer), on API V2 and v1. In the first try one sync's run
fails, so the task fails once every run has ended. Before the retry, that sync's later runs
are scripted to complete.

On 3.3+ the first try kept its run per sync in the real ``task_state_store`` (through the
supervisor and the Execution API to the metadata database), so the retry takes the two runs
that succeeded as their syncs' results and triggers only the failed sync afresh: four trigger
POSTs in all. Before 3.3 there is no store and nothing of the first try is still going, so the
retry triggers all three again: six POSTs. Either way the task succeeds, returns the run per
sync, and its XCom ``sync_runs`` holds every run's summary. Clearing the task once it succeeded
runs every sync again (the kept runs are forgotten on success), cleared as in
``tests/test_durable_reattach.py``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_census.operators.census import CensusTriggerSyncsOperator
from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.version_compat import AIRFLOW_V_3_3_PLUS
from tests.airflow_runs import dag_bundle_folder, parse_dag_file, task_states, xcom
from tests.test_durable_reattach import clear_as_a_user, run_cleared_dag

BUNDLE = "census-many-retry"
MODES = [pytest.param(False, id="poll"), pytest.param(True, id="deferrable")]
QUICK_RUN = RunScript(queued_polls=0, working_polls=1)
FAILING_RUN = RunScript(outcome="failed", queued_polls=0, working_polls=1, error_code="E_FIRST_TRY")

BEFORE_RETRY: list[Any] = []
"""What to do to the emulator once, as the retry starts (``pre_execute`` of try 2)."""


def _before_each_try(context: Any) -> None:
    while context["ti"].try_number > 1 and BEFORE_RETRY:
        BEFORE_RETRY.pop(0)()


def build_many_retry_dag(dag_id: str, *, label: str, deferrable: bool) -> Any:
    """One task over the syncs labeled ``label_*``, retried once at once, polling every 0.1 s."""
    from datetime import datetime

    try:
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2
        from airflow import DAG  # type: ignore[assignment]

    with DAG(dag_id=dag_id, start_date=datetime(2025, 1, 1), schedule=None, catchup=False) as dag:
        CensusTriggerSyncsOperator(
            task_id="syncs",
            select=[f"label:{label}_*"],
            deferrable=deferrable,
            poll_interval=0.1,
            retries=1,
            retry_delay=timedelta(0),
            pre_execute=_before_each_try,
        )
    return dag


DAG_FILE = """\
# An Airflow DAG file written by tests/test_many_syncs_retry.py.
from tests.test_many_syncs_retry import build_many_retry_dag

dag = build_many_retry_dag({dag_id!r}, **{params!r})
"""


@pytest.fixture
def many_dags(tmp_path: Path, airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = dag_bundle_folder(tmp_path, BUNDLE, monkeypatch)
    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "False")
    BEFORE_RETRY.clear()
    return folder


def run_dag(folder: Path, dag_id: str, **params: Any) -> Any:
    return parse_dag(folder, dag_id, **params).test()


def parse_dag(folder: Path, dag_id: str, **params: Any) -> Any:
    return parse_dag_file(folder / f"{dag_id}.py", DAG_FILE.format(dag_id=dag_id, params=params), dag_id)


@pytest.mark.parametrize("deferrable", MODES)
def test_a_retry_triggers_again_only_the_syncs_that_failed(
    census_conn: CensusEmulator, many_dags: Path, request: pytest.FixtureRequest, deferrable: bool
) -> None:
    version = request.getfixturevalue("census_api_version")
    label = f"retry_{version}_{'deferrable' if deferrable else 'poll'}"
    first, failing, third = (
        census_conn.add_sync(script, label=f"{label}_{n}")
        for n, script in enumerate((QUICK_RUN, FAILING_RUN, QUICK_RUN))
    )
    BEFORE_RETRY.append(lambda: census_conn.script_sync(failing, QUICK_RUN))

    dag_run = run_dag(many_dags, f"census_many_{label}", label=label, deferrable=deferrable)

    assert task_states(dag_run) == {("syncs", -1): "success"}
    posts = {sync: len(census_conn.requests_for("POST", f"/syncs/{sync}/trigger")) for sync in (first, failing, third)}
    if AIRFLOW_V_3_3_PLUS:
        assert posts == {first: 1, failing: 2, third: 1}
    else:
        assert posts == {first: 2, failing: 2, third: 2}
    newest = {sync: census_conn.runs_of(sync)[0]["id"] for sync in (first, failing, third)}
    assert census_conn.runs_of(failing)[-1]["status"] == "failed"
    assert xcom(dag_run, "syncs") == {str(sync): run_id for sync, run_id in newest.items()}
    summaries = xcom(dag_run, "syncs", key="sync_runs")
    assert {key: summary["sync_run_id"] for key, summary in summaries.items()} == xcom(dag_run, "syncs")
    assert {summary["outcome"] for summary in summaries.values()} == {"succeeded"}


def test_clearing_a_task_that_succeeded_runs_every_sync_again(
    census_conn: CensusEmulator, many_dags: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runs kept for retries are forgotten on success: a cleared task must not take them as its result."""
    version = request.getfixturevalue("census_api_version")
    label = f"clear_{version}"
    syncs = [census_conn.add_sync(QUICK_RUN, label=f"{label}_{n}") for n in range(2)]
    dag = parse_dag(many_dags, f"census_many_{label}", label=label, deferrable=False)

    first = dag.test()
    assert task_states(first) == {("syncs", -1): "success"}
    clear_as_a_user(dag, first, task_id="syncs")
    dag_run = run_cleared_dag(dag, first, monkeypatch)

    assert task_states(dag_run) == {("syncs", -1): "success"}
    assert [len(census_conn.requests_for("POST", f"/syncs/{sync}/trigger")) for sync in syncs] == [2, 2]
    assert xcom(dag_run, "syncs") == {str(sync): census_conn.runs_of(sync)[0]["id"] for sync in syncs}
