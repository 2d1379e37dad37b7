"""Asset-driven post-dbt: table URIs to selectors, triggering asset events to the syncs that read them.

The first part is pure (URIs and made-up events, as Airflow 3 and 2.11 shape them); then
``select_syncs`` over HTTP against the emulator; last the example DAG pair in real Airflow:
the dbt stand-in records its asset events, the scheduler's own code makes the Census DAG's
asset-triggered run from them, and that run triggers exactly the syncs reading the two tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_census.api.errors import CensusNoSyncSelectedError
from airflow_provider_census.assets.tables import (
    NOT_ASSET_TRIGGERED,
    TableUris,
    UnreadableUri,
    read_table_uris,
    selection_from_asset_events,
    table_selectors_from_uris,
)
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.selectors import CensusSelectorError, Selection, SyncFacts, parse_selection
from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS, AirflowSkipException, Asset
from tests.airflow_runs import (
    example_dag,
    run_example_dag,
    run_scheduled_run,
    schedule_asset_triggered_run,
    task_states,
    xcom,
)
from tests.conftest import EXAMPLE_DAGS

USERS_URI = "snowflake://xxxxxxx.us-east-1/prod/analytics/dim_users"
ORDERS_URI = "snowflake://xxxxxxx.us-east-1/prod/analytics/fct_orders"
CENSUS_DAG = "census_after_dbt"
ONE_TASK_CENSUS_DAG = "census_after_dbt_one_task"

TABLE = SyncFacts(id=1, source_kind="table", source_catalog="PROD", source_schema="Analytics", source_table="DIM_USERS")
STAGING = SyncFacts(
    id=2, source_kind="table", source_catalog="staging", source_schema="analytics", source_table="dim_users"
)
MODEL = SyncFacts(id=3, source_kind="model", source_name="Dim_Users")
SEGMENT = SyncFacts(id=4, source_kind="segment", source_name="dim_users")
OTHER_MODEL = SyncFacts(id=5, source_kind="model", source_name="fct_orders")
UNNAMED_MODEL = SyncFacts(id=6, source_kind="model")
FACTS = (TABLE, STAGING, MODEL, SEGMENT, OTHER_MODEL, UNNAMED_MODEL)


@dataclass(frozen=True)
class AliasKey:
    """Stands for an asset alias, a key without a URI."""

    name: str


def airflow3_events(*uris: str) -> dict[Any, list[Any]]:
    """Events shaped as Airflow 3 gives them: keyed by asset, each event naming its asset."""
    return {Asset(uri): [SimpleNamespace(asset=SimpleNamespace(uri=uri), extra={})] for uri in uris}


def airflow2_events(*uris: str) -> dict[str, list[Any]]:
    """Events shaped as Airflow 2.11 gives them: keyed by dataset URI, each event with a ``uri``."""
    return {uri: [SimpleNamespace(uri=uri, extra={})] for uri in uris}


def picked(selection: Selection) -> list[int]:
    return [sync.id for sync in selection.select(FACTS)]


# -- table URIs --


@pytest.mark.parametrize(
    ("uri", "selector"),
    [
        ("postgres://host:5432/db/analytics/dim_users", "source:db.analytics.dim_users"),
        ("postgresql://host/db/analytics/dim_users/", "source:db.analytics.dim_users"),
        ("postgres://host:5432/db.analytics.dim_users", "source:db.analytics.dim_users"),
        ("snowflake://xy12345/PROD/ANALYTICS/DIM_USERS", "source:PROD.ANALYTICS.DIM_USERS"),
        ("snowflake://org-account/PROD.ANALYTICS.DIM_USERS", "source:PROD.ANALYTICS.DIM_USERS"),
        ("bigquery://my-project/analytics/dim_users", "source:my-project.analytics.dim_users"),
        ("bigquery:my-project.analytics.dim_users", "source:my-project.analytics.dim_users"),
        ("bigquery/my-project.analytics.dim_users", "source:my-project.analytics.dim_users"),
        ("bigquery/my-project/analytics/dim_users", "source:my-project.analytics.dim_users"),
        ("BigQuery://my-project/analytics/dim_users", "source:my-project.analytics.dim_users"),
        ("redshift://cluster.us-east-1:5439/dev/public/fruit", "source:dev.public.fruit"),
        ("trino://host:8080/hive/default/orders", "source:hive.default.orders"),
        ("databricks://host/main/sales/orders", "source:main.sales.orders"),
        ("awsathena://athena.us-east-1.amazonaws.com/AwsDataCatalog/db/orders", "source:AwsDataCatalog.db.orders"),
        ("mysql://host:3306/shop/orders", "source:shop.orders"),
        ("mariadb://host/shop.orders", "source:shop.orders"),
        ("postgres://host/db/public/%EF%BD%8D%EF%BD%95", "source:db.public.\uff4d\uff55"),
        ("postgres://host/db/public/my%20table", "source:db.public.my table"),
        ("postgres://host/db/public/odd*name%3F[x]", "source:db.public.odd[*]name[?][[]x]"),
        ("postgres://host/db/public/t?schema=x#frag", "source:db.public.t"),
    ],
)
def test_table_uris_become_source_selectors(uri: str, selector: str) -> None:
    assert table_selectors_from_uris([uri]) == [selector]


def test_an_escaped_uri_selector_matches_the_table_literally() -> None:
    (selector,) = table_selectors_from_uris(["postgres://host/db/public/odd*name%3F[x]"])
    selection = parse_selection(selector)
    literal = SyncFacts(
        id=1, source_kind="table", source_catalog="db", source_schema="public", source_table="odd*name?[x]"
    )
    lookalike = SyncFacts(
        id=2, source_kind="table", source_catalog="db", source_schema="public", source_table="oddXnameY[x]"
    )
    assert selection.select([literal, lookalike]) == [literal]


def test_a_uri_selector_selects_the_table_sync_case_insensitively() -> None:
    selection = parse_selection(table_selectors_from_uris(["snowflake://acct/prod/analytics/dim_users"]))
    assert picked(selection) == [TABLE.id]


def test_table_selectors_keep_order_and_drop_repeats() -> None:
    uris = ["postgres://h/db/s/b", "postgres://h:5432/db.s.a", "postgres://other/db/s/b"]
    assert table_selectors_from_uris(uris) == ["source:db.s.b", "source:db.s.a"]


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s3://bucket/key.csv", "has scheme 's3', which names no warehouse table"),
        ("file:///tmp/data.csv", "has scheme 'file'"),
        ("dim_users", "has no scheme"),
        ("postgres://host/db/table", "a postgres table is named database.schema.table"),
        ("postgres://host/db/s/t/extra", "does not name a table"),
        ("postgres://host", "does not name a table"),
        ("postgres://host/db//t", "does not name a table"),
        ("mysql://host/db/s/t", "a mysql table is named database.table"),
        ("bigquery://project/dataset.table", "a bigquery table is named project.dataset.table"),
        ("postgres://host/db/public/a%2Eb", "has a dot inside a name"),
        ("postgres://[::1/db/s/t", "cannot be read as a URI"),
        (42, "is of type int, not a URI text"),
    ],
)
def test_unreadable_uris_come_back_with_their_reason(uri: object, reason: str) -> None:
    result = read_table_uris(["postgres://h/db/s/t", uri])
    assert result.selectors == ("source:db.s.t",)
    assert len(result.unreadable) == 1
    assert result.unreadable[0].uri == uri
    assert reason in result.unreadable[0].reason


def test_table_selectors_from_uris_fails_naming_every_unreadable_uri() -> None:
    with pytest.raises(CensusSelectorError) as raised:
        table_selectors_from_uris(["postgres://h/db/s/t", "s3://b/k", "gs://b/k"])
    message = str(raised.value)
    for phrase in ("'s3://b/k' has scheme 's3'", "'gs://b/k' has scheme 'gs'", "postgres://host:5432/db/schema/table"):
        assert phrase in message
    assert "postgres://h/db/s/t" not in message


def test_read_table_uris_of_nothing_is_empty() -> None:
    assert read_table_uris([]) == TableUris((), ())
    assert read_table_uris(iter(["s3://b/k"])).unreadable == (
        UnreadableUri("s3://b/k", "has scheme 's3', which names no warehouse table"),
    )


# -- triggering asset events to a selection --


@pytest.mark.parametrize("shape", [airflow3_events, airflow2_events], ids=["airflow-3", "airflow-2.11"])
def test_a_table_event_selects_the_table_and_the_model_named_like_it(shape: Any) -> None:
    """Not the same table in another catalog, not a segment of that name, not another model."""
    selection = selection_from_asset_events(shape(USERS_URI))
    assert picked(selection) == [TABLE.id, MODEL.id]
    assert selection.describe() == USERS_URI
    assert selection.needs_source_names


def test_model_matching_can_be_turned_off() -> None:
    selection = selection_from_asset_events(airflow3_events(USERS_URI), match_models=False)
    assert picked(selection) == [TABLE.id]
    assert not selection.needs_source_names


def test_a_task_context_is_read_on_either_airflow_line() -> None:
    events = airflow3_events(USERS_URI, ORDERS_URI)
    for context in ({"ti": None, "triggering_asset_events": events}, {"triggering_dataset_events": events}):
        assert picked(selection_from_asset_events(context)) == [TABLE.id, MODEL.id, OTHER_MODEL.id]


def test_an_event_names_its_own_asset_and_repeats_count_once() -> None:
    """An event reached through an alias (keyed by the alias) still names its table; one table, one selector."""
    alias = AliasKey("dbt-models")
    event = SimpleNamespace(asset=SimpleNamespace(uri=ORDERS_URI))
    events = {**airflow3_events(ORDERS_URI), alias: [event]}
    selection = selection_from_asset_events(events)
    assert selection.describe() == ORDERS_URI
    assert picked(selection) == [OTHER_MODEL.id]


def test_extra_selectors_are_added_and_excludes_removed() -> None:
    selection = selection_from_asset_events(airflow3_events(USERS_URI), extra_select=["id:5"], exclude=[3])
    assert picked(selection) == [TABLE.id, OTHER_MODEL.id]
    assert selection.describe() == f"{USERS_URI}, id:5 excluding 3"
    with pytest.raises(CensusSelectorError, match=r"extra_select\[0\] 'lable:x'.*did you mean label:"):
        selection_from_asset_events(airflow3_events(USERS_URI), extra_select=["lable:x"])


def test_an_event_that_names_no_table_fails_naming_every_such_uri() -> None:
    events = airflow3_events(USERS_URI, "census://default/syncs/12", "s3://lake/users.parquet")
    with pytest.raises(CensusSelectorError) as raised:
        selection_from_asset_events({"triggering_asset_events": events})
    message = str(raised.value)
    assert "triggering asset events" in message
    assert "'census://default/syncs/12' has scheme 'census'" in message
    assert "'s3://lake/users.parquet' has scheme 's3'" in message
    assert USERS_URI not in message


@pytest.mark.parametrize(
    "context",
    [{"ti": None, "triggering_asset_events": {}}, {"ti": None, "dag_run": None}, {}],
    ids=["empty-events", "no-events-key", "empty-mapping"],
)
def test_a_run_without_asset_events_selects_nothing_and_says_why(context: dict[str, Any]) -> None:
    selection = selection_from_asset_events(context)
    assert selection.include == ()
    assert selection.empty_reason == NOT_ASSET_TRIGGERED
    assert "this DAG run was not triggered by asset events; " in NOT_ASSET_TRIGGERED
    only_extras = selection_from_asset_events(context, extra_select="label:always")
    assert [s.text for s in only_extras.include] == ["label:always"]


# -- against Census (the emulator) --


def test_select_syncs_fails_skips_or_is_empty_without_asking_census(
    hook: CensusHook, census_conn: CensusEmulator
) -> None:
    manual = selection_from_asset_events({"ti": None, "triggering_asset_events": {}})
    with pytest.raises(CensusNoSyncSelectedError, match="this DAG run was not triggered by asset events; "):
        hook.select_syncs(manual)
    with pytest.raises(AirflowSkipException, match="this DAG run was not triggered by asset events; "):
        hook.select_syncs(manual, on_no_match="skip")
    assert hook.select_syncs(manual, on_no_match="empty") == []
    assert census_conn.requests == []


def syncs_reading(seed: dict[str, Any], tables: set[str]) -> set[int]:
    """The seeded syncs, not paused, whose source is one of the ``prod.analytics`` tables or the model of its name."""
    wanted = set()
    for sync in seed["sync_details"]:
        source = sync["source_attributes"]["object"]
        table = (source.get("table_catalog"), source.get("table_schema"), source.get("table_name"))
        reads_table = source["type"] == "table" and table[:2] == ("prod", "analytics") and table[2] in tables
        if not sync["paused"] and (reads_table or (source["type"] == "model" and source.get("name") in tables)):
            wanted.add(sync["id"])
    return wanted


def seed_two_models(census_conn: CensusEmulator) -> tuple[dict[str, Any], set[int]]:
    """A dbt team's workspace, and a sync of the staging copy of dim_users that must never be picked."""
    seed = census_conn.seed_post_dbt_workspace(models=6, syncs=24)
    staging = {"type": "table", "table_catalog": "staging", "table_schema": "analytics", "table_name": "dim_users"}
    census_conn.add_sync(RunScript(), "crm_staging_users", source=staging)
    return seed, syncs_reading(seed, {"dim_users", "fct_orders"})


