"""Every kind of argument users pass to the operators and the sensor, through Airflow's own task path.

Each case is a DAG file as a user writes it, parsed by Airflow and run with ``dag.test()``
against the emulator: Airflow renders the template fields (templated strings, callables,
XComArgs) and expands mapped tasks before ``execute``, as it does in a deployment. A direct
``execute()`` skips all of that, which is how a callable ``select`` once passed its unit test
and failed in real Airflow (Airflow called it as ``select(context=..., jinja_env=...)``).

What each case must do is read back from the emulator: which syncs were triggered, how often.
One API version (V2): which version the hook talks is tested on both elsewhere; this module
is about Airflow's side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_census.testing import CensusEmulator
from tests.airflow_runs import dag_bundle_folder, parse_dag_file, task_states

BUNDLE = "census-task-arguments"

DAG_FILE = """\
# An Airflow DAG file written by tests/test_task_arguments.py.
import functools
from datetime import datetime

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_census.assets.tables import selection_from_asset_events
from airflow_provider_census.operators.census import CensusTriggerSyncOperator, CensusTriggerSyncsOperator
from airflow_provider_census.selectors import parse_selection
from airflow_provider_census.sensors.census import CensusSyncRunSensor

SYNC_A, SYNC_B = {sync_a}, {sync_b}


def crm_selector_from_params(context):
    "A user's own callable select: one argument, the task's context."
    return [context["params"]["selector"]]


