"""Adaptive polling (``polling="adaptive"``, the default): a run's polls placed by its sync's history.

The schedule itself is a pure plan (``tests/test_poll_schedule.py``). Here: the decision of the
wait follows it, and only it (``polling="fixed"`` decides exactly as before); the operators read
the history in the one request they make before each trigger and hand the plan to the trigger;
and a run with history is waited for through ``dag.test()`` on the plan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_census.api.errors import CensusInputError
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.core.schedule import PollPlan, ScheduledPolls, schedule_for
from airflow_provider_census.core.wait import Poll, PollState, Seen, WaitRules, after_look
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.operators.census import CensusTriggerSyncOperator, CensusTriggerSyncsOperator
from airflow_provider_census.testing import CensusEmulator, DurationModel, RunScript
from tests.airflow_runs import dag_bundle_folder, parse_dag_file, task_states
from tests.task_context import context_for

PLAN = PollPlan(poll_interval=10.0, early=5.0, sparse_gap=20.0, window_start=85.0, window_gap=3.0, window_end=115.0)
STARTED = 1_000.0
ADAPTIVE = WaitRules(poll_interval=10.0, schedule=ScheduledPolls(PLAN, STARTED))
FIXED = WaitRules(poll_interval=10.0)
GOING = Seen(7, "working", RunOutcome.IN_PROGRESS)
UNKNOWN = Seen(7, "thinking", RunOutcome.UNKNOWN)


@pytest.mark.parametrize(
    ("rules", "look", "began", "next_poll"),
    [
        # fixed: one interval after the look began, whenever that is (today's rule, unchanged)
        (FIXED, GOING, STARTED + 1.0, STARTED + 11.0),
        (FIXED, GOING, STARTED + 100.0, STARTED + 110.0),
        (FIXED, UNKNOWN, STARTED + 100.0, STARTED + 110.0),
        # adaptive: the early poll, sparse polls while the run surely goes on, its window, then the interval
        (ADAPTIVE, GOING, STARTED + 1.0, STARTED + 5.0),
        (ADAPTIVE, GOING, STARTED + 5.0, STARTED + 25.0),
        (ADAPTIVE, GOING, STARTED + 70.0, STARTED + 85.0),
        (ADAPTIVE, GOING, STARTED + 85.0, STARTED + 88.0),
        (ADAPTIVE, UNKNOWN, STARTED + 100.0, STARTED + 103.0),
        (ADAPTIVE, GOING, STARTED + 115.0, STARTED + 125.0),
        (ADAPTIVE, GOING, STARTED + 300.0, STARTED + 305.0),
    ],
)
def test_a_run_still_going_is_polled_next_where_its_schedule_says(
    rules: WaitRules, look: Seen, began: float, next_poll: float
) -> None:
    _, decision = after_look(rules, PollState(), look, began=began, now=began + 0.1)
    assert decision == Poll(pytest.approx(next_poll))


def test_a_watched_run_is_polled_every_interval_whatever_the_tasks_run_was_scheduled_by() -> None:
    assert ADAPTIVE.watching_only().schedule is None


def test_a_schedule_crosses_to_the_triggerer_as_json_unchanged() -> None:
    schedule = ScheduledPolls(PLAN, STARTED)
    assert ScheduledPolls.from_json(json.loads(json.dumps(schedule.to_json()))) == schedule
    assert ScheduledPolls.from_json(None) is None
    with pytest.raises(ValueError, match="poll schedule"):
        ScheduledPolls.from_json({"started_at": "soon", "plan": PLAN.to_json()})


# -- the operators: history read before the trigger, the plan handed to the trigger -------------------


def history_sync(emulator: CensusEmulator, model: DurationModel | None) -> int:
    sync_id = emulator.add_sync(RunScript(outcome="never"))
    if model is not None:
        emulator.add_history(sync_id, model.sample(12))
    return sync_id


def deferred_trigger_kwargs(task: Any) -> dict[str, Any]:
    task.hook = CensusHook(task.census_conn_id, trigger_settle_seconds=0.05)
    with pytest.raises(TaskDeferred) as info:
        task.execute(context_for())
    return dict(info.value.trigger.serialize()[1])


@pytest.mark.parametrize(
    ("model", "planned"),
    [
        (DurationModel(median=600.0, spread=0.05, seed=1), True),
        (DurationModel(median=600.0, spread=0.6, seed=2), False),  # erratic: fixed
        (None, False),  # no history: fixed
    ],
    ids=["consistent", "erratic", "no-history"],
)
def test_the_operator_hands_its_trigger_the_plan_its_syncs_history_gives(
    census_conn: CensusEmulator, model: DurationModel | None, planned: bool
) -> None:
    sync_id = history_sync(census_conn, model)
    kwargs = deferred_trigger_kwargs(
        CensusTriggerSyncOperator(task_id="sync", sync_id=sync_id, deferrable=True, poll_interval=10)
    )
    (run_id,) = [run["id"] for run in census_conn.runs_of(sync_id) if run["status"] != "completed"]
    lists = census_conn.requests_for("GET", f"/syncs/{sync_id}/sync_runs")
    assert len(lists) == 1, "the history comes with the one look before the trigger"
    schedule = ScheduledPolls.from_json(kwargs["poll_plan"])
    assert (schedule is not None) == planned
    if schedule is not None:
        runs_before = CensusHook().list_sync_runs(sync_id, per_page=20).items
        expected = schedule_for([run for run in runs_before if run.id != run_id], 10.0, schedule.started_at)
        assert schedule == expected
        assert schedule.plan.window_start < 600.0 < schedule.plan.window_end


def test_polling_fixed_hands_no_plan_even_with_a_consistent_history(census_conn: CensusEmulator) -> None:
    sync_id = history_sync(census_conn, DurationModel(median=600.0, spread=0.05, seed=1))
    kwargs = deferred_trigger_kwargs(
        CensusTriggerSyncOperator(task_id="sync", sync_id=sync_id, deferrable=True, poll_interval=10, polling="fixed")
    )
    assert kwargs["poll_plan"] is None


def test_the_many_syncs_trigger_gets_a_plan_per_run_with_history(census_conn: CensusEmulator) -> None:
    consistent = history_sync(census_conn, DurationModel(median=600.0, spread=0.05, seed=1))
    census_conn.workspace  # noqa: B018 (the emulator is up)
    without = history_sync(census_conn, None)
    kwargs = deferred_trigger_kwargs(
        CensusTriggerSyncsOperator(
            task_id="syncs", select=[str(consistent), str(without)], deferrable=True, poll_interval=10
        )
    )
    runs = {census_conn.run(run_id)["sync_id"]: run_id for run_id in kwargs["sync_run_ids"]}
    assert set(kwargs["poll_plans"]) == {str(runs[consistent])}


def test_polling_takes_adaptive_or_fixed_and_says_so_otherwise() -> None:
    with pytest.raises(CensusInputError, match="polling must be one of 'adaptive', 'fixed'"):
        CensusTriggerSyncOperator(task_id="sync", sync_id=1, polling="smart")


# -- through Airflow ----------------------------------------------------------------------------------

DAG_FILE = """
from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

