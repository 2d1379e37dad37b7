"""Durable reattach through a real retry in real Airflow, with Airflow's own ``task_state_store``.

What a retry does with the run an earlier try left depends on Airflow keeping the run id from
one try to the next, so it is tested here through real tries, not with a stand-in for the store
and hand-made try numbers. ``dag.test()`` runs a DAG with one ``CensusTriggerSyncOperator`` task
(``retries=1``, ``retry_delay=0``) whose first try fails right after Census accepted the
trigger. ``dag.test()`` then does what the scheduler does, on Airflow 3.3.2 and on 2.11.2 alike:
it puts the ``up_for_retry`` task instance back on the schedule once its (zero) retry delay is
over, raises ``try_number`` to 2 and runs it again. On 3.3 each try gets the real
``context["task_state_store"]``: writes and reads go through the supervisor and the Execution
API to the metadata database's ``task_state_store`` table, whose rows belong to the dag run and
task, not to one try. So the run id the first try kept is what the second one finds.

How the first try fails: the emulator answers the first ``GET /sync_runs/{id}`` (the operator's
first look at its new run, on both API versions ``/api/vN/sync_runs/{id}``) with a 403. A 403
is not transient, so the task fails at once, and the trigger has already been sent. The
trigger's own look at the sync's newest run before it fires (``GET /syncs/{id}/sync_runs``)
does not match the fault's path, so it never uses the fault up. Only that one request fails, so
the retry reads Census normally.

What the retry must do with the run the first try left (``RULES``):

- on Airflow 3.3+ (the run id kept in ``task_state_store`` decides): a run that completed is the
  result, with no second trigger, even when someone has started another run of the sync since;
  a run still going is waited for (deferred, in deferrable mode); a run that failed is
  triggered afresh, and the fresh run decides the task;
- before 3.3 (the old rule: the sync's newest run is reattached only while it is going, whoever
  started it): a run still going is waited for, and so is a stranger's run started after it,
  but a completed or failed run is triggered again: after a completed run, Airflow 2.11 sees
  two trigger POSTs where 3.3 sees one.

The case with a stranger's run tells the two rules apart even where both send one POST: on 3.3
the result must be the task's own run, which only the store can tell it. Runs after the first
one complete after a poll (``LATER_RUNS``), so a fresh run can decide the task.

Each case runs polling in the worker and deferrable (Airflow's inline triggerer), on API V2 and
v1.

Two more cases, where the run the task kept must not be its result:

- clearing a task that succeeded syncs again. On 3.3 the rows of ``task_state_store`` outlive
  the success and the clear (Airflow removes them only with the dag run, or on success when
  ``[state_store] clear_on_success`` is set, which the test turns off), so the operator must
  forget the run id itself once the task succeeds. The test clears the task as Airflow's REST
  API does for a user (the UI's "Clear"), then starts the run as the scheduler does and lets
  ``dag.test()``'s loop run it: the second try must trigger a new run;
- a run that completed but rejected more records than ``max_rejected_records`` fails the first
  try, and the retry triggers afresh rather than take that run as its result.

The DAG file is written to a folder known to Airflow 3 as a DAG bundle, as in
``tests/test_smoke.py``, because Airflow 3's ``dag.test()`` runs only DAGs its database has from
a bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from airflow_provider_census.operators.census import STATE_STORE_KEY, CensusTriggerSyncOperator
from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from tests.airflow_runs import dag_bundle_folder, parse_dag_file, task_states, xcom

BUNDLE = "census-durable-reattach"
MODES = [pytest.param(False, id="poll"), pytest.param(True, id="deferrable")]
# How the run the first try triggered behaves (every run of the sync, until a scene below changes
# that); its first GET is the 403, which does not move it on.
EARLIER_RUNS = {
    "completed": RunScript(outcome="completed", queued_polls=0, working_polls=0),
    "completed-then-another-run": RunScript(outcome="completed", queued_polls=0, working_polls=0),
    "still-going": RunScript(outcome="completed", queued_polls=0, working_polls=3),
    "failed": RunScript(outcome="failed", queued_polls=0, working_polls=0),
}
# Runs started after the first try's run complete after one working poll, so a deferrable task
# defers for them, and a run the retry triggers decides the task.
LATER_RUNS = RunScript(outcome="completed", queued_polls=0, working_polls=1)


class Rule(NamedTuple):
    """What a retry must do, as the test checks it.

    ``posts``: trigger POSTs the whole task sends; ``first_run_is_result``: the first try's run is the
    task's result (else the sync's newest run is); ``waits``: the retry waits for a run, so a
    deferrable task defers once.
    """

    posts: int
    first_run_is_result: bool
    waits: bool


# The rule on Airflow 3.3+ (the run id kept in task_state_store decides) and before it (the
# sync's newest run is reattached if it is going, whoever started it).
RULES: dict[str, tuple[Rule, Rule]] = {
    "completed": (Rule(1, True, False), Rule(2, False, True)),
    # Someone starts the sync in Census between the tries: 3.3+ keeps its own completed run as the
    # result; before 3.3 the task waits for the stranger's run and takes it for its own.
    "completed-then-another-run": (Rule(1, True, False), Rule(1, False, True)),
    "still-going": (Rule(1, True, True), Rule(1, True, True)),
    "failed": (Rule(2, False, True), Rule(2, False, True)),
}

# Filled in by the task while dag.test() runs it in this process, read by the test afterwards.
TRIES: list[dict[str, Any]] = []
"""What the task saw at each start of a try, and again at each resume after a deferral (Airflow runs
``pre_execute`` before ``execute_complete`` too): ``try_number``, whether the context had a
``task_state_store``, and what the store kept."""
RESUMED: list[int] = []
"""The try number of each resume in ``execute_complete``, i.e. after a deferral."""
BEFORE_RETRY: list[Callable[[], None]] = []
"""What to do to the emulator once, just before the retry's own work starts (the test's scenario)."""
FAILED_TRIES: list[tuple[int, str]] = []
"""The try number and the exception's class of each try that failed and left the task to a retry."""


