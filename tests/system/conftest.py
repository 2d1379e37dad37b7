"""Fixtures for system tests: one PostgreSQL server per test session with a migrated template
database, and one real Airflow deployment on a copy of it, which the tests share.

Starting a deployment is most of what a system test costs (four or five Airflow processes, and
their first requests), so the tests take turns on one. Each gets its own emulator, on one port
for the session: the ``cluster`` fixture points ``census_default`` at it, on the test's API
version, so the connection changes only with the API version (and then the triggerers restart,
see :meth:`AirflowCluster.use_census`); the tests run grouped by API version, V2 first, so that
happens once. A test that fails takes the deployment down with it, and the next test starts a
fresh one.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from airflow_provider_census.testing import CensusEmulator
from tests.system.cluster import CLI_TIMEOUT_SECONDS, AirflowCluster, SharedDeployment, base_env
from tests.system.postgres import PostgresServer

TEMPLATE_DATABASE = "airflow_template"
FAILED = pytest.StashKey[bool]()
SYSTEM_TESTS = Path(__file__).resolve().parent
API_VERSION_ORDER = ("v2", "v1")
# Below Linux's ephemeral range (32768-60999): no outgoing connection takes the emulator's port
# while it is free between two tests.
STABLE_PORTS = range(20000, 32768)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The system tests grouped by the API version of their ``census_default`` (V2 first), each
    group in its usual order; every other test stays where it was."""
    places = [n for n, item in enumerate(items) if SYSTEM_TESTS in Path(str(item.path)).parents]

    def version(item: pytest.Item) -> int:
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("census_api_version") if callspec is not None else None
        return API_VERSION_ORDER.index(param) if param in API_VERSION_ORDER else len(API_VERSION_ORDER)

    ordered = sorted((items[n] for n in places), key=version)
    for n, item in zip(places, ordered, strict=True):
        items[n] = item


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    """Note on the test whether any of its phases failed, for the ``cluster`` fixture's teardown."""
    outcome = yield
    if outcome.get_result().failed:
        item.stash[FAILED] = True


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for this session, stopped and deleted at its end."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def airflow_template_db(postgres: PostgresServer) -> str:
    """A database migrated to this Airflow's schema once, which each deployment copies (seconds saved each)."""
    postgres.create_database(TEMPLATE_DATABASE)
    with tempfile.TemporaryDirectory(prefix="census-airflow-migrate-") as home:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=base_env(Path(home), postgres.url(TEMPLATE_DATABASE)),
            cwd=home,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_SECONDS * 2,
            check=False,
        )
    assert done.returncode == 0, f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return TEMPLATE_DATABASE


@pytest.fixture(scope="session")
def census_port() -> int:
    """The port of every test's emulator in this session: a port nobody listens on now."""
    for port in random.sample(STABLE_PORTS, 50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {STABLE_PORTS}")


@pytest.fixture
def census_emulator(census_port: int) -> Iterator[CensusEmulator]:
    """A fresh emulator for the test, as the plugin's, but on the session's :func:`census_port`."""
    emulator = CensusEmulator(port=census_port).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer, airflow_template_db: str
) -> Iterator[SharedDeployment]:
    """The session's Airflow deployment (see :class:`SharedDeployment`), stopped at the end."""
    shared = SharedDeployment(tmp_path_factory.mktemp("airflow"), postgres, airflow_template_db)
    try:
        yield shared
    finally:
        shared.discard()


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    deployment: SharedDeployment,
    census_emulator: CensusEmulator,
    census_api_version: str,
) -> Iterator[AirflowCluster]:
    """The running deployment, its ``census_default`` on this test's emulator and API version.

    Its DAGs map over the syncs the test adds with ``label=SYSTEM_TEST_LABEL``; run ids must be
    the test's own. Discarded if the test fails.
    """
    try:
        airflow = deployment.get()
        airflow.use_census(census_emulator, census_api_version)
    except BaseException:
        deployment.discard()
        raise
    yield airflow
    if request.node.stash.get(FAILED, False):
        deployment.discard()
