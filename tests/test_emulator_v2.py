"""Tests of the emulator's API V2 (Activations) beside v1, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_census.testing import DEFAULT_GROUP_ID, DEFAULT_PAT, CensusEmulator, FaultProfile, RunScript
from tests import emulator_cli

pytest_plugins = ["pytester"]

TOKEN = "secret-token:v1-key-4821"
PAT = "pat:v2-token-9137"
GROUP = "projected_sickle"
BRAZE = "glimmering_donkey"
BARE_404 = {"status": 404}
FAST = RunScript(queued_polls=0, working_polls=0)


@pytest.fixture
def emu() -> Iterator[CensusEmulator]:
    with CensusEmulator(token=TOKEN, pat=PAT, group_id=GROUP) as emulator:
        yield emulator


def session(token: str) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    return http


@pytest.fixture
def v1(emu: CensusEmulator) -> Iterator[requests.Session]:
    with session(TOKEN) as http:
        yield http


@pytest.fixture
def v2(emu: CensusEmulator) -> Iterator[requests.Session]:
    with session(PAT) as http:
        yield http


def at(emu: CensusEmulator, version: str, path: str) -> str:
    return emu.api_base_url(version) + path


def data(response: requests.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    body = response.json()
    assert body["status"] in ("success", "created", "updated")
    return body["data"]


def create_body(connection_id: object) -> dict[str, Any]:
    return {
        "label": "Users to Braze via V2",
        "operation": "upsert",
        "source_attributes": {"connection_id": 4, "object": {"type": "model", "id": 15}},
        "destination_attributes": {"connection_id": connection_id, "object": "user"},
        "mappings": [{"from": {"type": "column", "data": "EMAIL"}, "to": "external_id"}],
    }


# -- construction, base URLs and tokens -------------------------------------------------------


def test_base_urls_tokens_and_defaults() -> None:
    with CensusEmulator() as emulator:
        origin = f"http://127.0.0.1:{emulator.port}"
        assert emulator.api_base_url("v1") == origin + "/api/v1"
        assert emulator.api_base_url("v2") == origin + "/api/v2"
        assert emulator.base_url == origin + "/api/v1"
        assert emulator.token_for("v1") == "secret-token:emulator"
        assert emulator.token_for("v2") == DEFAULT_PAT
        assert emulator.group_id == DEFAULT_GROUP_ID == "projected_sickle"
        assert emulator.api_versions == ("v1", "v2")
        with pytest.raises(ValueError, match="v3"):
            emulator.api_base_url("v3")


def test_unknown_or_no_api_versions_are_refused() -> None:
    with pytest.raises(ValueError, match="V2"):
        CensusEmulator(api_versions=("V2",))
    with pytest.raises(ValueError, match="at least one"):
        CensusEmulator(api_versions=())


# -- auth: each version takes only its own kind of token --------------------------------------


def test_v1_key_on_v2_is_401_naming_the_personal_access_token(emu: CensusEmulator, v1: requests.Session) -> None:
    response = v1.get(at(emu, "v2", "/syncs"))
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error"
    assert "API v2 takes an Activations personal access token" in body["message"]
    assert "workspace API key" in body["message"]  # what was sent instead
    assert TOKEN not in body["message"]
    assert PAT not in body["message"]
    assert emu.requests[-1].status == 401
    assert emu.runs_of(60) == []


def test_personal_access_token_on_v1_is_401_naming_the_workspace_key(emu: CensusEmulator, v2: requests.Session) -> None:
    response = v2.post(at(emu, "v1", "/syncs/60/trigger"))
    assert response.status_code == 401
    message = response.json()["message"]
    assert "API v1 takes a workspace API key" in message
    assert "Activations personal access token" in message
    assert PAT not in message
    assert TOKEN not in message
    assert emu.runs_of(60) == []


def test_an_unknown_token_on_v2_names_only_what_v2_takes(emu: CensusEmulator) -> None:
    with session("something-else") as http:
        response = http.get(at(emu, "v2", "/syncs"))
    assert response.status_code == 401
    message = response.json()["message"]
    assert "Activations personal access token" in message
    assert "workspace API key" not in message


def test_each_token_works_on_its_own_version(emu: CensusEmulator, v1: requests.Session, v2: requests.Session) -> None:
    assert v1.get(at(emu, "v1", "/syncs/60")).status_code == 200
    assert v2.get(at(emu, "v2", "/syncs/60")).status_code == 200


# -- versions not served -----------------------------------------------------------------------


def test_a_v1_only_workspace_answers_404_under_v2() -> None:
    with CensusEmulator(token=TOKEN, pat=PAT, api_versions=("v1",)) as emulator:
        origin = f"http://127.0.0.1:{emulator.port}"
        for token in (PAT, TOKEN):
            with session(token) as http:
                response = http.get(origin + "/api/v2/syncs/60")
            assert response.status_code == 404
            assert "/api/v1" in response.json()["message"]
        with session(TOKEN) as http:
            assert http.get(origin + "/api/v1/syncs/60").status_code == 200
        assert emulator.base_url == origin + "/api/v1"
        with pytest.raises(ValueError, match="v2"):
            emulator.api_base_url("v2")
        with pytest.raises(ValueError, match="v2"):
            emulator.token_for("v2")
        assert emulator.requests[0].api_version == "v2"
        assert emulator.requests[0].status == 404


def test_a_v2_only_workspace_answers_404_under_v1() -> None:
    with CensusEmulator(token=TOKEN, pat=PAT, api_versions=["v2"]) as emulator:
        assert emulator.base_url == emulator.api_base_url("v2")
        with session(TOKEN) as http:
            assert http.get(emulator.base_url.replace("/api/v2", "/api/v1") + "/syncs/60").status_code == 404
        with session(PAT) as http:
            assert data(http.get(emulator.base_url + "/syncs/60"))["id"] == 60


# -- renamed resources -------------------------------------------------------------------------


def test_activations_have_string_ids_and_objects(emu: CensusEmulator, v2: requests.Session) -> None:
    listed = data(v2.get(at(emu, "v2", "/activations"), params={"group_id": GROUP, "order": "asc"}))
    ids = [item["id"] for item in listed]
    assert len(ids) == 4
    assert all(isinstance(key, str) for key in ids)
    assert BRAZE in ids
    assert {item["group_id"] for item in listed} == {GROUP}
    braze = data(v2.get(at(emu, "v2", f"/activations/{BRAZE}")))
    assert (braze["id"], braze["name"], braze["group_id"]) == (BRAZE, "Braze", GROUP)
    assert [obj["full_name"] for obj in braze["objects"]] == ["user", "event"]
    assert data(v2.get(at(emu, "v2", "/activations/braze"))) == braze  # the slug works too
    objects = data(v2.get(at(emu, "v2", f"/activations/{BRAZE}/objects"), params={"order": "asc"}))
    assert [obj["label"] for obj in objects] == ["User", "Event"]
    user = data(v2.get(at(emu, "v2", f"/activations/{BRAZE}/objects/user")))
    assert [field["full_name"] for field in user["fields"]][3] == "external_id"
    for missing in ("/activations/15", "/activations/nope", f"/activations/{BRAZE}/objects/nothing"):
        response = v2.get(at(emu, "v2", missing))
        assert response.status_code == 404, missing
        assert response.json() == BARE_404


def test_activation_ids_differ_from_one_another(
    emu: CensusEmulator, v1: requests.Session, v2: requests.Session
) -> None:
    by_name_v2 = {
        item["name"]: item["id"] for item in data(v2.get(at(emu, "v2", "/activations"), params={"group_id": GROUP}))
    }
    by_name_v1 = {item["name"]: item["id"] for item in data(v1.get(at(emu, "v1", "/destinations")))}
    assert set(by_name_v2) == set(by_name_v1)
    assert len(set(by_name_v2.values())) == 4
    assert by_name_v1["Braze"] == 15
    assert by_name_v2["Braze"] == BRAZE


@pytest.mark.parametrize(
    ("version", "path"),
    [
        ("v2", "/destinations"),
        ("v2", "/destinations/15"),
        ("v2", "/destinations/braze/objects"),
        ("v2", "/connectors"),
        ("v1", "/activations"),
        ("v1", f"/activations/{BRAZE}"),
        ("v1", "/activation_types"),
    ],
)
def test_each_versions_names_are_404_on_the_other(emu: CensusEmulator, version: str, path: str) -> None:
    with session(emu.token_for(version)) as http:
        response = http.get(at(emu, version, path), params={"group_id": GROUP})
    assert response.status_code == 404
    if version == "v2":
        assert response.json() == BARE_404
    else:
        assert response.json()["status"] == "error"
        assert path in response.json()["message"]


def test_the_legacy_create_is_v1_only(emu: CensusEmulator, v2: requests.Session) -> None:
    response = v2.post(at(emu, "v2", "/syncs/create"), json=create_body(BRAZE))
    assert response.status_code == 405  # read as /syncs/{id}, which takes no POST
    assert len(emu.workspace.list_syncs()) == 3


def test_destination_types_on_both_versions(emu: CensusEmulator, v1: requests.Session, v2: requests.Session) -> None:
    connectors = data(v1.get(at(emu, "v1", "/connectors"), params={"order": "asc"}))
    types = data(v2.get(at(emu, "v2", "/activation_types"), params={"order": "asc"}))
    assert connectors == types
    braze = next(item for item in types if item["service_name"] == "braze")
    assert braze["label"] == "Braze"
    assert {"documentation_slug", "creatable_via_api"} <= set(braze)


# -- group_id ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/sources", "/activations"])
def test_v2_lists_of_connections_take_an_optional_group_and_refuse_another(
    emu: CensusEmulator, v2: requests.Session, path: str
) -> None:
    """V2's "list activations" documents only page, per_page and order: no group is demanded."""
    for without in ({}, {"group_id": ""}):
        listed = data(v2.get(at(emu, "v2", path), params=without))
        assert len(listed) >= 2
        assert {item["group_id"] for item in listed} == {GROUP}
    other = v2.get(at(emu, "v2", path), params={"group_id": "another_group"})
    assert other.status_code == 404
    assert other.json() == BARE_404
    assert data(v2.get(at(emu, "v2", path), params={"group_id": GROUP})) == data(v2.get(at(emu, "v2", path)))