def _look_at_try(context: Any) -> None:
    """``pre_execute`` of the task: note what this try gets from Airflow, then set up the retry's scene."""
    store = context.get("task_state_store")
    try_number = context["ti"].try_number
    TRIES.append(
        {
            "try_number": try_number,
            "has_store": store is not None,
            "kept": store.get(STATE_STORE_KEY) if store is not None else None,
        }
    )
    while try_number > 1 and BEFORE_RETRY:
        BEFORE_RETRY.pop(0)()


def _note_failed_try(context: Any) -> None:
    """``on_retry_callback`` of the task: note which try failed, and with what."""
    FAILED_TRIES.append((context["ti"].try_number, type(context["exception"]).__name__))


def build_retry_dag(dag_id: str, *, sync_id: int, deferrable: bool, **operator_args: Any) -> Any:
    """The DAG the DAG file builds: one task, retried once at once, polling every 0.1 s."""
    from datetime import datetime

    try:
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2
        from airflow import DAG  # type: ignore[assignment]

    with DAG(dag_id=dag_id, start_date=datetime(2025, 1, 1), schedule=None, catchup=False) as dag:
        CensusTriggerSyncOperator(
            task_id="sync",
            sync_id=sync_id,
            deferrable=deferrable,
            poll_interval=0.1,
            retries=1,
            retry_delay=timedelta(0),
            pre_execute=_look_at_try,
            on_retry_callback=_note_failed_try,
            **operator_args,
        )
    return dag


# Airflow parses a file only if it names both "airflow" and "dag".
DAG_FILE = """\
# An Airflow DAG file written by tests/test_durable_reattach.py.
from tests.test_durable_reattach import build_retry_dag

dag = build_retry_dag({dag_id!r}, **{params!r})
"""


