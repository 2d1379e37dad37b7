"""``CensusHook.select_syncs`` over real HTTP, on API V2 and v1: what it picks, what it asks Census."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_census.api.errors import CensusInputError, CensusNoSyncSelectedError
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.selectors import CensusSelectorError, parse_selection
from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.version_compat import AirflowSkipException

SEEDED = {52: "airtable_test", 60: "braze_test", 61: "braze_test"}
"""The emulator's seeded syncs and the model each reads; 61 writes Braze events, the others Braze users."""


def ids(syncs: list[object]) -> list[int]:
    return [sync.id for sync in syncs]  # type: ignore[attr-defined]


def test_labels_sources_and_destinations_select_in_census_order(hook: CensusHook, census_conn: CensusEmulator) -> None:
    crm = [census_conn.add_sync(RunScript(), label=label) for label in ("crm_users", "CRM_events", "finance")]
    assert ids(hook.select_syncs("label:crm_*")) == [crm[1], crm[0]]  # newest first, as Census lists
    assert ids(hook.select_syncs(["source:airtable_*", "label:finance"])) == [crm[2], 52]
    assert ids(hook.select_syncs("destination:braze/event")) == [61]
    assert ids(hook.select_syncs("destination:Braze", exclude=["label:crm_*", "label:finance"])) == [61, 60, 52]


def test_ids_alone_read_just_those_syncs(hook: CensusHook, census_conn: CensusEmulator) -> None:
    assert ids(hook.select_syncs([61, "id:52"])) == [61, 52]
    assert census_conn.requests_for("GET", "/syncs") == []
    assert sorted(r.api_path for r in census_conn.requests if r.method == "GET") == ["/syncs/52", "/syncs/61"]


def test_every_page_is_read(hook: CensusHook, census_conn: CensusEmulator) -> None:
    bulk = [census_conn.add_sync(RunScript(), label=f"bulk_{n:03}") for n in range(105)]
    assert sorted(ids(hook.select_syncs("label:bulk_*"))) == bulk
    assert len(census_conn.requests_for("GET", "/syncs")) == 2


def test_destinations_are_listed_only_when_a_selector_needs_them(hook: CensusHook, census_conn: CensusEmulator) -> None:
    hook.select_syncs(["source:braze_test", "destination:*/user"])
    listed = {r.api_path for r in census_conn.requests if r.method == "GET"}
    assert listed == {"/syncs"}
    hook.select_syncs("destination:braze")
    more = {r.api_path for r in census_conn.requests if r.method == "GET"} - listed
    assert more in ({"/activations"}, {"/destinations"})


def test_an_exclude_that_matches_nothing_is_reported(hook: CensusHook, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="airflow_provider_census.hooks.selection"):
        assert ids(hook.select_syncs("source:braze_test", exclude=["label:braze tset*", "61"])) == [60]
    assert "exclude label:braze tset* matched no sync" in caplog.text


