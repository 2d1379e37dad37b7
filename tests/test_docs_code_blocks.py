"""Every Python code block of the README and the docs runs, as a user would run it (see tests/docs_blocks.py).

DAG files are loaded as Airflow loads them and each DAG runs with ``dag.test()``; scripts and
pytest tests run as they are; all against the emulator, with ``census_default`` pointed at it
(V2) and a workspace that has what the docs name: sync 1234, syncs labeled ``crm_*`` (one of
them ``crm_test``, which ``label:*_test`` excludes) and a sync of the model ``dim_users``. Their
runs complete at once, so nothing waits for a poll. A documented usage that fails in real
Airflow fails its test; the last tests feed broken blocks to the same runner to show it.

On Airflow 2.11 the blocks written for Airflow 3 (they import ``airflow.sdk``) cannot be
imported and are skipped; the others run there too.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS
from tests.airflow_runs import dag_bundle_folder, task_states
from tests.docs_blocks import FRAGMENT, MARKED_KINDS, SYSTEM, CodeBlock, code_blocks, documentation_files

BLOCKS = [block for path in documentation_files() for block in code_blocks(path)]
BUNDLE = "census-docs"
AT_ONCE = RunScript(queued_polls=0, working_polls=0)
"""A run that has completed by the first time it is read."""


@pytest.fixture
def census_api_version() -> str:
    """V2, the version the docs set up."""
    return "v2"


@pytest.fixture
def docs_workspace(census_conn: CensusEmulator) -> CensusEmulator:
    census_conn.add_sync(AT_ONCE, sync_id=1234)
    census_conn.add_model("dim_users")
    census_conn.add_sync(AT_ONCE, "crm_users", source={"type": "model", "name": "dim_users"})
    census_conn.add_sync(AT_ONCE, "crm_accounts")
    census_conn.add_sync(AT_ONCE, "crm_test")
    return census_conn


@pytest.fixture
def block_runner(
    docs_workspace: CensusEmulator, tmp_path: Path, airflow_db: None, monkeypatch: pytest.MonkeyPatch
) -> Callable[[CodeBlock], None]:
    folder = dag_bundle_folder(tmp_path, BUNDLE, monkeypatch)
    fixtures = {"census_conn": docs_workspace, "census_emulator": docs_workspace, "monkeypatch": monkeypatch}
    return lambda block: run_block(block, folder, fixtures)


def run_block(block: CodeBlock, dag_folder: Path, fixtures: dict[str, Any]) -> None:
    """Run a block as what it is; any failure raises (an AssertionError for a DAG run that did not succeed)."""
    code = compile(block.code, block.name, "exec")
    if block.kind in MARKED_KINDS:  # compiled only; a system block runs in its system test
        return
    if block.kind == "dag":
        run_dag_file(block, dag_folder)
        return
    namespace: dict[str, Any] = {"__name__": f"docs_block_{block.line}"}
    exec(code, namespace)
    if block.kind == "pytest":
        run_tests(block, namespace, fixtures)


def run_dag_file(block: CodeBlock, folder: Path) -> None:
    """Load the block as a DAG file, as Airflow does, and run each of its DAGs with ``dag.test()``."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2 to 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    path = folder / f"{re.sub(r'[^a-z0-9]+', '_', block.name.lower())}.py"
    path.write_text(block.code)
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    assert bag.dag_ids, f"{block.name} calls DAG() but Airflow finds no DAG in it"
    try:
        for dag_id in bag.dag_ids:
            dag_run = bag.get_dag(dag_id).test()
            states = task_states(dag_run)
            assert str(dag_run.state) == "success", f"{block.name}: DAG {dag_id} ended {dag_run.state}: {states}"
            assert set(states.values()) <= {"success", "skipped"}, f"{block.name}: DAG {dag_id}: {states}"
    finally:
        forget_dags(bag.dag_ids)


def forget_dags(dag_ids: list[str]) -> None:
    """Delete the DAGs from the metadata database the tests share: the docs name some DAGs as the
    example DAGs are named, and a later test of an example DAG must find the example's own."""
    from airflow.api.common.delete_dag import delete_dag

    for dag_id in dag_ids:
        delete_dag(dag_id, keep_records_in_log=False)