@pytest.mark.parametrize("path", ["/sources", "/activations"])
def test_an_emulator_that_requires_a_group_refuses_a_v2_list_without_one(path: str) -> None:
    with CensusEmulator(pat=PAT, group_id=GROUP, require_group=True) as emulator:
        v2 = session(PAT)
        missing = v2.get(at(emulator, "v2", path))
        assert missing.status_code == 400
        assert missing.json()["status"] == "error"
        assert "group_id" in missing.json()["message"]
        assert v2.get(at(emulator, "v2", path), params={"group_id": ""}).status_code == 400
        assert len(data(v2.get(at(emulator, "v2", path), params={"group_id": GROUP}))) >= 2
        assert v2.get(at(emulator, "v2", "/syncs")).status_code == 200, "only sources and activations"


def test_v2_sources_carry_the_group_and_v1_sources_do_not(
    emu: CensusEmulator, v1: requests.Session, v2: requests.Session
) -> None:
    seen_v2 = data(v2.get(at(emu, "v2", "/sources/4")))
    seen_v1 = data(v1.get(at(emu, "v1", "/sources/4")))
    assert seen_v2 == {**seen_v1, "group_id": GROUP}
    assert "group_id" not in data(v1.get(at(emu, "v1", "/sources")))[0]
    # v1 has no groups: the parameter is neither needed nor checked there.
    assert v1.get(at(emu, "v1", "/sources"), params={"group_id": "another_group"}).status_code == 200
    models = data(v2.get(at(emu, "v2", "/sources/4/models"), params={"order": "asc"}))
    assert [model["id"] for model in models] == [3, 15, 18]


