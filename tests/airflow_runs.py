"""Running example DAGs in real Airflow (2.11 or 3.x) and reading what their tasks left behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS
from tests.conftest import EXAMPLE_DAGS


def dag_bundle_folder(tmp_path: Path, bundle: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder for DAG files written by a test, known to Airflow 3 as the DAG bundle ``bundle``.

    Airflow 3 runs ``dag.test()`` only for a DAG its database has from a bundle; Airflow 2 needs none.
    """
    folder = tmp_path / "dags"
    folder.mkdir()
    if AIRFLOW_V_3_0_PLUS:
        bundles = [
            {"name": bundle, "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(folder), "refresh_interval": 0}},
            {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {}},
        ]  # fmt: skip
        monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    return folder


def parse_dag_file(path: Path, source: str, dag_id: str) -> Any:
    """Write a DAG file and parse it as Airflow does: the DAG, ready for ``dag.test()``."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2 to 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    path.write_text(source)
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{path} defines no DAG {dag_id}"
    return dag


FAILURES: dict[str, BaseException | None] = {}
"""The exception each failed task of a :func:`one_try_dag` reported to its ``on_failure_callback``
(``dag.test()`` runs it in this process); a test clears it before its run."""


def record_failure(context: Any) -> None:
    FAILURES[context["ti"].task_id] = context.get("exception")


def one_try_dag(dag_id: str) -> Any:
    """A DAG for ``dag.test()``: never scheduled, its tasks never retried, each failure kept in :data:`FAILURES`.

    Use it as any DAG: ``with one_try_dag(dag_id) as dag:``, the tasks inside.
    """
    try:
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2
        from airflow import DAG  # type: ignore[assignment]

    return DAG(
        dag_id=dag_id,
        start_date=datetime(2025, 1, 1),
        schedule=None,
        catchup=False,
        default_args={"retries": 0, "on_failure_callback": record_failure},
    )


# Airflow parses a file only if it names both "airflow" and "dag".
BUILT_DAG_FILE = """\
# An Airflow DAG file written by {module}.
from {module} import {builder}

dag = {builder}({dag_id!r}, **{kwargs!r})
"""


def parse_built_dag(folder: Path, builder: Callable[..., Any], dag_id: str, **kwargs: Any) -> Any:
    """Write a DAG file whose DAG is ``builder(dag_id, **kwargs)`` and parse it as Airflow does: the DAG.

    ``builder`` is a function of a test module (which the file imports), ``kwargs`` plain values.
    """
    source = BUILT_DAG_FILE.format(module=builder.__module__, builder=builder.__name__, dag_id=dag_id, kwargs=kwargs)
    return parse_dag_file(folder / f"{dag_id}.py", source, dag_id)


def example_dag(dag_id: str) -> Any:
    """Parse the example DAG files now (environment included); one of their DAGs."""
    from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def run_example_dag(dag_id: str) -> Any:
    """Parse the example DAG files now (environment included) and run one DAG with ``dag.test()``."""
    return example_dag(dag_id).test()


def schedule_asset_triggered_run(dag_id: str) -> str:
    """Let the scheduler's own code create ``dag_id``'s asset-triggered run and start it; its run id.

    The scheduler finds the DAGs whose asset condition the queued events meet and creates each
    one's run with the events it consumes: its own steps, run once here instead of in its loop.
    Starting the queued run is its next step, done here as it does it (state and start date):
    its query compares ``run_after`` with SQLite's ``now()``, which has whole seconds, so it
    would pick the run up only in a later second.
    """
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    runner = SchedulerJobRunner(job=Job())
    with create_session() as session:
        earlier = {run.run_id for run in session.query(DagRun).filter(DagRun.dag_id == dag_id)}
        query, triggered = DagModel.dags_needing_dagruns(session)
        due = [model for model in query.all() if model.dag_id == dag_id]
        assert due and dag_id in triggered, "the scheduler does not see the asset events as due"
        if AIRFLOW_V_3_0_PLUS:
            runner._create_dag_runs_asset_triggered(dag_models=due, session=session)
        else:
            runner._create_dag_runs_dataset_triggered(due, {dag_id: triggered[dag_id]}, session)
        (run,) = [run for run in session.query(DagRun).filter(DagRun.dag_id == dag_id) if run.run_id not in earlier]
        assert (str(run.run_type), str(run.state)) == (
            "asset_triggered" if AIRFLOW_V_3_0_PLUS else "dataset_triggered",
            "queued",
        )
        run.state, run.start_date = DagRunState.RUNNING, datetime.now(timezone.utc)
        return str(run.run_id)


def run_scheduled_run(dag: Any, run_id: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the tasks of an existing DAG run with ``dag.test()``'s local loop, instead of a new manual run.

    ``dag.test()`` makes its own manual run through one helper; handing it the scheduled run
    there is the only change. The tasks then read that run's triggering events as a worker
    would: from the database (through the execution API on Airflow 3).
    """
    from airflow.models.dagrun import DagRun

    def the_scheduled_run(*, dag: Any, session: Any, **_: Any) -> Any:
        run = session.query(DagRun).filter(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id).one()
        run.dag = dag
        return run

    helper = (
        "airflow.models.dagrun.get_or_create_dagrun"
        if AIRFLOW_V_3_0_PLUS
        else "airflow.models.dag._get_or_create_dagrun"
    )
    monkeypatch.setattr(helper, the_scheduled_run)
    return dag.test()


def task_states(dag_run: Any) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """A task's XCom value from the metadata database, as a user would see it."""
    from airflow.utils.session import create_session

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel

        with create_session() as session:
            row = (
                session.query(XComModel)
                .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key, map_index=map_index)
                .one_or_none()
            )
            return None if row is None else XComModel.deserialize_value(row)
    from airflow.models.xcom import XCom

    with create_session() as session:
        value = XCom.get_one(
            run_id=dag_run.run_id, dag_id=dag_run.dag_id, task_id=task_id, key=key, map_index=map_index, session=session
        )
        return json.loads(value) if isinstance(value, str) and value.startswith("{") else value


def extra_link(dag_run: Any, task_id: str, map_index: int = -1, link: Any = None) -> Any:
    """The "Census sync run" link (or ``link``) as the UI would show it on this Airflow version.

    Airflow 3 stores each extra link in XCom when the task finishes or defers; Airflow 2
    computes it from the operator link when the page is shown.
    """
    from airflow_provider_census.links.census import CensusSyncRunLink

    link = link or CensusSyncRunLink()
    if AIRFLOW_V_3_0_PLUS:
        return xcom(dag_run, task_id, key=link.xcom_key, map_index=map_index)
    ti = dag_run.get_task_instance(task_id, map_index=map_index)
    return link.get_link(ti.task, ti_key=ti.key)