def run_tests(block: CodeBlock, namespace: dict[str, Any], fixtures: dict[str, Any]) -> None:
    """Call each ``test_*`` function the block defines with the fixtures it names."""
    for name, function in namespace.items():
        if not (name.startswith("test_") and callable(function)):
            continue
        wanted = list(inspect.signature(function).parameters)
        missing = [fixture for fixture in wanted if fixture not in fixtures]
        assert not missing, f"{block.name}: {name} asks for fixtures the docs tests do not have: {missing}"
        function(**{fixture: fixtures[fixture] for fixture in wanted})


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_documented_code_runs(block: CodeBlock, block_runner: Callable[[CodeBlock], None]) -> None:
    if block.imports_airflow_sdk and block.kind not in MARKED_KINDS and not AIRFLOW_V_3_0_PLUS:
        pytest.skip("written for Airflow 3: it imports airflow.sdk")
    block_runner(block)


def test_the_docs_have_code_of_every_kind() -> None:
    """The collector finds what it should: a change that made it miss the blocks would pass every test above."""
    kinds = {block.kind for block in BLOCKS}
    assert kinds == {"dag", "pytest", "script", FRAGMENT, SYSTEM}
    assert len(BLOCKS) >= 20
    assert {block.path.name for block in BLOCKS if block.kind == "dag"} >= {"README.md", "post-dbt.md", "cosmos.md"}


# -- broken blocks fail --

BROKEN_DAG = """\
from datetime import datetime

from airflow.sdk import DAG
from airflow_provider_census.operators.census import CensusTriggerSyncsOperator

with DAG("docs_broken", start_date=datetime(2025, 1, 1), schedule=None):
    CensusTriggerSyncsOperator(task_id="census_syncs", select=lambda: ["label:crm_*"])  # takes no context
"""


def markdown_blocks(tmp_path: Path, text: str) -> list[CodeBlock]:
    page = tmp_path / "page.md"
    page.write_text(text)
    return code_blocks(page)


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the broken DAG is written for Airflow 3, as the docs are")
def test_a_dag_whose_task_fails_in_airflow_fails(tmp_path: Path, block_runner: Callable[[CodeBlock], None]) -> None:
    (block,) = markdown_blocks(tmp_path, f"A DAG:\n\n```python\n{BROKEN_DAG}```\n")
    assert block.kind == "dag"
    with pytest.raises(AssertionError, match="DAG docs_broken ended failed"):
        block_runner(block)


def test_a_fragment_not_marked_as_one_fails(tmp_path: Path, block_runner: Callable[[CodeBlock], None]) -> None:
    (block,) = markdown_blocks(tmp_path, "```python\nCensusTriggerSyncOperator(task_id='t', sync_id=1234)\n```\n")
    with pytest.raises(NameError, match="CensusTriggerSyncOperator"):
        block_runner(block)


def test_a_marked_fragment_is_compiled(tmp_path: Path, block_runner: Callable[[CodeBlock], None]) -> None:
    text = "<!-- docs-test: fragment: an excerpt -->\n```python\nCensusTriggerSyncOperator(task_id='t',\n```\n"
    (block,) = markdown_blocks(tmp_path, text)
    assert block.kind == FRAGMENT
    with pytest.raises(SyntaxError):
        block_runner(block)


@pytest.mark.parametrize(
    "text",
    [
        "<!-- docs-test: fragmnet: a typo -->\n```python\nx = 1\n```\n",
        "<!-- docs-test: fragment -->\n```python\nx = 1\n```\n",
        "<!-- docs-test: fragment: not right before the block -->\n\n```python\nx = 1\n```\n",
    ],
    ids=["unknown-kind", "no-reason", "not-before-a-block"],
)
def test_a_marker_that_would_skip_nothing_it_should_is_an_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ValueError, match="is not a marker the tests know"):
        markdown_blocks(tmp_path, text)


def test_a_marker_named_in_a_sentence_is_no_marker(tmp_path: Path) -> None:
    text = "Write `<!-- docs-test: fragment: why -->` before an excerpt.\n\n```python\nx = 1\n```\n"
    (block,) = markdown_blocks(tmp_path, text)
    assert block.kind == "script"