def test_v2_syncs_take_an_optional_group(emu: CensusEmulator, v2: requests.Session) -> None:
    assert len(data(v2.get(at(emu, "v2", "/syncs")))) == 3
    assert len(data(v2.get(at(emu, "v2", "/syncs"), params={"group_id": GROUP}))) == 3
    other = v2.get(at(emu, "v2", "/syncs"), params={"group_id": "another_group"})
    assert (other.status_code, other.json()) == (404, BARE_404)
    in_body = v2.post(at(emu, "v2", "/syncs"), json={**create_body(BRAZE), "group_id": "another_group"})
    assert (in_body.status_code, in_body.json()) == (404, BARE_404)
    assert len(data(v2.get(at(emu, "v2", "/syncs")))) == 3
    created = v2.post(at(emu, "v2", "/syncs"), json={**create_body(BRAZE), "group_id": GROUP})
    assert created.status_code == 201


def test_v2_sync_creation_reads_no_group_from_the_query(emu: CensusEmulator, v2: requests.Session) -> None:
    """Nothing documents group_id in the query of POST /syncs: like any unknown parameter, it changes nothing."""
    created = v2.post(at(emu, "v2", "/syncs"), params={"group_id": "another_group"}, json=create_body(BRAZE))
    assert created.status_code == 201
    assert len(data(v2.get(at(emu, "v2", "/syncs")))) == 4


