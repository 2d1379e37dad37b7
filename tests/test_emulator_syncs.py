"""The emulator as a workspace of many syncs, over real HTTP on API v1 and V2.

What a sync selector reads (a sync's label, its source model, table, segment or dataset,
its destination connection and object, whether it is paused) must come back from
``GET /syncs`` and ``GET /syncs/{id}`` as Census shows it, page by page, so that the
selector can be tested against it. Most tests here run once per API version through the
``census_conn`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.testing.errors import ApiError
from airflow_provider_census.testing.seeds import model_names

SEED_SYNC_IDS = [52, 60, 61]
FAST = RunScript(queued_polls=0, working_polls=0)


class Api:
    """One API version of an emulator, spoken to with ``requests`` (V2 with the group)."""

    def __init__(self, emulator: CensusEmulator, version: str) -> None:
        self.emulator = emulator
        self.version = version
        self.base = emulator.api_base_url(version)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {emulator.token_for(version)}"
        self.group = {"group_id": emulator.group_id} if version == "v2" else {}

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.base + path, params={**self.group, **params}, timeout=10)

    def data(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success"
        return body["data"]

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(self.base + path, timeout=10, **kwargs)

    def patch(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.http.patch(self.base + path, json=body, timeout=10)

    def destination_id(self, v1_id: int) -> int | str:
        """How this version names a destination connection: v1's integer, V2's activation id."""
        return v1_id if self.version == "v1" else self.emulator.workspace.catalog.activation_id(v1_id)

    def all_syncs(self, **params: Any) -> list[dict[str, Any]]:
        """Every sync, page after page, following ``next`` to the end."""
        body = self.get("/syncs", **params).json()
        syncs = list(body["data"])
        while body["next"] is not None:
            body = self.http.get(body["next"], timeout=10).json()
            syncs += body["data"]
        return syncs


@pytest.fixture
def api(census_conn: CensusEmulator, census_api_version: str) -> Iterator[Api]:
    client = Api(census_conn, census_api_version)
    yield client
    client.http.close()


@pytest.fixture
def seeded(census_conn: CensusEmulator) -> dict[str, Any]:
    return census_conn.seed_post_dbt_workspace()


# -- models and tables ---------------------------------------------------------------------


def test_added_models_and_tables_are_served(api: Api, census_conn: CensusEmulator) -> None:
    model_id = census_conn.add_model("dim_users", query="select * from prod.analytics.dim_users")
    other_id = census_conn.add_model("fct_orders", source_id=10, columns=[("ORDER_ID", "text"), ("EMAIL", "text")])
    table_id = census_conn.add_table("dim_users", catalog="prod", schema="analytics")
    assert model_id > 18 and other_id == model_id + 1  # above the seed's models 3, 15, 18
    assert table_id == 3  # the seed's one table is 2
    listed = api.data("/sources/4/models", order="asc")
    assert [model["id"] for model in listed] == [3, 15, 18, model_id]
    assert "columns" not in listed[-1]
    model = api.data(f"/sources/4/models/{model_id}")
    assert (model["type"], model["name"], model["query"]) == (
        "model",
        "dim_users",
        "select * from prod.analytics.dim_users",
    )
    assert [column["name"] for column in model["columns"]] == ["ID", "EMAIL"]
    assert [m["name"] for m in api.data("/sources/10/models")] == ["fct_orders"]
    assert api.data(f"/sources/10/models/{other_id}")["columns"][0] == {"name": "ORDER_ID", "type": "text"}
    assert api.get(f"/sources/4/models/{other_id}").status_code == 404  # in source 10, not 4
    table = api.data(f"/sources/4/tables/{table_id}")
    assert {key: table[key] for key in ("type", "id", "table_catalog", "table_schema", "table_name")} == {
        "type": "table",
        "id": table_id,
        "table_catalog": "prod",
        "table_schema": "analytics",
        "table_name": "dim_users",
    }
    kinds = [(item["type"], item["id"]) for item in api.data("/sources/4")["data_sources"]]
    assert ("table", table_id) in kinds and ("model", model_id) in kinds
    objects = [(item["type"], item["id"]) for item in api.data("/sources/4/objects", per_page=100)]
    assert ("model", model_id) in objects


def test_adding_refuses_duplicates_and_unknown_sources(census_emulator: CensusEmulator) -> None:
    census_emulator.add_model("dim_users")
    with pytest.raises(ValueError, match="already has a model named 'dim_users'"):
        census_emulator.add_model("dim_users")
    census_emulator.add_model("dim_users", source_id=10)  # another source may have one
    census_emulator.add_table("dim_users")
    census_emulator.add_table("dim_users", catalog="staging")
    with pytest.raises(ValueError, match=r"prod\.analytics\.dim_users"):
        census_emulator.add_table("dim_users")
    for add in (
        lambda: census_emulator.add_model("x", source_id=99),
        lambda: census_emulator.add_table("x", source_id=99),
        lambda: census_emulator.add_dataset("x", source_id=99),
        lambda: census_emulator.add_segment("x", source_id=99),
    ):
        with pytest.raises(ValueError, match="no source 99"):
            add()
    with pytest.raises(ValueError, match="no model 999"):
        census_emulator.add_segment("x", model_id=999)


def test_segments_and_datasets_are_served(api: Api, census_conn: CensusEmulator) -> None:
    dataset_id = census_conn.add_dataset("customer_360")
    model_id = census_conn.add_model("dim_users")
    over_dataset = census_conn.add_segment("high_value_users", dataset_id=dataset_id)
    over_model = census_conn.add_segment("trial_users", model_id=model_id)
    segments = api.data("/sources/4/filter_segments", order="asc")
    assert [(s["type"], s["id"], s["name"]) for s in segments] == [
        ("segment", over_dataset, "high_value_users"),
        ("segment", over_model, "trial_users"),
    ]
    assert api.data(f"/sources/4/filter_segments/{over_model}")["model_id"] == model_id
    assert api.data(f"/sources/4/filter_segments/{over_dataset}")["dataset_id"] == dataset_id
    assert api.get("/sources/10/filter_segments/1").status_code == 404
    datasets = api.data("/datasets")
    assert [(d["id"], d["name"], d["source_id"]) for d in datasets] == [(dataset_id, "customer_360", 4)]
    assert api.data(f"/datasets/{dataset_id}")["columns"]
    assert api.get("/datasets/77").status_code == 404


# -- syncs from each kind of source ----------------------------------------------------------


def test_add_sync_keeps_its_old_form(api: Api, census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(FAST, label="old style")
    also = census_conn.add_sync(label="keyword only")
    for made in (sync_id, also):
        sync = api.data(f"/syncs/{made}")
        assert sync["source_attributes"] == {
            "connection_id": 4,
            "object": {"type": "model", "id": 15, "name": "braze_test"},
        }
        assert sync["destination_attributes"] == {"connection_id": api.destination_id(15), "object": "user"}
        assert (sync["paused"], sync["operation"]) == (False, "upsert")
    assert api.data(f"/syncs/{sync_id}")["label"] == "old style"
    run_id = census_conn.trigger(sync_id)
    assert census_conn.run(run_id)["sync_id"] == sync_id


def test_syncs_from_each_kind_of_source(api: Api, census_conn: CensusEmulator) -> None:
    model_id = census_conn.add_model("dim_users")
    prod = census_conn.add_table("dim_users", catalog="prod", schema="analytics")
    staging = census_conn.add_table("dim_users", catalog="staging", schema="analytics")
    bigquery = census_conn.add_table("fct_events", source_id=10, catalog="prod", schema="analytics")
    dataset_id = census_conn.add_dataset("customer_360")
    segment_id = census_conn.add_segment("high_value_users", dataset_id=dataset_id)
    hubspot = {"connection_id": 14, "object": "contact"}
    made = {
        "model": census_conn.add_sync(label="crm_users_to_hubspot", source={"type": "model", "name": "dim_users"}),
        "model by id": census_conn.add_sync(source={"connection_id": 4, "object": {"type": "model", "id": model_id}}),
        "staging table": census_conn.add_sync(
            source={
                "type": "table",
                "table_catalog": "staging",
                "table_schema": "analytics",
                "table_name": "dim_users",
            },
            destination=hubspot,
        ),
        "bigquery table": census_conn.add_sync(
            source={"connection_id": 10, "type": "table", "table_name": "fct_events"},
            destination={"connection_id": "google-sheets", "object": "sheet"},
            operation="mirror",
        ),
        "segment": census_conn.add_sync(
            source={"type": "segment", "name": "high_value_users"},
            destination={"connection_id": "glimmering_donkey", "object": "event"},  # V2's name for Braze
            operation="append",
        ),
        "dataset": census_conn.add_sync(source={"type": "dataset", "id": dataset_id}, destination=hubspot),
    }
    expected_sources = {
        "model": {"connection_id": 4, "object": {"type": "model", "id": model_id, "name": "dim_users"}},
        "model by id": {"connection_id": 4, "object": {"type": "model", "id": model_id, "name": "dim_users"}},
        "staging table": {
            "connection_id": 4,
            "object": {
                "type": "table",
                "id": staging,
                "table_catalog": "staging",
                "table_schema": "analytics",
                "table_name": "dim_users",
            },
        },
        "bigquery table": {
            "connection_id": 10,
            "object": {
                "type": "table",
                "id": bigquery,
                "table_catalog": "prod",
                "table_schema": "analytics",
                "table_name": "fct_events",
            },
        },
        "segment": {"connection_id": 4, "object": {"type": "segment", "id": segment_id, "name": "high_value_users"}},
        "dataset": {"connection_id": 4, "object": {"type": "dataset", "id": dataset_id, "name": "customer_360"}},
    }
    expected_destinations = {
        "model": (15, "user"),
        "model by id": (15, "user"),
        "staging table": (14, "contact"),
        "bigquery table": (12, "sheet"),
        "segment": (15, "event"),
        "dataset": (14, "contact"),
    }
    listed = {sync["id"]: sync for sync in api.all_syncs(per_page=100)}
    for kind, sync_id in made.items():
        one = api.data(f"/syncs/{sync_id}")
        assert one["source_attributes"] == expected_sources[kind], kind
        connection, obj = expected_destinations[kind]
        assert one["destination_attributes"] == {"connection_id": api.destination_id(connection), "object": obj}
        assert listed[sync_id] == one
    assert api.data(f"/syncs/{made['bigquery table']}")["operation"] == "mirror"
    assert prod not in (staging, bigquery)
    # The staging sync's mapping goes to HubSpot's key field, not Braze's.
    assert [m["to"] for m in api.data(f"/syncs/{made['staging table']}")["mappings"]] == ["email"]


def test_add_sync_refuses_what_census_would(census_emulator: CensusEmulator) -> None:
    census_emulator.add_table("dim_users", catalog="prod")
    census_emulator.add_table("dim_users", catalog="staging")
    refused = {
        "not found in source 4": {"source": {"type": "model", "name": "dim_nobody"}},
        "matches 2 objects": {"source": {"type": "table", "table_name": "dim_users"}},
        "Segment 5": {"source": {"type": "segment", "id": 5}},
        "Dataset 'gone'": {"source": {"type": "dataset", "name": "gone"}},
        "Destination object 'ticket'": {"destination": {"connection_id": 15, "object": "ticket"}},
        "connection 'nowhere' not found": {"destination": {"connection_id": "nowhere", "object": "user"}},
        "operation must be one of": {"operation": "merge"},
        "object.type must be one of": {"source": {"type": "view"}},
    }
    for message, arguments in refused.items():
        with pytest.raises(ValueError, match=message):
            census_emulator.add_sync(**arguments)
    before = len(census_emulator.workspace.list_syncs())
    assert before == len(SEED_SYNC_IDS)


def test_post_syncs_checks_segments_datasets_and_whole_table_names(api: Api, census_conn: CensusEmulator) -> None:
    census_conn.add_table("dim_users", catalog="prod")
    staging = census_conn.add_table("dim_users", catalog="staging")
    segment_id = census_conn.add_segment("trial_users", model_id=15)

    def create(source_object: dict[str, Any]) -> requests.Response:
        body = {
            "operation": "upsert",
            "source_attributes": {"connection_id": 4, "object": source_object},
            "destination_attributes": {"connection_id": api.destination_id(15), "object": "user"},
            "mappings": [{"from": {"type": "column", "data": "EMAIL"}, "to": "external_id"}],
        }
        return api.post("/syncs", params=api.group, json=body)

    assert create({"type": "segment", "id": segment_id + 1}).status_code == 422
    assert create({"type": "dataset", "id": 1}).status_code == 422
    ambiguous = create({"type": "table", "table_name": "dim_users"})
    assert ambiguous.status_code == 422 and "give its id" in ambiguous.json()["message"]
    whole = create(
        {"type": "table", "table_catalog": "staging", "table_schema": "analytics", "table_name": "dim_users"}
    )
    assert whole.status_code == 201, whole.text
    sync = api.data(f"/syncs/{whole.json()['data']['sync_id']}")
    assert sync["source_attributes"]["object"]["id"] == staging
    by_segment = create({"type": "segment", "name": "trial_users"})
    assert by_segment.status_code == 201
    shown = api.data(f"/syncs/{by_segment.json()['data']['sync_id']}")["source_attributes"]["object"]
    assert shown == {"type": "segment", "id": segment_id, "name": "trial_users"}


# -- names left out ----------------------------------------------------------------------------


def test_sync_answers_can_leave_source_names_out(api: Api, census_conn: CensusEmulator) -> None:
    model_id = census_conn.add_model("dim_users")
    table_id = census_conn.add_table("dim_users")
    segment_id = census_conn.add_segment("trial_users", model_id=model_id)
    dataset_id = census_conn.add_dataset("customer_360")
    made = {
        "model": census_conn.add_sync(source={"type": "model", "name": "dim_users"}),
        "table": census_conn.add_sync(source={"type": "table", "id": table_id}),
        "segment": census_conn.add_sync(source={"type": "segment", "id": segment_id}),
        "dataset": census_conn.add_sync(source={"type": "dataset", "id": dataset_id}),
    }
    assert census_conn.sync_source_names is True
    assert api.data(f"/syncs/{made['model']}")["source_attributes"]["object"]["name"] == "dim_users"
    census_conn.sync_source_names = False
    answers = {kind: api.data(f"/syncs/{sync_id}")["source_attributes"]["object"] for kind, sync_id in made.items()}
    assert answers["model"] == {"type": "model", "id": model_id}
    assert answers["segment"] == {"type": "segment", "id": segment_id}
    assert answers["dataset"] == {"type": "dataset", "id": dataset_id}
    assert answers["table"]["table_name"] == "dim_users" and answers["table"]["table_catalog"] == "prod"
    listed = {sync["id"]: sync for sync in api.all_syncs(per_page=100)}
    assert listed[made["model"]]["source_attributes"]["object"] == {"type": "model", "id": model_id}
    assert listed[60]["source_attributes"]["object"] == {"type": "model", "id": 15}  # the seed's syncs too
    patched = api.patch(f"/syncs/{made['model']}", {"label": "renamed"})
    assert patched.json()["data"]["source_attributes"]["object"] == {"type": "model", "id": model_id}
    # The client learns the names by looking the objects up.
    assert api.data(f"/sources/4/models/{answers['model']['id']}")["name"] == "dim_users"
    assert api.data(f"/sources/4/filter_segments/{answers['segment']['id']}")["name"] == "trial_users"
    assert api.data(f"/datasets/{answers['dataset']['id']}")["name"] == "customer_360"
    # What is stored keeps the names, so turning them back on shows them again.
    assert census_conn.workspace.stored_sync(made["model"])["source_attributes"]["object"]["name"] == "dim_users"
    census_conn.sync_source_names = True
    assert api.data(f"/syncs/{made['model']}")["source_attributes"]["object"]["name"] == "dim_users"


def test_names_left_out_from_the_start() -> None:
    with CensusEmulator(sync_source_names=False) as emulator:
        made = emulator.seed_post_dbt_workspace(models=5, syncs=12)
        for version in emulator.api_versions:
            api = Api(emulator, version)
            for sync in api.all_syncs(per_page=5):
                obj = sync["source_attributes"]["object"]
                assert "name" not in obj
                if obj["type"] == "table":
                    assert {"table_catalog", "table_schema", "table_name"} <= set(obj)
            detail = next(d for d in made["sync_details"] if d["source_attributes"]["object"]["type"] == "model")
            model = detail["source_attributes"]["object"]
            assert api.data(f"/sources/4/models/{model['id']}")["name"] == model["name"]


# -- paused -------------------------------------------------------------------------------------


def test_paused_syncs_say_so(api: Api, census_conn: CensusEmulator) -> None:
    paused = census_conn.add_sync(label="paused one", paused=True)
    running = census_conn.add_sync(label="running one")
    assert api.data(f"/syncs/{paused}")["paused"] is True
    assert api.data(f"/syncs/{running}")["paused"] is False
    flags = {sync["id"]: sync["paused"] for sync in api.all_syncs()}
    assert flags == {52: False, 60: False, 61: False, paused: True, running: False}
    assert api.patch(f"/syncs/{paused}", {"paused": False}).status_code == 200
    assert api.data(f"/syncs/{paused}")["paused"] is False


def test_a_paused_sync_runs_when_triggered_by_default(api: Api, census_conn: CensusEmulator) -> None:
    assert census_conn.refuse_paused_triggers is False
    sync_id = census_conn.add_sync(FAST, paused=True)
    answer = api.post(f"/syncs/{sync_id}/trigger")
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["data"]["sync_run_id"]
    assert census_conn.run(run_id)["sync_id"] == sync_id


def test_triggering_a_paused_sync_can_be_refused(api: Api, census_conn: CensusEmulator) -> None:
    census_conn.refuse_paused_triggers = True
    sync_id = census_conn.add_sync(FAST, paused=True)
    refused = api.post(f"/syncs/{sync_id}/trigger", params={"force_full_sync": "true"})
    assert refused.status_code == 422
    assert refused.json()["status"] == "error"
    assert f"Sync {sync_id} is paused" in refused.json()["message"]
    assert census_conn.runs_of(sync_id) == []
    with pytest.raises(ApiError, match="is paused"):
        census_conn.trigger(sync_id)
    assert api.post("/syncs/60/trigger").status_code == 200  # syncs that are not paused still run
    assert api.patch(f"/syncs/{sync_id}", {"paused": False}).status_code == 200
    answer = api.post(f"/syncs/{sync_id}/trigger")
    assert answer.status_code == 200, answer.text
    assert [run["id"] for run in census_conn.runs_of(sync_id)] == [answer.json()["data"]["sync_run_id"]]


def test_refusing_paused_triggers_from_the_constructor() -> None:
    with CensusEmulator(refuse_paused_triggers=True) as emulator:
        sync_id = emulator.add_sync(paused=True)
        assert emulator.refuse_paused_triggers is True
        assert Api(emulator, "v1").post(f"/syncs/{sync_id}/trigger").status_code == 422


# -- paging ------------------------------------------------------------------------------------


def test_syncs_page_to_the_end(api: Api, seeded: dict[str, Any]) -> None:
    every_id = sorted([*SEED_SYNC_IDS, *seeded["syncs"].values()])
    assert len(every_id) == 83
    first = api.get("/syncs").json()
    assert first["pagination"] == {
        "total_records": 83,
        "per_page": 25,
        "prev_page": None,
        "page": 1,
        "next_page": 2,
        "last_page": 4,
    }
    assert first["next"].startswith(api.base + "/syncs?")
    if api.version == "v2":
        assert f"group_id={api.emulator.group_id}" in first["next"]
    pages = [first]
    while pages[-1]["next"] is not None:
        pages.append(api.http.get(pages[-1]["next"], timeout=10).json())
    assert [page["pagination"]["page"] for page in pages] == [1, 2, 3, 4]
    assert [len(page["data"]) for page in pages] == [25, 25, 25, 8]
    assert pages[-1]["pagination"]["next_page"] is None and pages[-1]["pagination"]["prev_page"] == 3
    walked = [sync["id"] for page in pages for sync in page["data"]]
    assert walked == list(reversed(every_id))  # newest first by default
    ascending = api.all_syncs(order="asc", per_page=30)
    assert [sync["id"] for sync in ascending] == every_id
    by_number = [sync["id"] for page in (1, 2) for sync in api.data("/syncs", page=page, per_page=50, order="asc")]
    assert by_number == every_id
    assert api.data("/syncs", page=5) == []
    assert len(api.data("/syncs", per_page=500)) == 83  # clamped to 100 per page


def test_v2_syncs_page_without_a_group_too(census_emulator: CensusEmulator) -> None:
    census_emulator.seed_post_dbt_workspace()
    api = Api(census_emulator, "v2")
    api.group = {}
    body = api.get("/syncs", per_page=40).json()
    assert body["pagination"]["last_page"] == 3
    assert "group_id" not in body["next"]
    assert len(api.all_syncs(per_page=40)) == 83


# -- one workspace per emulator -----------------------------------------------------------------


def test_each_emulator_has_its_own_catalog() -> None:
    with CensusEmulator() as first, CensusEmulator() as second:
        first.add_model("dim_users")
        first.add_table("dim_users")
        first.add_segment("trial_users", model_id=15)
        first.add_dataset("customer_360")
        first.add_destination("Salesforce", ["Contact"], slug="salesforce")
        first.add_sync(source={"type": "model", "name": "dim_users"})
        for emulator, models, tables in ((first, 4, 2), (second, 3, 1)):
            api = Api(emulator, "v1")
            assert len(api.data("/sources/4/models")) == models
            assert len(api.data("/sources/4/tables")) == tables
            assert len(api.data("/destinations")) == (5 if emulator is first else 4)
        second_api = Api(second, "v1")
        assert second_api.data("/sources/4/filter_segments") == []
        assert second_api.data("/datasets") == []
        with pytest.raises(ValueError, match="dim_users"):
            second.add_sync(source={"type": "model", "name": "dim_users"})
        assert second.add_model("dim_users") == first.workspace.catalog.models(4)[-1]["id"]  # same ids, apart
    with CensusEmulator() as later:
        assert [model["name"] for model in later.workspace.catalog.models(4)] == [
            "google_ads_test",
            "braze_test",
            "airtable_test",
        ]
        assert later.workspace.catalog.destination("salesforce") is None


def test_a_second_seed_of_one_emulator_is_refused(census_emulator: CensusEmulator) -> None:
    census_emulator.seed_post_dbt_workspace(models=3, syncs=3)
    with pytest.raises(ValueError, match="already"):
        census_emulator.seed_post_dbt_workspace(models=3, syncs=3)


# -- the post-dbt workspace ---------------------------------------------------------------------


def test_post_dbt_workspace_shape(api: Api, census_conn: CensusEmulator, seeded: dict[str, Any]) -> None:
    assert list(seeded["models"]) == model_names(30)
    assert seeded["models"]["dim_users"] == 19 and list(seeded["models"])[:2] == ["dim_users", "fct_orders"]
    assert all(name.startswith(("dim_", "fct_")) for name in seeded["models"])
    assert len(seeded["syncs"]) == 80 and len(set(seeded["syncs"].values())) == 80
    assert len(seeded["paused"]) == 11
    assert set(seeded["tables"]) == {
        "prod.analytics.dim_users",
        "prod.analytics.fct_orders",
        "prod.analytics.dim_accounts",
        "staging.analytics.dim_users",
        "bigquery:prod.analytics.fct_events",
    }
    details = {detail["id"]: detail for detail in seeded["sync_details"]}
    kinds = {detail["source_attributes"]["object"]["type"] for detail in details.values()}
    assert kinds == {"model", "table", "segment", "dataset"}
    connections = {detail["destination_attributes"]["connection_id"] for detail in details.values()}
    assert connections == {6, 12, 14, 15, seeded["destinations"]["salesforce"]}
    objects = {detail["destination_attributes"]["object"] for detail in details.values()}
    assert {"Contact", "Lead", "Account", "contact", "company", "user", "event", "user_data", "sheet"} == objects
    crm_users = api.data(f"/syncs/{seeded['syncs']['crm_users_to_salesforce']}")
    assert crm_users["source_attributes"] == {
        "connection_id": 4,
        "object": {"type": "model", "id": seeded["models"]["dim_users"], "name": "dim_users"},
    }
    salesforce = "steady_harbor" if api.version == "v2" else seeded["destinations"]["salesforce"]
    assert crm_users["destination_attributes"] == {"connection_id": salesforce, "object": "Contact"}
    # What the API shows agrees with what the seed says it made, sync by sync.
    listed = {sync["id"]: sync for sync in api.all_syncs(per_page=100)}
    for sync_id, detail in details.items():
        shown = listed[sync_id]
        assert shown["label"] == detail["label"]
        assert shown["paused"] is (sync_id in seeded["paused"]) is detail["paused"]
        assert shown["source_attributes"] == detail["source_attributes"]
        destination = detail["destination_attributes"]
        connection = api.destination_id(destination["connection_id"])
        assert shown["destination_attributes"] == {"connection_id": connection, "object": destination["object"]}
    # dim_users is read by several syncs: as a model, and as tables in two catalogs.
    reading_dim_users = [
        detail["label"]
        for detail in details.values()
        if detail["source_attributes"]["object"].get("name") == "dim_users"
        or detail["source_attributes"]["object"].get("table_name") == "dim_users"
    ]
    assert sorted(reading_dim_users) == [
        "crm_prod_users_to_salesforce_lead",
        "crm_staging_users_to_hubspot_company",
        "crm_users_to_hubspot_company",
        "crm_users_to_salesforce",
        "crm_users_to_salesforce_lead",
        "report_prod_users_to_google_sheets",
    ]
    # The Salesforce destination is served as the others are.
    destinations = api.data("/destinations" if api.version == "v1" else "/activations")
    assert "Salesforce Production" in {destination["name"] for destination in destinations}
    path = "/destinations" if api.version == "v1" else "/activations"
    assert [obj["full_name"] for obj in api.data(f"{path}/{salesforce}/objects", order="asc")] == [
        "Contact",
        "Lead",
        "Account",
    ]
    assert "salesforce" in {
        kind["service_name"] for kind in api.data("/connectors" if api.version == "v1" else "/activation_types")
    }


def test_post_dbt_workspace_is_deterministic_and_sized_by_its_arguments() -> None:
    with CensusEmulator() as one, CensusEmulator() as two:
        assert one.seed_post_dbt_workspace() == two.seed_post_dbt_workspace()
    with CensusEmulator() as small:
        made = small.seed_post_dbt_workspace(models=45, syncs=120)
        assert len(made["models"]) == 45 and list(made["models"])[-1] == "fct_metric_045"
        assert len(made["syncs"]) == 120 and len(small.workspace.list_syncs()) == 123
    with CensusEmulator() as empty, pytest.raises(ValueError, match="at least one model"):
        empty.seed_post_dbt_workspace(models=0)


def test_seeded_syncs_run(api: Api, census_conn: CensusEmulator, seeded: dict[str, Any]) -> None:
    running = next(sync_id for sync_id in seeded["syncs"].values() if sync_id not in seeded["paused"])
    census_conn.script_sync(running, FAST)
    answer = api.post(f"/syncs/{running}/trigger")
    assert answer.status_code == 200, answer.text
    run = api.data(f"/sync_runs/{answer.json()['data']['sync_run_id']}")
    assert (run["sync_id"], run["status"]) == (running, "completed")


def test_a_sync_can_take_the_id_a_dag_names(census_emulator: CensusEmulator) -> None:
    assert census_emulator.add_sync(sync_id=1234) == 1234
    assert census_emulator.add_sync() == 1235, "the next sync takes the next free id"
    with pytest.raises(ValueError, match="sync id 1234 is taken"):
        census_emulator.add_sync(sync_id=1234)
