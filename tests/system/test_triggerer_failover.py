"""High availability: two triggerers on one PostgreSQL metadata database. The triggerer running a
sync's trigger is killed outright mid-run; the other one takes the trigger over once the dead one's
heartbeat is stale, and the task still ends right, with the sync triggered exactly once."""

from __future__ import annotations

import pytest

from airflow_provider_census.testing import RunScript
from tests.system.cluster import TRIGGERER_HEALTH_CHECK_THRESHOLD, AirflowCluster

pytestmark = pytest.mark.system

DAG_ID = "census_post_dbt"
TASK_ID = "census_sync"
RUN_ID = "system_test_triggerer_failover"
# The run moves one step per poll, so it stays working however long the takeover takes; the
# worker's first look plus a couple of polls by each triggerer leave it well short of done.
WORKING_POLLS = 8
TAKEOVER_TIMEOUT_SECONDS = TRIGGERER_HEALTH_CHECK_THRESHOLD + 90


def test_a_killed_triggerers_trigger_moves_to_the_other_triggerer(cluster: AirflowCluster) -> None:
    emulator = cluster.emulator
    sync_id = emulator.add_sync(RunScript(outcome="completed", queued_polls=0, working_polls=WORKING_POLLS))
    cluster.env["CENSUS_EXAMPLE_SYNC_IDS"] = str(sync_id)
    cluster.start_core()
    # One at a time, so that the older triggerer job belongs to the first process.
    triggerers = [cluster.start_triggerer("triggerer-1")]
    cluster.wait_until_ready(triggerers=1)
    triggerers.append(cluster.start_triggerer("triggerer-2"))
    job_ids = cluster.wait_until_ready(triggerers=2)
    cluster.trigger_dag(DAG_ID, RUN_ID)

    def polled_run() -> dict[str, object] | None:
        """The sync's run, once the triggerer that holds its trigger has polled it at least once."""
        runs = emulator.runs_of(sync_id)
        if not runs or cluster.triggerer_of(DAG_ID, RUN_ID, TASK_ID, 0) is None:
            return None
        polls = emulator.requests_for("GET", f"/api/v1/sync_runs/{runs[0]['id']}")
        return runs[0] if len(polls) >= 2 else None  # the worker's own look, then the trigger's

    run = cluster.wait("the deferred task's trigger to poll its run", polled_run, timeout=180)
    holder = cluster.triggerer_of(DAG_ID, RUN_ID, TASK_ID, 0)
    assert holder in job_ids, (holder, job_ids)
    victim, survivor = (0, 1) if holder == job_ids[0] else (1, 0)
    triggerers[victim].kill()
    cluster.components.remove(triggerers[victim])  # dead on purpose: waits must not fail on it

    cluster.wait(
        f"triggerer job {job_ids[survivor]} to take the trigger over from killed job {job_ids[victim]}",
        lambda: cluster.triggerer_of(DAG_ID, RUN_ID, TASK_ID, 0) == job_ids[survivor],
        timeout=TAKEOVER_TIMEOUT_SECONDS,
    )
    status_at_takeover = emulator.run(int(run["id"]))["status"]

    final = cluster.wait_for_dag_run_end(DAG_ID, RUN_ID)
    explain = f"{cluster.explain()}\n----- {triggerers[victim].describe()}"
    assert status_at_takeover == "working", explain
    assert final == "success", explain
    assert cluster.task_states(DAG_ID, RUN_ID)[(TASK_ID, 0)] == "success", explain
    assert len(emulator.requests_for("POST", f"/api/v1/syncs/{sync_id}/trigger")) == 1
    (only_run,) = emulator.runs_of(sync_id)
    assert (only_run["id"], only_run["status"]) == (run["id"], "completed")