with DAG(
    {dag_id!r},
    start_date=datetime(2025, 1, 1),
    schedule=None,
    catchup=False,
    params={{"selector": "label:crm_a", "sync": SYNC_A, "conn": "census_default"}},
    default_args={{"retries": 0}},
):
{body}
"""

CASES: dict[str, tuple[str, list[str]]] = {
    "select_templated": (
        'CensusTriggerSyncsOperator(task_id="syncs", select=["{{ params.selector }}"], poll_interval=0.1)',
        ["a"],
    ),
    "exclude_templated": (
        'CensusTriggerSyncsOperator(task_id="syncs", select=["label:crm_*"], exclude="{{ params.selector }}",'
        " poll_interval=0.1)",
        ["b"],
    ),
    "select_a_selection": (
        'CensusTriggerSyncsOperator(task_id="syncs", select=parse_selection(["label:crm_*"], exclude=["label:crm_b"]),'
        " poll_interval=0.1)",
        ["a"],
    ),
    "select_own_callable": (
        'CensusTriggerSyncsOperator(task_id="syncs", select=crm_selector_from_params, poll_interval=0.1)',
        ["a"],
    ),
    "exclude_a_lambda": (
        'CensusTriggerSyncsOperator(task_id="syncs", select=["label:crm_*"], poll_interval=0.1,'
        ' exclude=lambda context: [context["params"]["selector"]])',
        ["b"],
    ),
    "select_from_asset_events_with_extras": (
        'CensusTriggerSyncsOperator(task_id="syncs", poll_interval=0.1,'
        ' select=functools.partial(selection_from_asset_events, extra_select=["label:crm_b"]))',
        ["b"],
    ),
    "select_an_xcomarg": (
        "@task\n"
        "def selectors():\n"
        '    return ["label:crm_b"]\n'
        'CensusTriggerSyncsOperator(task_id="syncs", select=selectors(), poll_interval=0.1)',
        ["b"],
    ),
    "select_mapped": (
        'CensusTriggerSyncsOperator.partial(task_id="syncs", poll_interval=0.1).expand(select=[["label:crm_a"],'
        ' ["label:crm_b"]])',
        ["a", "b"],
    ),
    "callable_select_with_exclude_mapped": (
        'CensusTriggerSyncsOperator.partial(task_id="syncs", select=lambda context: ["label:crm_*"],'
        ' poll_interval=0.1).expand(exclude=[["label:crm_a"], ["label:crm_b"]])',
        ["a", "b"],
    ),
    "sync_id_and_conn_id_templated": (
        'CensusTriggerSyncOperator(task_id="sync", sync_id="{{ params.sync }}", census_conn_id="{{ params.conn }}",'
        " poll_interval=0.1)",
        ["a"],
    ),
    "polling_fixed_and_durable_off": (
        'CensusTriggerSyncOperator(task_id="sync", sync_id=SYNC_A, polling="fixed", durable=False, poll_interval=0.1)',
        ["a"],
    ),
    "many_syncs_polling_fixed": (
        'CensusTriggerSyncsOperator(task_id="syncs", select=["label:crm_b"], polling="fixed", poll_interval=0.1)',
        ["b"],
    ),
    "sync_id_an_xcomarg": (
        "@task\n"
        "def sync_to_run():\n"
        "    return SYNC_B\n"
        'CensusTriggerSyncOperator(task_id="sync", sync_id=sync_to_run(), poll_interval=0.1)',
        ["b"],
    ),
    "sensor_run_id_an_xcomarg": (
        'trigger = CensusTriggerSyncOperator(task_id="trigger", sync_id=SYNC_A, wait_for_completion=False)\n'
        'CensusSyncRunSensor(task_id="wait", sync_run_id=trigger.output, mode="poke", poke_interval=0.1,'
        " timeout=60)",
        ["a"],
    ),
    "sensor_mapped_over_mapped_triggers": (
        'triggers = CensusTriggerSyncOperator.partial(task_id="trigger", wait_for_completion=False).expand('
        "sync_id=[SYNC_A, SYNC_B])\n"
        'CensusSyncRunSensor.partial(task_id="wait", mode="poke", poke_interval=0.1, timeout=60).expand('
        "sync_run_id=triggers.output)",
        ["a", "b"],
    ),
}


@pytest.fixture
def census_api_version() -> str:
    """V2 only (see the module's docstring)."""
    return "v2"


@pytest.fixture
def dags(tmp_path: Path, airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> Path:
    return dag_bundle_folder(tmp_path, BUNDLE, monkeypatch)


def dag_source(dag_id: str, body: str, syncs: dict[str, int]) -> str:
    indented = "\n".join(f"    {line}" for line in body.splitlines())
    return DAG_FILE.format(dag_id=dag_id, body=indented, sync_a=syncs["a"], sync_b=syncs["b"])


def triggers_per_sync(emulator: CensusEmulator, syncs: dict[str, int]) -> dict[str, int]:
    return {name: len(emulator.requests_for("POST", f"/syncs/{sync_id}/trigger")) for name, sync_id in syncs.items()}


def run_case(emulator: CensusEmulator, dags: Path, case: str) -> tuple[Any, dict[str, int], dict[str, int]]:
    """Run one case's DAG; the DAG run, the two crm syncs' ids and how often each was triggered."""
    syncs = {"a": emulator.add_sync(label="crm_a"), "b": emulator.add_sync(label="crm_b")}
    emulator.add_sync(label="other")
    dag_id = f"census_arguments_{case}"
    dag = parse_dag_file(dags / f"{dag_id}.py", dag_source(dag_id, CASES[case][0], syncs), dag_id)
    return dag.test(), syncs, triggers_per_sync(emulator, syncs)


@pytest.mark.parametrize("case", list(CASES))
def test_each_kind_of_argument_reaches_census_through_airflow(
    census_conn: CensusEmulator, dags: Path, case: str
) -> None:
    dag_run, _, triggered = run_case(census_conn, dags, case)
    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    assert str(dag_run.state) == "success"
    expected = CASES[case][1]
    assert triggered == {name: int(name in expected) for name in ("a", "b")}
    other_triggers = [r for r in census_conn.requests if r.method == "POST" and r.api_path.endswith("/trigger")]
    assert len(other_triggers) == len(expected), "a sync outside the selection was triggered"


def test_selection_from_asset_events_on_a_manual_run_skips_without_a_call_to_census(
    census_conn: CensusEmulator, dags: Path
) -> None:
    """The documented ``select=selection_from_asset_events``: a manual run has no events, so ``skip`` applies."""
    body = (
        'CensusTriggerSyncsOperator(task_id="syncs", select=selection_from_asset_events, on_no_match="skip",'
        " poll_interval=0.1)"
    )
    syncs = {"a": census_conn.add_sync(label="crm_a"), "b": census_conn.add_sync(label="crm_b")}
    dag_id = "census_arguments_asset_events_manual"
    dag = parse_dag_file(dags / f"{dag_id}.py", dag_source(dag_id, body, syncs), dag_id)
    dag_run = dag.test()
    assert task_states(dag_run) == {("syncs", -1): "skipped"}
    assert census_conn.requests == []
