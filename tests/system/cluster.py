"""A small real Airflow deployment for system tests: private AIRFLOW_HOME, LocalExecutor,
PostgreSQL metadata database, the example DAGs, and a ``census_default`` connection to the
emulator. Its components run as subprocesses; the test reads the metadata database directly.

The system tests share one deployment per session (see conftest.py): each test points
``census_default`` at its own emulator and API version (:meth:`AirflowCluster.use_census`), and
adds its syncs with :data:`SYSTEM_TEST_LABEL`, which the example DAGs select (their selection is
read when the DAG file is parsed, once per deployment). The tests drive it through its REST API."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
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

CLI_TIMEOUT_SECONDS = 180
STARTUP_TIMEOUT_SECONDS = 180
# How long a triggerer may miss heartbeats before another one takes its triggers over.
TRIGGERER_HEALTH_CHECK_THRESHOLD = 5
POLL_INTERVAL_SECONDS = 1
# The example DAG the system tests run, and its mapped deferrable task.
POST_DBT_DAG = "census_post_dbt"
SYNC_TASK = "census_sync"
# The label of every sync a system test adds, and the selection the shared deployment's DAGs use.
SYSTEM_TEST_LABEL = "census_system_test"
CONN_ID = "census_default"
REST_TIMEOUT_SECONDS = 60


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


def census_connection(emulator: CensusEmulator, api_version: str) -> dict[str, Any]:
    """``census_default`` as the system tests have it: the emulator, on one of its API versions."""
    extra = {"api_version": api_version, "base_url": emulator.api_base_url(api_version)}
    return {"conn_type": "census", "password": emulator.token_for(api_version), "extra": extra}


def connections_file_settings(path: Path) -> dict[str, str]:
    """Airflow's local-file secrets backend on ``path``, for every component and the tasks and
    triggers they run (Airflow 3 configures its workers' backend apart), read at each lookup.

    Not the metadata database: there, Airflow 3.3's triggerer answers its trigger runner's first
    connection lookup by building its in-process execution API, which holds up its heartbeat for
    seconds (7 s seen on a loaded machine). Past the health-check threshold the other triggerer
    takes the trigger over, and the first then cancels it "by user action", which makes the Census
    trigger cancel its run (``on_kill``). A file, like an environment variable, is read in the
    runner itself. Outside every AIRFLOW_HOME, so that the searches for the token there mean something.
    """
    backend = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    kwargs = json.dumps({"connections_file_path": str(path)})
    return {
        "AIRFLOW__SECRETS__BACKEND": backend,
        "AIRFLOW__SECRETS__BACKEND_KWARGS": kwargs,
        "AIRFLOW__WORKERS__SECRETS_BACKEND": backend,
        "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS": kwargs,
    }


def shared_settings() -> dict[str, str]:
    """What the shared deployment of the system tests sets beyond :func:`base_env`.

    None of it is what a test checks: it makes Airflow react sooner, and lets every test use it.
    """
    return {
        # Airflow 3's task supervisor waits in one select() of up to [workers] min_heartbeat_interval
        # (5 s) when a task's sockets close before its process is reaped, and the scheduler ends a
        # DAG run only once the workload of its last task is done: 5 s more per DAG run, at random.
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        # A scheduler with nothing to do sleeps this long (1 s) before it looks again: each step of a
        # DAG run (queue the next task, resume a deferred one, end the run) waits up to that. Its
        # idle loop costs little CPU next to what the tasks and triggers cost.
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
        # The UI test presses the connection form's Test (Airflow disables it by default).
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        # Airflow 2.11's REST API for tests that drive the deployment as a script would (Airflow 3's
        # API server lets everyone in as admin through SIMPLE_AUTH_MANAGER_ALL_ADMINS).
        "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.default",
        # The example DAGs map over the syncs a test adds with this label, in whichever emulator.
        "CENSUS_EXAMPLE_SELECT": f"label:{SYSTEM_TEST_LABEL}",
        # Cosmos (tests/system/test_cosmos.py) would report each task and DAG run to its vendor.
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    }


def own_dag_bundle_settings(folder: Path) -> dict[str, str]:
    """Airflow 3's DAG bundles: the example DAGs, and ``folder`` for DAG files a test writes while
    the deployment runs, looked for every second. Airflow 2 has one DAG folder, and no such test."""
    if not AIRFLOW_V_3_0_PLUS:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    bundles = [
        {"name": "dags-folder", "classpath": local, "kwargs": {}},
        {"name": "system-test-dags", "classpath": local, "kwargs": {"path": str(folder), "refresh_interval": 1}},
    ]
    return {"AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles)}


class AirflowCluster:
    """Airflow's components, all sharing one home, database and Census connection.

    With an ``emulator`` the connection is the ``census_default`` environment variable of every
    component, fixed for their life; with a ``connections_file`` instead, :meth:`use_census`
    writes it there, and may point it elsewhere between DAG runs.
    """

    def __init__(
        self,
        home: Path,
        postgres: PostgresServer,
        database: str,
        emulator: CensusEmulator | None = None,
        api_version: str | None = None,
        connections_file: Path | None = None,
    ) -> None:
        self.home = home
        self.emulator: CensusEmulator = emulator  # type: ignore[assignment]  # set by use_census() when None
        self.api_version = api_version
        self.components: list[Component] = []
        self.log_dir = home / "component-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.web_port: int | None = None  # Airflow 2's web server, once started
        self.env = base_env(home, postgres.url(database))
        self.env.update(self._api_env())
        if emulator is not None:
            assert api_version is not None, "an emulator needs the API version to talk"
            self.env[CONN_ENV_VAR] = json.dumps(census_connection(emulator, api_version))
        self.connections_file = connections_file
        if connections_file is not None:
            assert emulator is None, "census_default comes from the environment or from the file, not both"
            connections_file.write_text("{}")  # the backend fails every lookup while it has no file
            self.env.update(connections_file_settings(connections_file))
        self.env["CENSUS_EXAMPLE_POLL_INTERVAL"] = str(POLL_INTERVAL_SECONDS)
        self._db = postgres.connect(database)
        self.test_dags = home / "test-dags"
        """Where a test writes DAG files of its own (Airflow 3: a DAG bundle, see :func:`own_dag_bundle_settings`)."""
        self._names = itertools.count(1)
        self._census: dict[str, Any] | None = None  # census_default as use_census() last stored it

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

    def use_census(self, emulator: CensusEmulator, api_version: str) -> None:
        """Point ``census_default`` at ``emulator`` on ``api_version``, in place of what it was: every
        task and trigger that starts from now on reads this one.

        The connection lives in :attr:`connections_file`, which Airflow's local-file secrets backend
        reads at each lookup (see :func:`connections_file_settings`). Triggerers keep a reading of a
        connection for up to a minute (``SETTINGS_TTL_SECONDS`` of
        ``airflow_provider_census.api.async_pool``: one per event loop, shared by the triggers that
        start together), so when the connection changes they are restarted; an emulator on the
        same port as the last one is the same connection (the tests' are: see conftest.py).
        """
        assert self.connections_file is not None, "census_default is fixed in the environment of this cluster"
        connection = census_connection(emulator, api_version)
        if connection != self._census:
            stored = {**connection, "extra": json.dumps(connection["extra"])}
            draft = self.connections_file.with_suffix(".draft")
            draft.write_text(json.dumps({CONN_ID: stored}))
            draft.replace(self.connections_file)  # at once: a reader never sees half a file
            if self._census is not None:
                self.restart_triggerers()
            self._census = connection
        self.emulator, self.api_version = emulator, api_version

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

    def start_triggerer(self, name: str | None = None) -> Component:
        """A triggerer, named ``name`` (its log file's name), else ``triggerer``, then ``triggerer-2``..."""
        if name is None:
            n = next(self._names)
            name = "triggerer" if n == 1 else f"triggerer-{n}"
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
        self.web_port = port
        return port

    def start_all(self) -> None:
        """The whole deployment, all at once: :meth:`start_core`, a triggerer, and Airflow 2's web server
        (its UI and REST API; Airflow 3's are the API server's)."""
        if not AIRFLOW_V_3_0_PLUS:
            self.start_webserver()
        self.start_core()
        self.start_triggerer()

    def restart_triggerers(self) -> None:
        """Replace every running triggerer with a new one; return once the new ones heartbeat.
        Each new one starts before the old one stops, so their start and grace period overlap."""
        old = self.triggerers()
        before = set(self.running_triggerer_ids())
        for triggerer in old:
            self.start_triggerer()
            triggerer.stop()
            self.components.remove(triggerer)
        self.wait(
            f"{len(old)} restarted triggerer(s) to heartbeat",
            lambda: len(set(self.running_triggerer_ids()) - before) >= len(old),
        )

    def triggerers(self) -> list[Component]:
        """The triggerers this cluster started that are still running, oldest first."""
        return [c for c in self.components if c.name.startswith("triggerer") and not c.exited]

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

    # -- the REST API ------------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        """The REST API's root: Airflow 3's API server, or Airflow 2's web server (once started)."""
        if AIRFLOW_V_3_0_PLUS:
            return f"http://127.0.0.1:{self.api_port}/api/v2"
        assert self.web_port is not None, "Airflow 2's REST API is its web server's: start_webserver() first"
        return f"http://127.0.0.1:{self.web_port}/api/v1"

    def rest(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """One call to the REST API, as a user's script would make it: its status and JSON answer."""
        return http_json(method, f"{self.rest_url}{path}", body)

    def rest_is_up(self) -> bool:
        try:
            return self.rest("GET", "/monitor/health" if AIRFLOW_V_3_0_PLUS else "/health")[0] == 200
        except OSError:
            return False

    def wait_for_rest(self) -> None:
        self.wait("the REST API to answer", self.rest_is_up)

    # -- driving the cluster -----------------------------------------------------------------

    def wait_for_triggerers(self, count: int) -> list[int]:
        """Wait until ``count`` triggerer jobs are up and heartbeating; their job ids, oldest first."""
        return self.wait(
            f"{count} triggerer job(s) to start",
            lambda: ids if len(ids := self.running_triggerer_ids()) >= count else None,
        )

    def trigger_dag(self, dag_id: str, run_id: str) -> None:
        """Wait until the DAG is parsed, then unpause and trigger it through the REST API (the CLI
        when there is none: Airflow 2 without its web server).

        Needs no other component to be ready: the run waits in the database for the scheduler.
        """
        self.wait(f"the DAG {dag_id} to be parsed into the database", lambda: self.dag_is_parsed(dag_id))
        if AIRFLOW_V_3_0_PLUS or self.web_port is not None:
            self.wait_for_rest()
            status, answer = self.rest("PATCH", f"/dags/{dag_id}?update_mask=is_paused", {"is_paused": False})
            assert status == 200, (status, answer)
            run: dict[str, Any] = {"dag_run_id": run_id}
            if AIRFLOW_V_3_0_PLUS:
                run["logical_date"] = None
            status, answer = self.rest("POST", f"/dags/{dag_id}/dagRuns", run)
            assert status == 200, (status, answer)
            return
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
        """Ids of triggerer jobs that are up and heartbeating, oldest first: as Airflow counts them
        healthy, so one that was killed (its job still ``running``) drops out once it misses heartbeats."""
        rows = self.query(
            "SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' "
            "AND latest_heartbeat > now() - make_interval(secs => %s) ORDER BY id",
            TRIGGERER_HEALTH_CHECK_THRESHOLD,
        )
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
        Airflow 2: the web server's ``/extra_links``, which its UI asks (the operator link of the stored DAG).
        """
        if AIRFLOW_V_3_0_PLUS:
            status, answer = self.rest(
                "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links?map_index={map_index}"
            )
            assert status == 200, (status, answer)
            return answer["extra_links"].get(CensusSyncRunLink.name)
        assert self.web_port is not None, "Airflow 2's UI is its web server's: start_webserver() first"
        ((logical_date,),) = self.query(
            "SELECT execution_date FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id
        )
        query = urllib.parse.urlencode(
            {
                "dag_id": dag_id,
                "task_id": task_id,
                "execution_date": logical_date.isoformat(),
                "link_name": CensusSyncRunLink.name,
                "map_index": map_index,
            }
        )
        status, answer = http_json("GET", f"http://127.0.0.1:{self.web_port}/extra_links?{query}")
        assert status in (200, 404) and answer is not None, (status, answer)
        return answer["url"]


def http_json(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One HTTP call with a JSON body (or none): its status and JSON answer (None when empty,
    the text when it is not JSON, for the failure message)."""
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={} if body is None else {"Content-Type": "application/json"},  # Flask refuses JSON of nothing
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=REST_TIMEOUT_SECONDS) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")[-3000:]


@contextlib.contextmanager
def running_cluster(
    home: Path,
    postgres: PostgresServer,
    template: str,
    emulator: CensusEmulator | None = None,
    api_version: str | None = None,
    connections_file: Path | None = None,
) -> Iterator[AirflowCluster]:
    """A cluster on a fresh copy of the migrated template database; every component stopped at the end."""
    database = f"airflow_{time.monotonic_ns()}"
    postgres.create_database(database, template=template)
    cluster = AirflowCluster(home, postgres, database, emulator, api_version, connections_file)
    try:
        yield cluster
    finally:
        cluster.stop()


class SharedDeployment:
    """One deployment for many tests, with all that :meth:`AirflowCluster.start_all` starts.

    Started when a test first asks for it, and ready then: the REST API answers and a triggerer
    heartbeats. :meth:`discard` stops it, at the end and after a test on it fails, so that the
    next test gets a fresh one rather than whatever the failure left running.
    """

    def __init__(self, root: Path, postgres: PostgresServer, template: str) -> None:
        self.root = root
        self.postgres = postgres
        self.template = template
        self._cluster: AirflowCluster | None = None
        self._stack: contextlib.ExitStack | None = None
        self._homes = itertools.count(1)

    def get(self) -> AirflowCluster:
        if self._cluster is None:
            with contextlib.ExitStack() as stack:
                n = next(self._homes)
                home, connections = self.root / f"airflow-home-{n}", self.root / f"connections-{n}.json"
                cluster = stack.enter_context(
                    running_cluster(home, self.postgres, self.template, connections_file=connections)
                )
                cluster.env.update(shared_settings())
                cluster.env.update(own_dag_bundle_settings(cluster.test_dags))
                cluster.start_all()
                cluster.wait_for_rest()
                cluster.wait_for_triggerers(1)
                self._stack, self._cluster = stack.pop_all(), cluster
        return self._cluster

    def discard(self) -> None:
        stack, self._stack, self._cluster = self._stack, None, None
        if stack is not None:
            stack.close()
