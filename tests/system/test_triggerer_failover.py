"""High availability: two triggerers on one PostgreSQL metadata database. The triggerer running a
sync's trigger is killed outright mid-run; the other one takes the trigger over once the dead one's
heartbeat is stale, and the task still ends right, with the sync triggered exactly once.

The takeover is Airflow's and the trigger's, the same on either Census API version, and this test
starts a second triggerer beside the shared deployment's: it runs once per Airflow line, on API V2
on Airflow 3 and on v1 on Airflow 2.11, so both versions go through a takeover in every CI run
while the suite stays well inside its time budget. The scheduler-and-triggerer test runs on both
versions on both lines.

The deployment keeps the surviving triggerer: whichever of the two it is, it has one running
triggerer again for the tests after this one.
"""

from __future__ import annotations

import pytest

from airflow_provider_census.testing import RunScript
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS
from tests.system.cluster import (
    POST_DBT_DAG,
    SYNC_TASK,
    SYSTEM_TEST_LABEL,
    TRIGGERER_HEALTH_CHECK_THRESHOLD,
    AirflowCluster,
)
from tests.system.processes import Component

pytestmark = pytest.mark.system

RUN_ID = "system_test_triggerer_failover"
# The run moves one step per poll, so it stays working however long the takeover takes. The
# worker's first look and the first triggerer's polls until it is killed (one or two; the margin
# is for a slow machine) must leave some for the survivor.
WORKING_POLLS = 10
TAKEOVER_TIMEOUT_SECONDS = TRIGGERER_HEALTH_CHECK_THRESHOLD + 90
API_VERSION = "v2" if AIRFLOW_V_3_0_PLUS else "v1"


@pytest.fixture(params=[API_VERSION])
def census_api_version(request: pytest.FixtureRequest) -> str:
    """This module's one API version per Airflow line (see the module docstring), in place of both."""
    return str(request.param)


def test_a_killed_triggerers_trigger_moves_to_the_other_triggerer(cluster: AirflowCluster) -> None:
    emulator = cluster.emulator
    sync_id = emulator.add_sync(
        RunScript(outcome="completed", queued_polls=0, working_polls=WORKING_POLLS), label=SYSTEM_TEST_LABEL
    )
    # The deployment's one triggerer, and a second one beside it. (A triggerer stopped or killed
    # before this test counts as running until it misses its heartbeats.)
    (first,) = cluster.triggerers()
    cluster.wait("one triggerer job to heartbeat", lambda: len(cluster.running_triggerer_ids()) == 1)
    triggerers = [first, cluster.start_triggerer()]
    job_ids = cluster.wait_for_triggerers(2)
    assert len(job_ids) == 2, cluster.explain()
    cluster.trigger_dag(POST_DBT_DAG, RUN_ID)

    def polling_triggerer() -> Component | None:
        """The one triggerer polling the run: its trigger is assigned, has polled, and holds a connection."""
        runs = emulator.runs_of(sync_id)
        if not runs or cluster.triggerer_of(POST_DBT_DAG, RUN_ID, SYNC_TASK, 0) is None:
            return None
        if len(emulator.requests_for("GET", f"/sync_runs/{runs[0]['id']}")) < 2:
            return None  # only the worker's own first look so far
        holders = [triggerer for triggerer in triggerers if triggerer.connected_to(emulator.port)]
        return holders[0] if len(holders) == 1 else None

    victim = cluster.wait("one triggerer to poll the deferred task's run", polling_triggerer, timeout=180)
    (run,) = emulator.runs_of(sync_id)
    victim_job = cluster.triggerer_of(POST_DBT_DAG, RUN_ID, SYNC_TASK, 0)
    (survivor_job,) = set(job_ids) - {victim_job}
    victim.kill()
    cluster.components.remove(victim)  # dead on purpose: waits must not fail because of it

    cluster.wait(
        f"triggerer job {survivor_job} to take the trigger over from killed job {victim_job}",
        lambda: cluster.triggerer_of(POST_DBT_DAG, RUN_ID, SYNC_TASK, 0) == survivor_job,
        timeout=TAKEOVER_TIMEOUT_SECONDS,
    )
    status_at_takeover = emulator.run(int(run["id"]))["status"]

    final = cluster.wait_for_dag_run_end(POST_DBT_DAG, RUN_ID)
    explain = f"{cluster.explain()}\n{victim.describe()}"
    assert status_at_takeover == "working", explain
    assert final == "success", explain
    assert cluster.task_states(POST_DBT_DAG, RUN_ID)[(SYNC_TASK, 0)] == "success", explain
    assert len(emulator.requests_for("POST", f"/syncs/{sync_id}/trigger")) == 1
    (only_run,) = emulator.runs_of(sync_id)
    assert (only_run["id"], only_run["status"]) == (run["id"], "completed")
    spoken = {request.api_version for request in emulator.requests}
    assert spoken == {API_VERSION}, spoken
