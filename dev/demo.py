"""The main job: the post-dbt example DAG in real Airflow, against the bundled Census emulator.

``python3 dev/run.py demo`` installs everything, then runs this file. It starts the emulator
in this process, points the ``census_default`` connection at it, scripts two syncs (one
completes, one fails the way Census reports a bad JSON array) and runs
``airflow dags test census_post_dbt`` in a fresh SQLite ``AIRFLOW_HOME``. The provider's own
log lines are shown as they come; the full Airflow output is kept in a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from airflow_provider_census.testing import CensusEmulator, RunScript

ROOT = Path(__file__).resolve().parents[1]
GOOD_SYNC, BAD_SYNC = 60, 61
SHOWN = ("airflow_provider_census", "dbt build: ", "DagRun Finished", "new_state=")


def airflow_env(home: Path, emulator: CensusEmulator) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # socket.getfqdn(), Airflow's default, waits for reverse DNS on a machine without it.
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname",
            "AIRFLOW_CONN_CENSUS_DEFAULT": json.dumps(
                {
                    "conn_type": "census",
                    "password": emulator.token_for("v2"),
                    "extra": {"api_version": "v2", "base_url": emulator.api_base_url("v2")},
                }
            ),
            "CENSUS_EXAMPLE_SELECT": "source:braze_test",  # the emulator's syncs 60 and 61 read that model
            "CENSUS_EXAMPLE_POLL_INTERVAL": "1",
        }
    )
    return env


def run_dag(env: dict[str, str], log_path: Path) -> int:
    """``airflow dags test``, echoing the lines about Census and keeping everything in a log file."""
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            [*airflow, "dags", "test", "census_post_dbt"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if any(marker in line for marker in SHOWN):
                print("  | " + line.split(" [airflow")[0].rstrip()[:300])
        return process.wait()


def report(emulator: CensusEmulator) -> None:
    print("\nWhat Census (the emulator) saw:")
    for sync_id in (GOOD_SYNC, BAD_SYNC):
        for run in emulator.runs_of(sync_id):
            error = (
                f"  error_code={run['error_code']} error_message={run['error_message']!r}" if run["error_code"] else ""
            )
            counts = f"records_processed={run['records_processed']}"
            print(f"  sync {sync_id} run {run['id']}: {run['status']}, {counts}{error}")
    triggers = [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/trigger")]
    print(f"  trigger requests: {len(triggers)} (one per sync)")


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="census-demo-airflow-"))
    with CensusEmulator() as emulator:
        emulator.script_sync(
            GOOD_SYNC,
            RunScript(
                outcome="completed",
                records_processed=1200,
                records_updated=1180,
                records_failed=12,
                records_invalid=8,
                working_polls=3,
            ),
        )
        emulator.script_sync(BAD_SYNC, RunScript(
            outcome="failed",
            working_polls=2,
            error_code="JSON_ARRAY_ERROR",
            error_message='The array field "custom_field:Users" with value "jim" is not a valid JSON array.',
            error_detail="Format the field as a JSON array, e.g. [\"jim\"].",
        ))  # fmt: skip
        print(f"Census emulator (API v2) at {emulator.api_base_url('v2')}; Airflow home {home}")
        print(
            "Running `airflow dags test census_post_dbt`: dbt_build, then every sync that reads the model "
            "braze_test (source:braze_test selects 60 and 61 when the DAG runs), in parallel (deferrable)\n"
        )
        code = run_dag(airflow_env(home, emulator), home / "dags-test.log")
        report(emulator)
    print(f"\nFull Airflow output: {home / 'dags-test.log'}")
    print(
        "Expected: sync 60 succeeds; sync 61 fails with Census's JSON_ARRAY_ERROR, so the DAG run fails "
        f"(airflow exited {code})."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