def test_v2_paging_keeps_the_group_in_next(emu: CensusEmulator, v2: requests.Session) -> None:
    body = v2.get(at(emu, "v2", "/activations"), params={"group_id": GROUP, "per_page": "3"}).json()
    assert body["pagination"]["total_records"] == 4
    assert body["next"].startswith(at(emu, "v2", "/activations?"))
    following = v2.get(body["next"]).json()
    assert len(following["data"]) == 1
    assert following["pagination"]["prev_page"] == 1


# -- V2 error bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/syncs/999"),
        ("GET", "/syncs/abc"),
        ("PATCH", "/syncs/999"),
        ("DELETE", "/syncs/999"),
        ("POST", "/syncs/999/trigger"),
        ("GET", "/syncs/999/sync_runs"),
        ("GET", "/sync_runs/999999"),
        ("POST", "/sync_runs/999999/cancel"),
        ("GET", "/sources/nope"),
        ("GET", "/sources/10/models/18"),
        ("GET", "/syncs/test_status?sync_run_id=999999"),
        ("GET", "/nothing"),
    ],
)
def test_every_v2_404_is_a_bare_status(
    emu: CensusEmulator, v1: requests.Session, v2: requests.Session, method: str, path: str
) -> None:
    response = v2.request(method, at(emu, "v2", path), json={"label": "x"})
    assert response.status_code == 404
    assert response.json() == BARE_404
    on_v1 = v1.request(method, at(emu, "v1", path), json={"label": "x"})
    assert on_v1.status_code == 404
    assert on_v1.json()["status"] == "error"
    assert on_v1.json()["message"]


def test_other_v2_errors_keep_a_message(emu: CensusEmulator, v2: requests.Session) -> None:
    unprocessable = v2.post(at(emu, "v2", "/syncs"), json={**create_body(BRAZE), "operation": "merge"})
    assert unprocessable.status_code == 422
    assert unprocessable.json()["status"] == "error"
    assert "operation" in unprocessable.json()["message"]
    bad_flag = v2.post(at(emu, "v2", "/syncs/60/trigger"), params={"force_full_sync": "maybe"})
    assert (bad_flag.status_code, bad_flag.json()["status"]) == (400, "error")
    wrong_method = v2.put(at(emu, "v2", "/syncs/60"))
    assert (wrong_method.status_code, wrong_method.json()["status"]) == (405, "error")


# -- one workspace through both versions -------------------------------------------------------


def test_a_run_triggered_through_v1_is_read_through_v2(
    emu: CensusEmulator, v1: requests.Session, v2: requests.Session
) -> None:
    sync_id = emu.add_sync(RunScript(queued_polls=1, working_polls=1))
    triggered = v1.post(at(emu, "v1", f"/syncs/{sync_id}/trigger"), params={"force_full_sync": "true"})
    run_id = data(triggered)["sync_run_id"]
    seen = [data(v2.get(at(emu, "v2", f"/sync_runs/{run_id}")))["status"] for _ in range(3)]
    assert seen == ["queued", "working", "completed"]
    assert data(v1.get(at(emu, "v1", f"/sync_runs/{run_id}")))["full_sync"] is True
    history = data(v2.get(at(emu, "v2", f"/syncs/{sync_id}/sync_runs")))
    assert [run["id"] for run in history] == [run_id]
    second = data(v2.post(at(emu, "v2", f"/syncs/{sync_id}/trigger")))["sync_run_id"]
    assert [run["id"] for run in data(v1.get(at(emu, "v1", f"/syncs/{sync_id}/sync_runs")))] == [second, run_id]
    cancelled = v2.post(at(emu, "v2", f"/sync_runs/{second}/cancel"))
    assert cancelled.json() == {"status": "cancelled", "data": {}}
    assert emu.run(second)["canceled"] is True


