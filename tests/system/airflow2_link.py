"""Print, as JSON, the "Census sync run" link of one task instance the way Airflow 2's web UI
resolves it: the operator as deserialized from the DAG the scheduler stored, asked for its
extra link. Run in the cluster's environment: ``python -m tests.system.airflow2_link DAG RUN TASK MAP_INDEX``.
(Airflow 3 needs no such helper: its API server answers the same question over HTTP.)"""

from __future__ import annotations

import json
import sys

from airflow_provider_census.links.census import CensusSyncRunLink


def resolve_link(dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag(dag_id)
    assert dag is not None, f"{dag_id} is not in the metadata database"
    task = dag.get_task(task_id)
    (dag_run,) = DagRun.find(dag_id=dag_id, run_id=run_id)
    ti = dag_run.get_task_instance(task_id, map_index=map_index)
    assert ti is not None, f"no task instance {task_id}[{map_index}] in {run_id}"
    ti.task = task
    return task.get_extra_links(ti, CensusSyncRunLink.name)


if __name__ == "__main__":
    dag_id, run_id, task_id, map_index = sys.argv[1:5]
    print(json.dumps(resolve_link(dag_id, run_id, task_id, int(map_index))))