from airflow_provider_census.operators.census import CensusTriggerSyncOperator

with DAG("{dag_id}", start_date=datetime(2024, 1, 1), schedule=None):
    CensusTriggerSyncOperator(task_id="sync", sync_id={sync_id}, poll_interval={poll_interval}, deferrable={deferrable})
"""


RUN_SECONDS = 5.0
POLL_INTERVAL = 2.5
"""The shortest run and interval that still get a plan: its window's polls are at least 1 s apart
(``MIN_WINDOW_GAP_SECONDS``) and at most half an interval, or the plan is not worth making."""


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_a_run_with_history_is_waited_for_on_its_plan_through_airflow(
    census_conn: CensusEmulator,
    tmp_path: Path,
    airflow_db: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    deferrable: bool,
) -> None:
    """A sync whose runs take about 5 s, polled every 2.5 s at most: the plan spends its polls where runs end."""
    model = DurationModel(median=RUN_SECONDS, spread=0.05, seed=3, queued_seconds=0.2)
    sync_id = census_conn.add_sync(RunScript(outcome="completed"))
    census_conn.add_history(sync_id, model.sample(12))
    census_conn.script_durations(sync_id, model)
    dags = dag_bundle_folder(tmp_path, "census-adaptive", monkeypatch)
    dag_id = f"census_adaptive_{'deferred' if deferrable else 'worker'}"
    source = DAG_FILE.format(dag_id=dag_id, sync_id=sync_id, poll_interval=POLL_INTERVAL, deferrable=deferrable)
    with caplog.at_level("INFO"):
        dag_run = parse_dag_file(dags / f"{dag_id}.py", source, dag_id).test()
    assert task_states(dag_run) == {("sync", -1): "success"}
    assert "the sync's recent runs ended" in caplog.text + capsys.readouterr().out
    run = census_conn.runs_of(sync_id)[0]  # newest first: the run just triggered
    assert run["status"] == "completed"
    reads = census_conn.reads_of(run["id"])
    schedule = schedule_for(
        [r for r in CensusHook().list_sync_runs(sync_id, per_page=20).items if r.id != run["id"]],
        POLL_INTERVAL,
        reads[0].started_at,
    )
    assert schedule is not None
    # The task's first look, then the plan's polls up to the run's end: its early poll, its window.
    planned = schedule.plan.offsets(until=schedule.plan.window_end)
    assert 2 <= len(reads) <= 1 + len(planned), [r.started_at - reads[0].started_at for r in reads]