def test_v2_shows_syncs_with_the_activation_id(emu: CensusEmulator, v1: requests.Session, v2: requests.Session) -> None:
    assert data(v2.get(at(emu, "v2", "/syncs/61")))["destination_attributes"] == {
        "connection_id": BRAZE,
        "object": "event",
    }
    assert data(v1.get(at(emu, "v1", "/syncs/61")))["destination_attributes"] == {
        "connection_id": 15,
        "object": "event",
    }
    listed = data(v2.get(at(emu, "v2", "/syncs")))
    assert {sync["destination_attributes"]["connection_id"] for sync in listed} == {BRAZE}
    # Showing V2's id never changes the stored sync.
    assert data(v1.get(at(emu, "v1", "/syncs/61")))["destination_attributes"]["connection_id"] == 15


def test_v2_creates_and_updates_syncs_by_activation_id(
    emu: CensusEmulator, v1: requests.Session, v2: requests.Session
) -> None:
    created = v2.post(at(emu, "v2", "/syncs"), json=create_body(BRAZE))
    assert created.status_code == 201
    sync_id = created.json()["data"]["sync_id"]
    assert data(v1.get(at(emu, "v1", f"/syncs/{sync_id}")))["destination_attributes"]["connection_id"] == 15
    assert data(v2.get(at(emu, "v2", f"/syncs/{sync_id}")))["destination_attributes"]["connection_id"] == BRAZE
    sheets = next(
        item["id"]
        for item in data(v2.get(at(emu, "v2", "/activations"), params={"group_id": GROUP}))
        if item["name"] == "Google Sheets"
    )
    patch = {"destination_attributes": {"connection_id": sheets, "object": "sheet"}, "label": "to sheets"}
    updated = data(v2.patch(at(emu, "v2", f"/syncs/{sync_id}"), json=patch))
    assert updated["destination_attributes"] == {"connection_id": sheets, "object": "sheet"}
    assert data(v1.get(at(emu, "v1", f"/syncs/{sync_id}")))["destination_attributes"]["connection_id"] == 12
    assert v2.post(at(emu, "v2", "/syncs"), json=create_body("braze")).status_code == 201  # slugs still work


@pytest.mark.parametrize(("connection_id", "words"), [(15, "string"), ("no_such_activation", "no_such_activation")])
def test_v2_refuses_v1_ids_and_unknown_activations(
    emu: CensusEmulator, v2: requests.Session, connection_id: object, words: str
) -> None:
    response = v2.post(at(emu, "v2", "/syncs"), json=create_body(connection_id))
    assert response.status_code == 422
    assert response.json()["status"] == "error"
    assert words in response.json()["message"]
    patched = v2.patch(
        at(emu, "v2", "/syncs/60"),
        json={"destination_attributes": create_body(connection_id)["destination_attributes"]},
    )
    assert patched.status_code == 422
    assert emu.workspace.get_sync(60)["destination_attributes"]["connection_id"] == 15


def test_v1_still_refuses_activation_ids(emu: CensusEmulator, v1: requests.Session) -> None:
    response = v1.post(at(emu, "v1", "/syncs"), json=create_body(BRAZE))
    assert response.status_code == 422
    assert BRAZE in response.json()["message"]


# -- test_status -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_test_status_answers_a_runs_status(emu: CensusEmulator, version: str) -> None:
    sync_id = emu.add_sync(RunScript(queued_polls=1, working_polls=1))
    run_id = emu.trigger(sync_id)
    with session(emu.token_for(version)) as http:
        url = at(emu, version, "/syncs/test_status")
        seen = [data(http.get(url, params={"sync_run_id": run_id})) for _ in range(3)]
        assert [item["status"] for item in seen] == ["queued", "working", "completed"]
        assert seen[-1]["id"] == run_id
        assert seen[-1]["completed_at"] is not None
        assert seen[-1]["sample_record"] is None
        assert {"error_code", "error_message", "error_detail", "created_at", "updated_at"} <= set(seen[-1])
        for params in ({}, {"sync_run_id": "abc"}):
            bad = http.get(url, params=params)
            assert bad.status_code == 400
            assert "sync_run_id" in bad.json()["message"]
        missing = http.get(url, params={"sync_run_id": 999999})
        assert missing.status_code == 404
    assert emu.run(run_id)["status"] == "completed"