def test_paused_syncs_are_left_out_unless_asked_for(
    hook: CensusHook, census_conn: CensusEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    going, paused = (census_conn.add_sync(RunScript(), label=label) for label in ("crm_live", "crm_paused"))
    hook.update_sync(paused, {"paused": True})
    with caplog.at_level(logging.INFO, logger="airflow_provider_census.hooks.selection"):
        assert ids(hook.select_syncs("label:crm_*")) == [going]
    assert f"{paused} (crm_paused)" in caplog.text and "include_paused=True" in caplog.text
    assert ids(hook.select_syncs("label:crm_*", include_paused=True)) == [paused, going]
    with pytest.raises(CensusNoSyncSelectedError, match=r"only paused syncs .*crm_paused.*include_paused=True"):
        hook.select_syncs("label:crm_paused")


def test_nothing_selected_fails_skips_or_is_empty_as_asked(hook: CensusHook) -> None:
    with pytest.raises(CensusNoSyncSelectedError, match=r"label:crm_\* matched none of the 3 syncs"):
        hook.select_syncs("label:crm_*")
    with pytest.raises(CensusNoSyncSelectedError, match="exclude list removed them all"):
        hook.select_syncs("source:braze_test", exclude="destination:*")
    with pytest.raises(AirflowSkipException, match="matched none"):
        hook.select_syncs("label:crm_*", on_no_match="skip")
    assert hook.select_syncs("label:crm_*", on_no_match="empty") == []


def test_bad_arguments_fail_before_any_request(hook: CensusHook, census_conn: CensusEmulator) -> None:
    with pytest.raises(CensusSelectorError, match="did you mean label:"):
        hook.select_syncs("lable:crm_*")
    with pytest.raises(CensusInputError, match="on_no_match must be one of fail, skip, empty, got 'ignore'"):
        hook.select_syncs("label:crm_*", on_no_match="ignore")
    assert census_conn.requests == []


def test_a_selection_parsed_in_the_dag_file_is_taken_as_is(hook: CensusHook, census_conn: CensusEmulator) -> None:
    new, old = (census_conn.add_sync(RunScript(), label=label) for label in ("crm_new", "crm_old"))
    selection = parse_selection(["label:crm_*"], exclude=["label:crm_old"])
    assert ids(hook.select_syncs(selection)) == [new]
    with pytest.raises(CensusInputError, match="Pass exclude to parse_selection"):
        hook.select_syncs(selection, exclude=[old])


# -- a data team's workspace: 80 syncs over 30 dbt models, tables, segments and datasets --


def expected_ids(seed: dict[str, Any], wanted: Callable[[dict[str, Any]], bool]) -> set[int]:
    """The seeded syncs, not paused, whose stored attributes (names included) ``wanted`` accepts."""
    return {sync["id"] for sync in seed["sync_details"] if not sync["paused"] and wanted(sync)}


def reads(sync: dict[str, Any], *, name: str | None = None, table: tuple[str, ...] | None = None) -> bool:
    source = sync["source_attributes"]["object"]
    if table is not None:
        parts = (source.get("table_catalog"), source.get("table_schema"), source.get("table_name"))
        return source["type"] == "table" and parts[-len(table) :] == table
    return source.get("name") == name or (source["type"] == "table" and source.get("table_name") == name)


@pytest.mark.parametrize("names_shown", [True, False], ids=["names-shown", "names-left-out"])
def test_a_data_teams_workspace_selects_by_model_table_and_destination(
    hook: CensusHook, census_conn: CensusEmulator, names_shown: bool
) -> None:
    """Where sync answers give a model's id alone, its name is looked up once per model, never per sync."""
    seed = census_conn.seed_post_dbt_workspace(models=30, syncs=80)
    census_conn.sync_source_names = names_shown

    def named_or_looked_up(sync: dict[str, Any]) -> bool:
        """Segments and datasets are matched by name only when Census names them (models are looked up)."""
        return names_shown or sync["source_attributes"]["object"]["type"] in ("model", "table")

    chosen = set(ids(hook.select_syncs("source:dim_users")))
    assert chosen == expected_ids(seed, lambda s: named_or_looked_up(s) and reads(s, name="dim_users"))
    assert len(chosen) >= 3
    lookups = [r.api_path for r in census_conn.requests if "/models/" in r.api_path]
    if names_shown:
        assert lookups == []
    else:
        assert lookups and len(lookups) == len(set(lookups))  # each model once, however many syncs read it
    assert set(ids(hook.select_syncs("source:prod.analytics.dim_users"))) == expected_ids(
        seed, lambda s: reads(s, table=("prod", "analytics", "dim_users"))
    )
    salesforce_contacts = expected_ids(
        seed,
        lambda s: (
            s["destination_attributes"]["connection_id"] == seed["destinations"]["salesforce"]
            and s["destination_attributes"]["object"] == "Contact"
        ),
    )
    assert set(ids(hook.select_syncs("destination:salesforce/contact"))) == salesforce_contacts != set()
    every_crm = set(ids(hook.select_syncs("label:crm_*", include_paused=True)))
    assert set(seed["paused"]) & every_crm and every_crm == {
        sync_id for label, sync_id in seed["syncs"].items() if label.startswith("crm_")
    }


def test_many_ids_are_read_a_few_at_a_time_in_the_order_named(hook: CensusHook, census_conn: CensusEmulator) -> None:
    ids = [census_conn.add_sync(RunScript()) for _ in range(12)]
    named = list(reversed(ids))
    census_conn.fail_next("latency", count=12, method="GET", path_prefix="/syncs/", latency=0.3)  # reads overlap
    assert [sync.id for sync in hook.select_syncs([str(sync_id) for sync_id in named])] == named
    reads = [r for r in census_conn.requests_for("GET") if r.api_path.startswith("/syncs/")]
    assert len(reads) == 12
    in_flight = [sum(1 for other in reads if other.started_at <= read.started_at < other.finished_at) for read in reads]
    assert 1 < max(in_flight) <= 8, in_flight