@pytest.mark.parametrize("names_shown", [True, False], ids=["names-shown", "names-left-out"])
def test_select_syncs_picks_the_tables_and_models_of_the_events(
    hook: CensusHook, census_conn: CensusEmulator, names_shown: bool
) -> None:
    seed, expected = seed_two_models(census_conn)
    census_conn.sync_source_names = names_shown
    selection = selection_from_asset_events(airflow3_events(USERS_URI, ORDERS_URI))
    chosen = {sync.id for sync in hook.select_syncs(selection)}
    assert chosen == expected
    kinds = {s["source_attributes"]["object"]["type"] for s in seed["sync_details"] if s["id"] in chosen}
    assert kinds == {"model", "table"}
    tables_only = selection_from_asset_events(airflow3_events(USERS_URI, ORDERS_URI), match_models=False)
    table_syncs = {s["id"] for s in seed["sync_details"] if s["source_attributes"]["object"]["type"] == "table"}
    assert {sync.id for sync in hook.select_syncs(tables_only)} == expected & table_syncs


# -- the example DAG pair in real Airflow --


def sync_example_dags_unpaused(dag_id: str) -> None:
    """Put the example DAGs in the database and unpause ``dag_id``, as a deployment would before dbt runs.

    Airflow queues an asset-triggered run only for a DAG its database has, unpaused, when the
    asset event is recorded; Airflow 2.11 also records a dataset event only for a known dataset.
    """
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    if AIRFLOW_V_3_0_PLUS:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

        DagBundlesManager().sync_bundles_to_db()
        bag = BundleDagBag(dag_folder=str(EXAMPLE_DAGS), bundle_path=EXAMPLE_DAGS, bundle_name="dags-folder")
        sync_bag_to_db(bag, "dags-folder", None)
    else:
        from airflow.models.dagbag import DagBag

        DagBag(dag_folder=str(EXAMPLE_DAGS), include_examples=False).sync_to_db()
    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag_id).update({DagModel.is_paused: False})