# -- the request log ---------------------------------------------------------------------------


def test_request_log_knows_the_version_and_the_api_path(
    emu: CensusEmulator, v1: requests.Session, v2: requests.Session
) -> None:
    v1.post(at(emu, "v1", "/syncs/60/trigger"))
    v2.post(at(emu, "v2", "/syncs/60/trigger"), params={"force_full_sync": "false"})
    v2.get(at(emu, "v2", "/syncs/60"))
    requests.get(f"http://127.0.0.1:{emu.port}/elsewhere", timeout=5)
    log = emu.requests
    assert [(r.api_version, r.api_path, r.path) for r in log] == [
        ("v1", "/syncs/60/trigger", "/api/v1/syncs/60/trigger"),
        ("v2", "/syncs/60/trigger", "/api/v2/syncs/60/trigger"),
        ("v2", "/syncs/60", "/api/v2/syncs/60"),
        (None, "/elsewhere", "/elsewhere"),
    ]
    assert log[1].query == {"force_full_sync": "false"}
    assert emu.requests_for("POST", "/syncs/60/trigger") == log[:2]
    assert emu.requests_for("POST", "/api/v2/syncs/60/trigger") == [log[1]]
    assert emu.requests_for("POST", "/syncs/60/trigger", api_version="v1") == [log[0]]
    assert emu.requests_for(api_version="v2") == log[1:3]
    assert emu.requests_for("GET", "/syncs/60/trigger") == []
    assert PAT not in repr(log)
    assert TOKEN not in repr(log)


# -- faults ------------------------------------------------------------------------------------


def test_a_fault_prefix_after_the_version_hits_both_versions(
    emu: CensusEmulator, v1: requests.Session, v2: requests.Session
) -> None:
    emu.fail_next("503", count=2, path_prefix="/sync_runs/")
    assert v1.get(at(emu, "v1", "/syncs/60")).status_code == 200
    assert v2.get(at(emu, "v2", "/sync_runs/94")).status_code == 503
    assert v1.get(at(emu, "v1", "/sync_runs/94")).status_code == 503
    assert v2.get(at(emu, "v2", "/sync_runs/94")).status_code == 200
    emu.fail_next("500", path_prefix="/api/v2/sync_runs/")
    assert v1.get(at(emu, "v1", "/sync_runs/94")).status_code == 200
    assert v2.get(at(emu, "v2", "/sync_runs/94")).status_code == 500
    assert [r.fault for r in emu.requests_for("GET", "/sync_runs/94")] == ["503", "503", None, None, "500"]


def test_a_fault_profile_prefix_hits_both_versions(
    emu: CensusEmulator, v1: requests.Session, v2: requests.Session
) -> None:
    emu.set_faults(FaultProfile(rate=1.0, kinds=("502",), path_prefix="/sync_runs/"))
    assert v1.get(at(emu, "v1", "/sync_runs/94")).status_code == 502
    assert v2.get(at(emu, "v2", "/sync_runs/94")).status_code == 502
    assert v2.get(at(emu, "v2", "/syncs/52")).status_code == 200


def test_faults_on_v2_keep_their_bodies(emu: CensusEmulator, v2: requests.Session) -> None:
    emu.fail_next("429", retry_after=2, path_prefix="/syncs/60/trigger")
    response = v2.post(at(emu, "v2", "/syncs/60/trigger"))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["status"] == "error"
    assert emu.runs_of(60) == []


# -- the pytest plugin -------------------------------------------------------------------------


def _plugin_args() -> list[str]:
    """The plugin is opt-in: a user's run loads it with ``-p``."""
    return ["-p", "airflow_provider_census.testing.pytest_plugin"]


