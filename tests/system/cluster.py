"""A small real Airflow deployment for system tests: private AIRFLOW_HOME, LocalExecutor,
PostgreSQL metadata database, the example DAGs, and a ``census_default`` connection to the
emulator. Its components run as subprocesses; the test reads the metadata database directly."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from airflow_provider_census.links.census import CensusSyncRunLink
from airflow_provider_census.testing import CensusEmulator
from airflow_provider_census.testing.pytest_plugin import CONN_ENV_VAR
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS
from tests.conftest import EXAMPLE_DAGS
from tests.system.postgres import PostgresServer
from tests.system.processes import Component, free_port, wait_until

ROOT = EXAMPLE_DAGS.parent
CLI_TIMEOUT_SECONDS = 180
STARTUP_TIMEOUT_SECONDS = 180
# How long a triggerer may miss heartbeats before another one takes its triggers over.
TRIGGERER_HEALTH_CHECK_THRESHOLD = 5
POLL_INTERVAL_SECONDS = 1
# The example DAG the system tests run, and its mapped deferrable task.
POST_DBT_DAG = "census_post_dbt"
SYNC_TASK = "census_sync"


def base_env(home: Path, database_url: str) -> dict[str, str]:
    """This process's environment minus any Airflow or example settings, plus the cluster's own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "_AIRFLOW", "CENSUS_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname",  # no reverse DNS lookup (see tests/conftest.py)
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_CHECK_THRESHOLD),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(parsing_settings())
    env.update(shared_secrets())
    return env


def parsing_settings() -> dict[str, str]:
    """Parse the two example files once with one process: re-parsing only costs CPU the tests share.

    Airflow 3 parses in its DAG processor, Airflow 2 in the scheduler; each line has its own section.
    """
    section = "DAG_PROCESSOR" if AIRFLOW_V_3_0_PLUS else "SCHEDULER"
    return {
        f"AIRFLOW__{section}__PARSING_PROCESSES": "1",
        f"AIRFLOW__{section}__MIN_FILE_PROCESS_INTERVAL": "600",
    }


def shared_secrets() -> dict[str, str]:
    """Keys every component must agree on. Left to Airflow, each process that finds no airflow.cfg
    writes one with keys of its own, and then one triggerer cannot decrypt another's trigger kwargs."""
    from cryptography.fernet import Fernet

    return {
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_urlsafe(32),
    }