def consumed_uris(dag_run: Any) -> list[str]:
    """The URIs of the asset (dataset) events the DAG run consumed, as the database holds them."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_run.dag_id, DagRun.run_id == dag_run.run_id).one()
        events = run.consumed_asset_events if AIRFLOW_V_3_0_PLUS else run.consumed_dataset_events
        return sorted((event.asset if AIRFLOW_V_3_0_PLUS else event.dataset).uri for event in events)


@pytest.fixture
def example_env(census_conn: CensusEmulator, airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> CensusEmulator:
    monkeypatch.setenv("CENSUS_EXAMPLE_POLL_INTERVAL", "0.1")
    return census_conn


def triggered_syncs(census_conn: CensusEmulator) -> list[int]:
    posts = [r.api_path for r in census_conn.requests if r.method == "POST"]
    assert all(path.startswith("/syncs/") and path.endswith("/trigger") for path in posts), posts
    return sorted(int(path.split("/")[2]) for path in posts)


def test_the_census_dag_runs_exactly_the_syncs_reading_the_rebuilt_models(
    example_env: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, expected = seed_two_models(example_env)
    sync_example_dags_unpaused(CENSUS_DAG)
    dbt_run = run_example_dag("dbt_build_models")
    assert task_states(dbt_run) == {("dbt_build", -1): "success"}
    run_id = schedule_asset_triggered_run(CENSUS_DAG)
    census_run = run_scheduled_run(example_dag(CENSUS_DAG), run_id, monkeypatch)
    assert census_run.run_id == run_id
    assert consumed_uris(census_run) == [USERS_URI, ORDERS_URI]
    assert xcom(census_run, "syncs_to_run") == sorted(expected)
    assert triggered_syncs(example_env) == sorted(expected)
    states = task_states(census_run)
    assert states.pop(("syncs_to_run", -1)) == "success"
    assert sorted(states.values()) == ["success"] * len(expected)
    assert str(census_run.state) == "success"


def test_the_one_task_census_dag_runs_exactly_the_syncs_reading_the_rebuilt_models(
    example_env: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``select=selection_from_asset_events`` as the docs show it: Airflow renders the task, the task calls it."""
    _, expected = seed_two_models(example_env)
    sync_example_dags_unpaused(ONE_TASK_CENSUS_DAG)
    run_example_dag("dbt_build_models")
    run_id = schedule_asset_triggered_run(ONE_TASK_CENSUS_DAG)
    census_run = run_scheduled_run(example_dag(ONE_TASK_CENSUS_DAG), run_id, monkeypatch)
    # Its first run also consumes the events of the dbt runs of earlier tests: each table still counts once.
    assert sorted(set(consumed_uris(census_run))) == [USERS_URI, ORDERS_URI]
    assert task_states(census_run) == {("census_syncs", -1): "success"}
    assert sorted(map(int, xcom(census_run, "census_syncs"))) == sorted(expected)
    assert triggered_syncs(example_env) == sorted(expected)