def test_census_conn_runs_each_test_once_per_version(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import json
        import os

        import requests

        SEEN = []


        def test_conn(census_conn, census_api_version):
            conn = json.loads(os.environ["AIRFLOW_CONN_CENSUS_DEFAULT"])
            version = census_api_version
            extra = {"base_url": census_conn.api_base_url(version), "api_version": version}
            if version == "v2":
                extra["group_id"] = census_conn.group_id
            assert conn == {"conn_type": "census", "password": census_conn.token_for(version), "extra": extra}
            assert conn["extra"]["base_url"].endswith("/api/" + version)
            headers = {"Authorization": "Bearer " + conn["password"]}
            response = requests.post(conn["extra"]["base_url"] + "/syncs/61/trigger", headers=headers)
            assert response.json()["status"] == "success"
            assert len(census_conn.runs_of(61)) == 1
            SEEN.append(version)


        def test_both_versions_were_seen():
            assert SEEN == ["v2", "v1"]
        """
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_conn?v2? PASSED*", "*test_conn?v1? PASSED*"])


def test_census_conn_skips_a_version_the_emulator_does_not_serve(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        from airflow_provider_census.testing import CensusEmulator


        @pytest.fixture
        def census_emulator():
            with CensusEmulator(api_versions=("v1",)) as emulator:
                yield emulator


        def test_conn(census_conn):
            assert census_conn.api_versions == ("v1",)
        """
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*does not serve API v2*"])


# -- the command line --------------------------------------------------------------------------


def test_command_line_serves_both_versions_with_their_tokens() -> None:
    process = emulator_cli.serve("--token", "cli-key", "--pat", "cli-pat", "--group-id", "cli_group")
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    assert process.stdout.readline().strip() == "token: cli-key"
    v2_url = base_url.removesuffix("/api/v1") + "/api/v2"
    try:
        assert base_url.endswith("/api/v1")
        with session("cli-pat") as http:
            listed = http.get(v2_url + "/sources", params={"group_id": "cli_group"}, timeout=5)
            assert listed.status_code == 200
            assert http.get(base_url + "/syncs/60", timeout=5).status_code == 401
        with session("cli-key") as http:
            assert http.get(base_url + "/syncs/60", timeout=5).status_code == 200
    finally:
        stderr = emulator_cli.stop(process)
    assert f"API v1 at {base_url} (a workspace API key: cli-key)" in stderr
    assert f"API v2 at {v2_url} (an Activations personal access token: cli-pat, group_id: cli_group)" in stderr


@pytest.mark.parametrize(
    "flags", [["--api-version", "v2"], ["--api-version", "v2,"], ["--api-version", "v2", "--api-version", "v2"]]
)
def test_command_line_serves_only_the_versions_asked(flags: list[str]) -> None:
    process = emulator_cli.serve("--pat", "cli-pat", *flags)
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    assert process.stdout.readline().strip() == "token: cli-pat"
    try:
        assert base_url.endswith("/api/v2")
        with session("cli-pat") as http:
            assert http.get(base_url + "/syncs/60", timeout=5).status_code == 200
            assert http.get(base_url.removesuffix("/api/v2") + "/api/v1/syncs/60", timeout=5).status_code == 404
    finally:
        stderr = emulator_cli.stop(process)
    assert "API v1" not in stderr


def test_command_line_takes_a_comma_list_and_refuses_unknown_versions() -> None:
    process = emulator_cli.serve("--api-version", "v2,v1")
    assert process.stdout is not None
    try:
        assert process.stdout.readline().strip().endswith("/api/v1")
    finally:
        stderr = emulator_cli.stop(process)
    assert "API v2 at" in stderr
    refused = emulator_cli.refusal("--api-version", "v3")
    assert refused.returncode == 2
    assert "v3" in refused.stderr


def test_command_line_control_channel_logs_the_version() -> None:
    with emulator_cli.controlled("--pat", "cli-pat") as emulator:
        v2_url = emulator.base_url.removesuffix("/api/v1") + "/api/v2"
        with session("cli-pat") as http:
            assert http.get(v2_url + "/sync_runs/94", timeout=5).status_code == 200
        logged = emulator.command({"call": "requests"})["requests"]
        assert [(r["api_version"], r["api_path"], r["status"]) for r in logged] == [("v2", "/sync_runs/94", 200)]