@pytest.fixture
def retry_dags(tmp_path: Path, airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder for the DAG file, known to Airflow 3 as a DAG bundle; the records of the last run emptied."""
    folder = dag_bundle_folder(tmp_path, BUNDLE, monkeypatch)
    # Airflow 3.3's default, set here so that only the operator can forget the run id it kept.
    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "False")
    original = CensusTriggerSyncOperator.execute_complete

    def execute_complete(self: Any, context: Any, event: object = None) -> Any:
        RESUMED.append(context["ti"].try_number)
        return original(self, context, event)

    monkeypatch.setattr(CensusTriggerSyncOperator, "execute_complete", execute_complete)
    for record in (TRIES, RESUMED, BEFORE_RETRY, FAILED_TRIES):
        record.clear()
    return folder


def run_retry_dag(folder: Path, dag_id: str, **params: Any) -> Any:
    """Write the DAG file, parse it as Airflow does, and run the DAG with ``dag.test()``."""
    return parse_retry_dag(folder, dag_id, **params).test()


def parse_retry_dag(folder: Path, dag_id: str, **params: Any) -> Any:
    """Write the DAG file and parse it as Airflow does: the DAG, ready for ``dag.test()``."""
    return parse_dag_file(folder / f"{dag_id}.py", DAG_FILE.format(dag_id=dag_id, params=params), dag_id)


def set_the_scene(emulator: CensusEmulator, sync_id: int, earlier: str) -> None:
    """What happens in Census between the tries: later runs complete, and maybe someone starts one."""
    BEFORE_RETRY.append(lambda: emulator.script_sync(sync_id, LATER_RUNS))
    if earlier == "completed-then-another-run":
        BEFORE_RETRY.append(lambda: emulator.trigger(sync_id))


@pytest.mark.parametrize("deferrable", MODES)
@pytest.mark.parametrize("earlier", list(EARLIER_RUNS))
def test_a_real_retry_resumes_what_its_earlier_try_left(
    census_conn: CensusEmulator,
    retry_dags: Path,
    request: pytest.FixtureRequest,
    earlier: str,
    deferrable: bool,
) -> None:
    """The retry treats the first try's run as the rule of this Airflow line says, and the task succeeds."""
    rule = RULES[earlier][0 if AIRFLOW_V_3_3_PLUS else 1]
    sync_id = census_conn.add_sync(EARLIER_RUNS[earlier])
    census_conn.fail_next("403", method="GET", path_prefix="/sync_runs/")
    set_the_scene(census_conn, sync_id, earlier)
    version = request.getfixturevalue("census_api_version")
    dag_id = f"census_reattach_{earlier.replace('-', '_')}_{'deferrable' if deferrable else 'poll'}_{version}"

    dag_run = run_retry_dag(retry_dags, dag_id, sync_id=sync_id, deferrable=deferrable)

    runs = census_conn.runs_of(sync_id)  # newest first
    first_run, newest_run = runs[-1]["id"], runs[0]["id"]
    log = census_conn.requests_for()
    # The one fault hit the first try's first look at its run, right after Census took the trigger.
    (faulted,) = [i for i, r in enumerate(log) if r.fault is not None]
    assert (log[faulted].method, log[faulted].api_path) == ("GET", f"/sync_runs/{first_run}")
    assert (log[faulted - 1].method, log[faulted - 1].api_path) == ("POST", f"/syncs/{sync_id}/trigger")
    # Airflow retried the task once (each resume after a deferral runs pre_execute again), and the
    # retry succeeded. Deferrable, a retry that waits for a run defers once.
    assert RESUMED == ([2] if deferrable and rule.waits else []), RESUMED
    assert [seen["try_number"] for seen in TRIES] == [1, 2, *RESUMED], TRIES
    assert task_states(dag_run) == {("sync", -1): "success"}
    assert str(dag_run.state) == "success"
    posts = census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger")
    assert len(posts) == rule.posts, [(r.method, r.api_path, r.status) for r in log]
    # The task's result is the run its retry settled on.
    result = xcom(dag_run, "sync")
    assert result == (first_run if rule.first_run_is_result else newest_run)
    summary = xcom(dag_run, "sync", key="sync_run")
    assert (summary["sync_run_id"], summary["outcome"]) == (result, "succeeded")
    # On 3.3+ every try had Airflow's store; the retry found the first try's run id in it, and a
    # resume the id of the run it waited for (a fresh run's id replaced a failed run's).
    assert {seen["has_store"] for seen in TRIES} == {AIRFLOW_V_3_3_PLUS}, TRIES
    kept = [seen["kept"] for seen in TRIES]
    if AIRFLOW_V_3_3_PLUS:
        assert kept == [None, first_run, *[result] * len(RESUMED)], TRIES
    else:
        assert kept == [None] * len(TRIES), TRIES


# -- runs the task kept but must not take as its result --

# A clean run: it completes, with no rejected records, before anyone looks at it.
CLEAN_RUNS = RunScript(outcome="completed", queued_polls=0, working_polls=0)
MAX_REJECTED_RECORDS = 2
# A run that completes at the first look, having rejected more records than the task accepts.
REJECTING_RUN = RunScript(outcome="completed", queued_polls=0, working_polls=0, records_failed=MAX_REJECTED_RECORDS + 1)


def clear_as_a_user(dag: Any, dag_run: Any, task_id: str = "sync") -> None:
    """Clear one task of a finished dag run as Airflow's REST API does for the UI's "Clear".

    The ``clearTaskInstances`` endpoint of each line picks the task instances with
    ``dag.clear(dry_run=True, ...)`` and hands them to ``clear_task_instances``, which also puts
    the dag run back to ``queued`` (``reset_dag_runs``, on by default). Airflow 3 clears through
    the serialized DAG of the run and picks by run id; Airflow 2 through the parsed DAG, by the
    run's logical date.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import clear_task_instances
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).one()
        if AIRFLOW_V_3_0_PLUS:
            from airflow.models.dagbag import DBDagBag

            serialized = DBDagBag().get_dag_for_run(run, session=session)
            tis = serialized.clear(dry_run=True, task_ids=[task_id], run_id=run.run_id, session=session)
            clear_task_instances(tis, session, DagRunState.QUEUED)
        else:
            date = run.logical_date
            tis = dag.clear(dry_run=True, task_ids=[task_id], start_date=date, end_date=date, session=session)
            clear_task_instances(tis, session, dag=dag, dag_run_state=DagRunState.QUEUED)


def run_cleared_dag(dag: Any, dag_run: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run a cleared dag run again: start it as the scheduler starts a queued run, then ``dag.test()`` runs it.

    ``dag.test()`` makes a dag run of its own with a helper meant only for it (3.3's
    ``get_or_create_dagrun``, 2.11's ``_get_or_create_dagrun``), which deletes any run at the
    same logical date, and with it the run's ``task_state_store`` rows. So that helper hands it
    the cleared run instead, and the rest is ``dag.test()``'s own loop: it schedules the cleared
    task instance, raising ``try_number`` as the scheduler does, and runs it. The clear
    ``dag.test()`` makes first matches nothing: it clears at its own logical date, now.
    """
    from datetime import datetime, timezone

    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState

    def start_the_cleared_run(*, dag: Any, session: Any, **_: Any) -> Any:
        run = session.query(DagRun).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).one()
        assert run.state == DagRunState.QUEUED, run.state
        run.state, run.start_date = DagRunState.RUNNING, datetime.now(timezone.utc)
        session.commit()
        run.dag = dag  # as the scheduler gives each run it schedules its DAG
        return run

    if AIRFLOW_V_3_0_PLUS:
        helper = "airflow.models.dagrun.get_or_create_dagrun"
    else:
        helper = "airflow.models.dag._get_or_create_dagrun"
    with monkeypatch.context() as patch:
        patch.setattr(helper, start_the_cleared_run)
        return dag.test()