class AirflowCluster:
    """Airflow's components for one test, all sharing one home, database and emulator."""

    def __init__(
        self, home: Path, postgres: PostgresServer, database: str, emulator: CensusEmulator, api_version: str
    ) -> None:
        self.home = home
        self.emulator = emulator
        self.components: list[Component] = []
        self.log_dir = home / "component-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.env = base_env(home, postgres.url(database))
        self.env.update(self._api_env())
        extra = {"api_version": api_version, "base_url": emulator.api_base_url(api_version)}
        self.env[CONN_ENV_VAR] = json.dumps(
            {"conn_type": "census", "password": emulator.token_for(api_version), "extra": extra}
        )
        self.env["CENSUS_EXAMPLE_POLL_INTERVAL"] = str(POLL_INTERVAL_SECONDS)
        self._db = postgres.connect(database)

    def _api_env(self) -> dict[str, str]:
        """Airflow 3's workers and CLI reach the API server; all of them must share its port and JWT secret."""
        if not AIRFLOW_V_3_0_PLUS:
            return {}
        return {
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        }

    def use_syncs(self, *sync_ids: int) -> None:
        """The syncs the example DAG selects (by id) and maps over; set before the component that parses DAGs starts."""
        self.env["CENSUS_EXAMPLE_SELECT"] = ",".join(str(sync_id) for sync_id in sync_ids)

    # -- running things --------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT_SECONDS) -> str:
        """Run one ``airflow`` CLI command to its end; its output, or an error with the output."""
        command = [sys.executable, "-m", "airflow", *args]
        done = subprocess.run(
            command, env=self.env, cwd=self.home, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise AssertionError(
                f"`airflow {' '.join(args)}` failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def start(self, name: str, *args: str) -> Component:
        """Start ``airflow <args>`` in the background as the component ``name``."""
        component = Component(
            name, [sys.executable, "-m", "airflow", *args], env=self.env, cwd=self.home, log_dir=self.log_dir
        )
        self.components.append(component)
        return component

    def start_core(self) -> None:
        """Everything but the triggerers: API server, scheduler and DAG processor (Airflow 3), or the scheduler."""
        if AIRFLOW_V_3_0_PLUS:
            self.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port))
            self.start("dag-processor", "dag-processor")
        self.start("scheduler", "scheduler", "--skip-serve-logs")

    def start_triggerer(self, name: str = "triggerer") -> Component:
        return self.start(name, "triggerer", "--skip-serve-logs")

    def start_webserver(self) -> int:
        """Airflow 2's web UI on 127.0.0.1 with one worker, every visitor an Admin (no login page); its port.

        Airflow 3's UI is the API server's, which :meth:`start_core` starts, on :attr:`api_port`.
        """
        port = free_port()
        config = self.home / "webserver_config.py"
        config.write_text('AUTH_ROLE_PUBLIC = "Admin"\n')
        self.env["AIRFLOW__WEBSERVER__CONFIG_FILE"] = str(config)
        self.start("webserver", "webserver", "--hostname", "127.0.0.1", "--port", str(port), "--workers", "1")
        return port

    def stop(self) -> None:
        """Stop every component, all at once so their grace periods overlap."""
        if self.components:
            with ThreadPoolExecutor(max_workers=len(self.components)) as pool:
                list(pool.map(Component.stop, self.components))
        with contextlib.suppress(Exception):
            self._db.close()

    def explain(self) -> str:
        """Every task instance's state, then every component's state and log tail, for failure messages."""
        try:
            rows = self.query("SELECT run_id, task_id, map_index, state FROM task_instance ORDER BY run_id, task_id")
            states = "\n".join(" ".join(str(value) for value in row) for row in rows) or "(no task instances)"
        except Exception as exc:  # the explanation must not hide the failure it explains
            states = f"(task states unreadable: {exc})"
        components = "\n".join(component.describe() for component in self.components)
        return f"----- task instances -----\n{states}\n{components}"

    def wait(self, what: str, check: Any, timeout: float = STARTUP_TIMEOUT_SECONDS, interval: float = 0.25) -> Any:
        """:func:`wait_until` that fails early when any component dies and explains with their logs."""
        return wait_until(
            check, timeout=timeout, what=what, explain=self.explain, interval=interval, watch=self.components
        )

    # -- driving the cluster -----------------------------------------------------------------

    def wait_for_triggerers(self, count: int) -> list[int]:
        """Wait until ``count`` triggerer jobs are up and heartbeating; their job ids, oldest first."""
        return self.wait(
            f"{count} triggerer job(s) to start",
            lambda: ids if len(ids := self.running_triggerer_ids()) >= count else None,
        )

    def trigger_dag(self, dag_id: str, run_id: str) -> None:
        """Wait until the DAG is parsed, then unpause and trigger it through the CLI.

        Needs no other component to be ready: the run waits in the database for the scheduler.
        """
        self.wait(f"the DAG {dag_id} to be parsed into the database", lambda: self.dag_is_parsed(dag_id))
        self.cli("dags", "unpause", dag_id)
        self.cli("dags", "trigger", dag_id, "--run-id", run_id)

    def wait_for_dag_run_end(self, dag_id: str, run_id: str, timeout: float = STARTUP_TIMEOUT_SECONDS) -> str:
        """Wait for the DAG run to succeed or fail; its final state."""
        return self.wait(
            f"DAG run {run_id} to end",
            lambda: state if (state := self.dag_run_state(dag_id, run_id)) in ("success", "failed") else None,
            timeout=timeout,
        )

    # -- reading the metadata database -------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self._db.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def dag_is_parsed(self, dag_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM serialized_dag WHERE dag_id = %s", dag_id))

    def running_triggerer_ids(self) -> list[int]:
        """Ids of triggerer jobs that are up and heartbeating, oldest first."""
        rows = self.query("SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' ORDER BY id")
        return [int(row[0]) for row in rows]

    def task_states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], str | None]:
        rows = self.query(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = %s AND run_id = %s", dag_id, run_id
        )
        return {(task_id, int(map_index)): state for task_id, map_index, state in rows}

    def dag_run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id)
        return rows[0][0] if rows else None

    def triggerer_of(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> int | None:
        """The triggerer job that runs this task instance's trigger, if the trigger is assigned."""
        rows = self.query(
            "SELECT t.triggerer_id FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
            "WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.task_id = %s AND ti.map_index = %s",
            dag_id,
            run_id,
            task_id,
            map_index,
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- what tasks left behind ---------------------------------------------------------------

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
        """Every log file Airflow wrote for this task instance (worker and trigger parts)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        folder = folder / f"map_index={map_index}" if map_index >= 0 else folder
        return "\n".join(path.read_text(errors="replace") for path in sorted(folder.glob("attempt=*")))

    def extra_link(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
        """The "Census sync run" link as this Airflow's UI resolves it.

        Airflow 3: the API server's extra-links endpoint (which reads the link the task stored).
        Airflow 2: the operator link of the stored DAG, asked by a helper in the cluster's environment.
        """
        if AIRFLOW_V_3_0_PLUS:
            url = (
                f"http://127.0.0.1:{self.api_port}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
                f"/links?map_index={map_index}"
            )
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.load(response)["extra_links"].get(CensusSyncRunLink.name)
        done = subprocess.run(
            [sys.executable, "-m", "tests.system.airflow2_link", dag_id, run_id, task_id, str(map_index)],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"link lookup failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def running_cluster(
    home: Path, postgres: PostgresServer, template: str, emulator: CensusEmulator, api_version: str
) -> Iterator[AirflowCluster]:
    """A cluster on a fresh copy of the migrated template database; every component stopped at the end."""
    database = f"airflow_{time.monotonic_ns()}"
    postgres.create_database(database, template=template)
    cluster = AirflowCluster(home, postgres, database, emulator, api_version)
    try:
        yield cluster
    finally:
        cluster.stop()