def test_a_manual_run_of_the_census_dag_skips_and_triggers_nothing(example_env: CensusEmulator) -> None:
    seed_two_models(example_env)
    dag_run = run_example_dag(CENSUS_DAG)
    assert task_states(dag_run) == {("syncs_to_run", -1): "skipped", ("census_sync", -1): "skipped"}
    assert triggered_syncs(example_env) == []


# -- the URIs the Cosmos how-to lists --

COSMOS_HOW_TO = EXAMPLE_DAGS.parent / "docs" / "how-to" / "cosmos.md"
PLACEHOLDERS = {"HOST": "warehouse.example.com", "PORT": "5432", "ACCOUNT": "xy12345.us-east-1.aws"}


def cosmos_uri_table() -> list[tuple[str, str]]:
    """Each warehouse row of the how-to's URI table: its Airflow 3 and Airflow 2 URI, placeholders filled in."""
    rows = []
    for line in COSMOS_HOW_TO.read_text().splitlines():
        uris = re.findall(r"`([a-z]+:?/[^`]*)`", line)
        if line.startswith("|") and len(uris) == 2:
            filled = [re.sub("|".join(PLACEHOLDERS), lambda m: PLACEHOLDERS[m.group(0)], uri) for uri in uris]
            rows.append((filled[0], filled[1]))
    return rows


def test_the_cosmos_how_to_lists_a_uri_per_warehouse_and_airflow_line() -> None:
    assert len(cosmos_uri_table()) == 5


@pytest.mark.parametrize(("airflow_3", "airflow_2"), cosmos_uri_table())
def test_each_uri_the_cosmos_how_to_lists_selects_its_table(airflow_3: str, airflow_2: str) -> None:
    (selector,) = table_selectors_from_uris([airflow_3])
    assert table_selectors_from_uris([airflow_2]) == [selector]
    assert selector.lower().endswith(".analytics.dim_users"), selector