def try_number_in_db(dag_run: Any, task_id: str = "sync") -> int:
    """The task instance's ``try_number`` as the metadata database has it."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id)
        return ti.one().try_number


# Polling only: a run that completes before the first look never defers a deferrable task, so
# both modes would take the same path. wait_for_completion=False forgets the run id on its own path.
@pytest.mark.parametrize("wait", [pytest.param(True, id="wait"), pytest.param(False, id="no-wait")])
def test_clearing_a_task_that_succeeded_syncs_again(
    census_conn: CensusEmulator,
    retry_dags: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    wait: bool,
) -> None:
    """A user clears a task that succeeded: its next try triggers a new run, whose id is the result."""
    sync_id = census_conn.add_sync(CLEAN_RUNS)
    version = request.getfixturevalue("census_api_version")
    dag_id = f"census_clear_after_success_{'wait' if wait else 'no_wait'}_{version}"
    dag = parse_retry_dag(retry_dags, dag_id, sync_id=sync_id, deferrable=False, wait_for_completion=wait)

    first = dag.test()
    assert task_states(first) == {("sync", -1): "success"}
    (first_run,) = [run["id"] for run in census_conn.runs_of(sync_id)]
    assert xcom(first, "sync") == first_run
    clear_as_a_user(dag, first)
    dag_run = run_cleared_dag(dag, first, monkeypatch)

    assert dag_run.run_id == first.run_id
    assert task_states(dag_run) == {("sync", -1): "success"}
    assert str(dag_run.state) == "success"
    # The cleared task ran as try 2, so it looked for what an earlier try left, and found nothing:
    # on 3.3 the store no longer held the run id, which the first try forgot when it succeeded.
    assert [seen["try_number"] for seen in TRIES] == [1, 2] == [1, try_number_in_db(dag_run)], TRIES
    assert [(seen["has_store"], seen["kept"]) for seen in TRIES] == [(AIRFLOW_V_3_3_PLUS, None)] * 2, TRIES
    assert FAILED_TRIES == []
    posts = census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger")
    assert len(posts) == 2, [(r.method, r.api_path, r.status) for r in census_conn.requests_for()]
    newest_run, _ = [run["id"] for run in census_conn.runs_of(sync_id)]
    assert xcom(dag_run, "sync") == newest_run != first_run
    if wait:
        assert xcom(dag_run, "sync", key="sync_run")["sync_run_id"] == newest_run


# Polling only: the first try ends at its first look, and the retry's fresh run is waited for as
# after a failed run, which test_a_real_retry_resumes_what_its_earlier_try_left runs in both modes.
def test_a_retry_after_too_many_rejected_records_syncs_again(
    census_conn: CensusEmulator, retry_dags: Path, request: pytest.FixtureRequest
) -> None:
    """A run that completed but rejected too many records failed the first try; the retry triggers afresh."""
    sync_id = census_conn.add_sync(REJECTING_RUN)
    BEFORE_RETRY.append(lambda: census_conn.script_sync(sync_id, LATER_RUNS))
    version = request.getfixturevalue("census_api_version")
    dag_id = f"census_reattach_rejected_records_{version}"

    dag_run = run_retry_dag(
        retry_dags, dag_id, sync_id=sync_id, deferrable=False, max_rejected_records=MAX_REJECTED_RECORDS
    )

    # The first try's own rejected-records check failed it, once its run completed.
    assert FAILED_TRIES == [(1, "CensusRejectedRecordsError")], FAILED_TRIES
    assert [seen["try_number"] for seen in TRIES] == [1, 2], TRIES
    assert task_states(dag_run) == {("sync", -1): "success"}
    assert str(dag_run.state) == "success"
    posts = census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger")
    assert len(posts) == 2, [(r.method, r.api_path, r.status) for r in census_conn.requests_for()]
    first_run, newest_run = [run["id"] for run in reversed(census_conn.runs_of(sync_id))]
    # On 3.3 the retry found the rejecting run's id in the store, and did not take that run.
    kept = [seen["kept"] for seen in TRIES]
    assert kept == ([None, first_run] if AIRFLOW_V_3_3_PLUS else [None, None]), TRIES
    assert xcom(dag_run, "sync") == newest_run
    summary = xcom(dag_run, "sync", key="sync_run")
    assert (summary["sync_run_id"], summary["outcome"], summary["records_failed"]) == (newest_run, "succeeded", 0)


@pytest.mark.parametrize("switch", [{"durable": False}, {"reattach_on_retry": False}], ids=["durable", "reattach"])
def test_switched_off_a_retry_triggers_afresh_and_keeps_nothing(
    census_conn: CensusEmulator, retry_dags: Path, switch: dict[str, bool]
) -> None:
    """``durable=False`` (Airflow's switch; ``reattach_on_retry=False`` the provider's): the run the first try
    left, which completed, is not the result: a second run is triggered, and no try keeps a run id."""
    sync_id = census_conn.add_sync(EARLIER_RUNS["completed"])
    census_conn.fail_next("403", method="GET", path_prefix="/sync_runs/")
    set_the_scene(census_conn, sync_id, "completed")
    name = next(iter(switch))
    dag_run = run_retry_dag(retry_dags, f"census_reattach_off_{name}", sync_id=sync_id, deferrable=False, **switch)
    assert task_states(dag_run) == {("sync", -1): "success"}
    posts = census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger")
    first_run, newest_run = census_conn.runs_of(sync_id)[-1]["id"], census_conn.runs_of(sync_id)[0]["id"]
    # (Before 3.3 there is no store, and a run that completed is triggered afresh with the switch on too;
    # on 3.3+ the switch on takes it as the result, with one trigger: the first test of this module.)
    assert len(posts) == 2, "the retry triggers afresh"
    assert xcom(dag_run, "sync") == newest_run != first_run
    assert {seen["kept"] for seen in TRIES} == {None}, TRIES
