"""Shared fixtures: a hook wired to the bundled emulator with quick retries.

The emulator fixtures (``census_emulator``, ``census_conn``) come from the package's own
pytest plugin, loaded here as its users load it (it is opt-in).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "example_dags"
# Airflow reads its configuration when first imported, so this comes before any import of it.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="census-airflow-home-"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(EXAMPLE_DAGS)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# Airflow names the host of every task it starts with socket.getfqdn(), a reverse DNS lookup:
# on a machine without DNS (a CI sandbox) each call waits for its timeout (7 s here, several
# per task). Its own name is what a test needs, and socket.gethostname() answers at once.
os.environ.setdefault("AIRFLOW__CORE__HOSTNAME_CALLABLE", "socket.gethostname")

import pytest  # noqa: E402

pytest_plugins = ["airflow_provider_census.testing.pytest_plugin"]

from airflow_provider_census.api import budget_gate, routes  # noqa: E402
from airflow_provider_census.api.budget import BudgetRules  # noqa: E402
from airflow_provider_census.api.retry import RetryPolicy  # noqa: E402
from airflow_provider_census.hooks.census import CensusHook  # noqa: E402
from airflow_provider_census.testing import CensusEmulator  # noqa: E402

QUICK_RETRIES = RetryPolicy(max_attempts=4, budget_seconds=10.0, initial_wait=0.01, max_wait=0.05, max_retry_after=0.3)


MASKER_MODULES = (
    "airflow.sdk._shared.secrets_masker",  # Airflow 3: the task SDK's masker
    "airflow._shared.secrets_masker",  # Airflow 3: the core's own
    "airflow.utils.log.secrets_masker",  # Airflow 2.11
)


def loaded_secrets_maskers() -> list[Any]:
    """Airflow's secrets maskers already made in this process (none is made here)."""
    maskers = []
    for name in MASKER_MODULES:
        module = sys.modules.get(name)
        try:
            masker = module._secrets_masker() if module is not None else None
        except RuntimeError:  # Airflow 2: logging not configured yet
            masker = None
        if masker is not None and hasattr(masker, "patterns"):
            maskers.append(masker)
    return maskers


@pytest.fixture(autouse=True)
def forget_routes_learnt_by_the_test() -> Iterator[None]:
    """Each test's emulator may reuse an earlier one's port: what that Census served must not carry over."""
    yield
    routes.forget()


QUICK_BUDGET = BudgetRules(regrow_seconds=1.0, floor=20.0)
"""The request budget's reactions for tests that inject 429s into a run's reads to test the wait's
rules, polling many times a second: the budget still learns and pauses for ``Retry-After``, but
recovers within a second and never slows a token below 20 requests a second (its production floor,
one request every 5 s, would make each such test wait minutes; it matters where tasks poll every
10 s). ``tests/test_request_budget.py`` tests the budget with its production rules."""
BUDGET_RULES_AS_SHIPPED = frozenset({"test_request_budget", "test_budget"})


@pytest.fixture(autouse=True)
def forget_request_budgets_of_the_test(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The same for the request budgets: a 429 one test provoked must not slow the next test's requests."""
    if request.module.__name__.rsplit(".", 1)[-1] not in BUDGET_RULES_AS_SHIPPED:
        monkeypatch.setattr(budget_gate, "RULES", QUICK_BUDGET)
    yield
    budget_gate.forget()


@pytest.fixture(autouse=True)
def forget_secrets_masked_by_the_test() -> Iterator[None]:
    """Drop the secrets Airflow learned to mask during a test once it ends.

    Airflow masks each connection's whole ``extra``, and every emulator's base_url has a port of
    its own: every test adds a pattern, and each addition recompiles one regex of all of them.
    Over a session of a thousand tests that made reading a connection cost seconds.
    """
    before = {id(masker): set(masker.patterns) for masker in loaded_secrets_maskers()}
    yield
    for masker in loaded_secrets_maskers():
        kept = before.get(id(masker), set())
        if masker.patterns != kept:
            masker.patterns = kept
            masker.replacer = re.compile("|".join(kept)) if kept else None


CORE_FLOW_CONNECTIONS = [
    pytest.param("v2", "all", id="v2"),
    pytest.param("v2", "documented", id="v2-documented"),
    pytest.param("v1", "all", id="v1"),
]
"""The Census a core-flow test meets: v1, V2 as the provider assumes it, and V2 as its reference documents it."""


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``v2_routes`` that use ``census_conn`` run once per :data:`CORE_FLOW_CONNECTIONS`.

    A parametrize mark, added before pytest's own hooks read the marks, so that it replaces the
    plugin's two-version parametrization of ``census_api_version`` instead of doubling it.
    """
    if metafunc.definition.get_closest_marker("v2_routes") and "census_api_version" in metafunc.fixturenames:
        metafunc.definition.add_marker(
            pytest.mark.parametrize(("census_api_version", "census_v2_routes"), CORE_FLOW_CONNECTIONS)
        )


@pytest.fixture
def hook(census_conn: CensusEmulator) -> CensusHook:
    """A hook on ``census_default``, pointed at a fresh emulator, with quick retries."""
    return CensusHook(retry_policy=QUICK_RETRIES, trigger_settle_seconds=0.05)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated SQLite metadata database in this run's AIRFLOW_HOME, made once per session."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


DAG_TEST_NAP = 0.05
"""How long ``dag.test()`` sleeps, in tests, when no task of its run is ready (see :func:`dag_test_naps_briefly`)."""


@pytest.fixture(autouse=True, scope="session")
def dag_test_naps_briefly() -> Iterator[None]:
    """``dag.test()`` sleeps a whole second whenever no task is ready to run: a sensor in reschedule mode
    waits for its next poke, however soon it is due, a second at a time. Here that sleep is
    :data:`DAG_TEST_NAP`; every other ``time.sleep`` sleeps as asked.
    """
    dag_tests = set()
    for module_name in ("airflow.sdk.definitions.dag", "airflow.models.dag"):  # where DAG.test is, by version
        try:
            dag_class = importlib.import_module(module_name).DAG
        except (ImportError, AttributeError):
            continue
        if hasattr(dag_class, "test"):
            dag_tests.add(inspect.unwrap(dag_class.test).__code__)
    sleep = time.sleep

    def napping(seconds: float) -> None:
        sleep(DAG_TEST_NAP if sys._getframe(1).f_code in dag_tests else seconds)

    time.sleep = napping
    yield
    time.sleep = sleep
