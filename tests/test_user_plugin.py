"""The emulator's pytest plugin from a user's side: opt-in, and enough to test a DAG of one's own.

Each case is a pytest run of its own (``pytester``, in a subprocess) in a temporary project
that is not this repository: its own ``conftest.py``, its own DAG file, its own test. Nothing
of this repository's ``tests/`` is loaded there, so what passes is what a user gets.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_DAG = """
from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

from airflow_provider_census.operators.census import CensusTriggerSyncOperator

with DAG(dag_id="users_to_crm", start_date=datetime(2025, 1, 1), schedule=None, catchup=False):
    CensusTriggerSyncOperator(task_id="sync_users", sync_id=60, census_conn_id="census_prod", poll_interval=0.1)
"""

USER_CONFTEST = """
import pytest

pytest_plugins = ["airflow_provider_census.testing.pytest_plugin"]


@pytest.fixture
def census_conn_id():
    return "census_prod"
"""

USER_TEST = """
from pathlib import Path

from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.testing import RunScript

DAGS = Path(__file__).parent / "dags"


def load_dag(dag_id):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def test_the_dag_runs_its_sync(census_conn, census_api_version):
    census_conn.script_sync(60, RunScript(queued_polls=0, working_polls=1))
    dag_run = load_dag("users_to_crm").test()
    assert str(dag_run.state) == "success"
    assert len(census_conn.requests_for("POST", "/syncs/60/trigger")) == 1
    assert {r.api_version for r in census_conn.requests} == {census_api_version}
    assert CensusHook("census_prod").get_sync(60).id == 60
"""


@pytest.fixture
def user_project(pytester: pytest.Pytester, airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project of a user's: a DAG folder (Airflow's dags folder for the run) and a test of that DAG."""
    dags = pytester.mkdir("dags")
    (dags / "users_to_crm.py").write_text(USER_DAG)
    pytester.makepyfile(test_users_to_crm=USER_TEST)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.delenv("AIRFLOW_CONN_CENSUS_DEFAULT", raising=False)
    return pytester


def test_a_users_dag_test_uses_the_fixture_with_its_own_connection_id(user_project: pytest.Pytester) -> None:
    user_project.makeconftest(USER_CONFTEST)
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)  # once on API V2, once on v1


def test_installing_the_provider_loads_no_plugin_into_pytest(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'census_conn' not found*"])
