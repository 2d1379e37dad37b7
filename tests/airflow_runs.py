"""Running example DAGs in real Airflow (2.11 or 3.x) and reading what their tasks left behind."""

from __future__ import annotations

import json
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


def run_example_dag(dag_id: str) -> Any:
    """Parse the example DAG files now (environment included) and run one DAG with ``dag.test()``."""
    from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id).test()


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
