"""Tests of the Census API emulator (``airflow_provider_census.testing``) over real HTTP."""

from __future__ import annotations

import ast
import asyncio
import email.utils
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import requests

from airflow_provider_census.testing import CensusEmulator, FaultProfile, RecordedRequest, RunScript
from airflow_provider_census.testing import runs as runs_module
from airflow_provider_census.testing import server as server_module
from tests import emulator_cli

pytest_plugins = ["pytester"]

TOKEN = "secret-token:emulator-test"
TESTING_DIR = Path(__file__).resolve().parents[1] / "airflow_provider_census" / "testing"
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
FAST = RunScript(queued_polls=0, working_polls=0)


@pytest.fixture
def emu() -> Iterator[CensusEmulator]:
    with CensusEmulator(token=TOKEN, port=0) as emulator:
        yield emulator


@pytest.fixture
def http(emu: CensusEmulator) -> Iterator[requests.Session]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    yield session
    session.close()


def url(emu: CensusEmulator, path: str) -> str:
    return emu.base_url + path


def get_data(http: requests.Session, emu: CensusEmulator, path: str) -> Any:
    response = http.get(url(emu, path))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


def trigger(http: requests.Session, emu: CensusEmulator, sync_id: int, **params: str) -> int:
    response = http.post(url(emu, f"/syncs/{sync_id}/trigger"), params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return int(body["data"]["sync_run_id"])


def poll(http: requests.Session, emu: CensusEmulator, run_id: int) -> dict[str, Any]:
    data: dict[str, Any] = get_data(http, emu, f"/sync_runs/{run_id}")
    return data


def statuses(http: requests.Session, emu: CensusEmulator, run_id: int, polls: int) -> list[str]:
    return [poll(http, emu, run_id)["status"] for _ in range(polls)]


def valid_create_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "label": "Users to Braze",
        "operation": "upsert",
        "source_attributes": {"connection_id": 4, "object": {"type": "model", "id": 15}},
        "destination_attributes": {"connection_id": 15, "object": "user"},
        "mappings": [{"from": {"type": "column", "data": "EMAIL"}, "to": "external_id"}],
    }
    body.update(changes)
    return body


# -- packaging rules ----------------------------------------------------------------------


def test_emulator_imports_nothing_of_the_provider_outside_testing() -> None:
    for source in TESTING_DIR.glob("*.py"):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("airflow_provider_census"):
                    assert name.startswith("airflow_provider_census.testing"), (source.name, name)
                assert not name.startswith("airflow."), (source.name, name)


def test_plugin_and_package_import_is_light() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_census.testing.pytest_plugin\n"
        "import airflow_provider_census.testing\n"
        "print(sorted(m for m in ('aiohttp', 'airflow', 'requests') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=TESTING_DIR.parents[1],
    )
    assert out.stdout.strip() == "[]"


# -- auth, envelope, unknown paths --------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, f"Bearer wrong-{TOKEN}", TOKEN, f"bearer {TOKEN}", f"Basic {TOKEN}", f"Bearer  {TOKEN}"],
)
def test_anything_but_the_exact_bearer_token_is_401(emu: CensusEmulator, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = requests.get(url(emu, "/syncs"), headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error"
    assert body["message"]
    assert emu.requests[-1].status == 401


def test_unknown_path_is_a_json_404(http: requests.Session, emu: CensusEmulator) -> None:
    for path in ("/nothing", "/syncs/60/nothing"):
        response = http.get(url(emu, path))
        assert response.status_code == 404
        assert response.json()["status"] == "error"
    for outside in ("/api/v3/syncs", "/api/v10/syncs", "/syncs"):
        response = http.get(f"http://127.0.0.1:{emu.port}{outside}")
        assert response.status_code == 404
        assert response.json()["status"] == "error"
        assert "/api/v1 and /api/v2" in response.json()["message"]


def test_wrong_method_is_a_json_error(http: requests.Session, emu: CensusEmulator) -> None:
    response = http.put(url(emu, "/syncs/60"))
    assert response.status_code == 405
    assert response.json()["status"] == "error"


# -- sources and destinations -------------------------------------------------------------


def test_sources_list_and_lookup_by_id_or_slug(http: requests.Session, emu: CensusEmulator) -> None:
    sources = get_data(http, emu, "/sources")
    assert [source["id"] for source in sources] == [10, 4]
    by_id = get_data(http, emu, "/sources/4")
    by_slug = get_data(http, emu, "/sources/snowflake-xxxxxxx-us-east-1")
    assert by_id == by_slug
    assert by_id["credentials"]["warehouse"] == "TEST"
    kinds = {(item["type"], item["id"]) for item in by_id["data_sources"]}
    assert kinds == {("table", 2), ("model", 15), ("model", 18), ("model", 3)}
    missing = http.get(url(emu, "/sources/nope"))
    assert missing.status_code == 404
    assert "Source" in missing.json()["message"]


def test_source_objects_models_and_tables(http: requests.Session, emu: CensusEmulator) -> None:
    objects = get_data(http, emu, "/sources/4/objects?order=asc")
    assert {item["id"] for item in objects} == {2, 3, 15, 18}
    models = get_data(http, emu, "/sources/4/models?order=asc")
    assert [model["id"] for model in models] == [3, 15, 18]
    model = get_data(http, emu, "/sources/snowflake-xxxxxxx-us-east-1/models/18")
    assert model["name"] == "airtable_test"
    assert {column["name"] for column in model["columns"]} == {"ABOUT", "NAME", "COMPANY_ID", "INDUSTRIES"}
    tables = get_data(http, emu, "/sources/4/tables")
    assert [table["table_name"] for table in tables] == ["test"]
    table = get_data(http, emu, "/sources/4/tables/2")
    assert table["columns"][1] == {"name": "CUSTOMER_ID", "type": "text (2000)"}
    assert get_data(http, emu, "/sources/10/models") == []
    wrong_source = http.get(url(emu, "/sources/10/models/18"))
    assert wrong_source.status_code == 404
    assert "Model" in wrong_source.json()["message"]
    assert http.get(url(emu, "/sources/4/tables/99")).status_code == 404


def test_destinations_and_their_objects(http: requests.Session, emu: CensusEmulator) -> None:
    destinations = get_data(http, emu, "/destinations?order=asc")
    assert [item["id"] for item in destinations] == [6, 12, 14, 15]
    braze = get_data(http, emu, "/destinations/braze")
    assert braze["id"] == 15
    assert [obj["full_name"] for obj in braze["objects"]] == ["user", "event"]
    assert get_data(http, emu, "/destinations/15") == braze
    objects = get_data(http, emu, "/destinations/15/objects?order=asc")
    assert [obj["label"] for obj in objects] == ["User", "Event"]
    user = get_data(http, emu, "/destinations/braze/objects/user")
    names = [field["full_name"] for field in user["fields"]]
    assert names == ["first_name", "last_name", "company", "external_id", "email"]
    assert user["fields"][3]["can_be_upsert_key"] is True
    assert user["fields"][2]["lookup_object"] == "company"
    missing = http.get(url(emu, "/destinations/braze/objects/nothing"))
    assert missing.status_code == 404
    assert "nothing" in missing.json()["message"]
    assert http.get(url(emu, "/destinations/nope")).status_code == 404


# -- syncs --------------------------------------------------------------------------------


def test_seeded_syncs_and_lookup(http: requests.Session, emu: CensusEmulator) -> None:
    syncs = get_data(http, emu, "/syncs?order=asc")
    assert [sync["id"] for sync in syncs] == [52, 60, 61]
    sync = get_data(http, emu, "/syncs/61")
    assert sync["destination_attributes"] == {"connection_id": 15, "object": "event"}
    assert sync["status"] == "Ready"
    assert ISO_MS.match(sync["created_at"])
    for path in ("/syncs/999", "/syncs/abc"):
        response = http.get(url(emu, path))
        assert response.status_code == 404
        assert response.json() == {"status": "error", "message": response.json()["message"]}
        assert "Sync" in response.json()["message"]


def test_seeded_history_of_sync_52(http: requests.Session, emu: CensusEmulator) -> None:
    runs = get_data(http, emu, "/syncs/52/sync_runs")
    assert [run["id"] for run in runs] == [94, 93, 92]
    assert runs[1]["error_code"] == "JSON_ARRAY_ERROR"
    assert poll(http, emu, 94)["completed_at"] == "2021-10-20T02:52:29.234Z"


def test_create_sync_then_read_it(http: requests.Session, emu: CensusEmulator) -> None:
    response = http.post(url(emu, "/syncs"), json=valid_create_body(paused=True))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "created"
    sync_id = body["data"]["sync_id"]
    sync = get_data(http, emu, f"/syncs/{sync_id}")
    assert sync["label"] == "Users to Braze"
    assert sync["paused"] is True
    assert sync["source_attributes"]["object"] == {"type": "model", "id": 15, "name": "braze_test"}
    run_id = trigger(http, emu, sync_id)
    assert emu.run(run_id)["sync_id"] == sync_id


def test_legacy_create_form(http: requests.Session, emu: CensusEmulator) -> None:
    body = {
        "label": "TEST 1",
        "operation": "mirror",
        "schedule_frequency": "daily",
        "destination_attributes": {"connection_slug": "google-ads-dev", "object": "user_data"},
        "source_attributes": {"connection_slug": "snowflake-xxxxxxx-us-east-1", "type": "model",
                              "model_name": "google_ads_test"},
        "mappings": [{"from": "EMAIL", "to": "user_identifier.hashed_email_PREHASHED",
                      "is_primary_identifier": True}],
    }  # fmt: skip
    response = http.post(url(emu, "/syncs/create"), json=body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "created"
    sync = get_data(http, emu, f"/syncs/{response.json()['data']['sync_id']}")
    assert sync["schedule_frequency"] == "daily"
    assert sync["source_attributes"] == {
        "connection_id": 4,
        "object": {"type": "model", "id": 3, "name": "google_ads_test"},
    }


def test_validate_only_creates_nothing(http: requests.Session, emu: CensusEmulator) -> None:
    before = len(get_data(http, emu, "/syncs"))
    response = http.post(url(emu, "/syncs"), json=valid_create_body(validate_only=True))
    assert response.status_code == 200
    assert response.json() == {"status": "success", "data": {}}
    assert len(get_data(http, emu, "/syncs")) == before
    bad = http.post(url(emu, "/syncs"), json=valid_create_body(validate_only=True, operation="merge"))
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"operation": None}, "operation"),
        ({"operation": "merge"}, "operation"),
        ({"source_attributes": None}, "source_attributes"),
        ({"source_attributes": {"connection_id": 404, "object": {"type": "model", "id": 15}}}, "404"),
        ({"source_attributes": {"connection_id": 4, "object": {"type": "model", "id": 999}}}, "999"),
        ({"source_attributes": {"connection_id": 4, "object": {"type": "view"}}}, "type"),
        ({"destination_attributes": {"connection_id": 15}}, "object"),
        ({"destination_attributes": {"connection_slug": "braze", "object": "purchase"}}, "purchase"),
        ({"destination_attributes": {"connection_slug": "salesforce", "object": "user"}}, "salesforce"),
        ({"mappings": None}, "mappings"),
        ({"mappings": []}, "mappings"),
        ({"mappings": [{"from": "EMAIL"}]}, "mappings[0]"),
        ({"paused": "yes"}, "paused"),
        ({"schedule_frequency": "sometimes"}, "schedule_frequency"),
    ],
)
def test_create_rejects_invalid_bodies(
    http: requests.Session, emu: CensusEmulator, changes: dict[str, Any], words: str
) -> None:
    body = {key: value for key, value in valid_create_body(**changes).items() if value is not None}
    for path in ("/syncs", "/syncs/create"):
        response = http.post(url(emu, path), json=body)
        assert response.status_code == 422, response.text
        assert response.json()["status"] == "error"
        assert words in response.json()["message"]
    assert [sync["id"] for sync in get_data(http, emu, "/syncs")] == [61, 60, 52]


def test_create_rejects_non_json_and_non_object(http: requests.Session, emu: CensusEmulator) -> None:
    not_json = http.post(url(emu, "/syncs"), data="{oops", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json()["status"] == "error"
    assert http.post(url(emu, "/syncs"), json=[1, 2]).status_code == 422


def test_update_sync(http: requests.Session, emu: CensusEmulator) -> None:
    response = http.patch(url(emu, "/syncs/60"), json={"label": "renamed", "paused": True})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "updated"
    assert body["data"]["label"] == "renamed"
    assert get_data(http, emu, "/syncs/60")["paused"] is True
    assert http.patch(url(emu, "/syncs/60"), json={"operation": "merge"}).status_code == 422
    assert http.patch(url(emu, "/syncs/60"), json={"mappings": []}).status_code == 422
    assert http.patch(url(emu, "/syncs/999"), json={"label": "x"}).status_code == 404


def test_delete_sync(http: requests.Session, emu: CensusEmulator) -> None:
    response = http.delete(url(emu, "/syncs/61"))
    assert response.status_code == 200
    assert response.json() == {"status": "deleted", "data": {}}
    assert http.get(url(emu, "/syncs/61")).status_code == 404
    assert http.delete(url(emu, "/syncs/61")).status_code == 404
    assert http.post(url(emu, "/syncs/61/trigger")).status_code == 404


# -- paging -------------------------------------------------------------------------------


def test_paging_of_sync_runs(http: requests.Session, emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(FAST, label="many runs")
    run_ids = [emu.trigger(sync_id) for _ in range(30)]
    first = http.get(url(emu, f"/syncs/{sync_id}/sync_runs")).json()
    assert [run["id"] for run in first["data"]] == list(reversed(run_ids))[:25]
    assert first["pagination"] == {
        "total_records": 30,
        "per_page": 25,
        "prev_page": None,
        "page": 1,
        "next_page": 2,
        "last_page": 2,
    }
    assert first["next"].startswith(f"http://127.0.0.1:{emu.port}/api/v1/syncs/{sync_id}/sync_runs?")
    second = http.get(first["next"]).json()
    assert [run["id"] for run in second["data"]] == list(reversed(run_ids))[25:]
    assert second["pagination"]["prev_page"] == 1
    assert second["pagination"]["next_page"] is None
    assert second["next"] is None
    ascending = http.get(url(emu, f"/syncs/{sync_id}/sync_runs"), params={"order": "asc", "per_page": "7"})
    body = ascending.json()
    assert [run["id"] for run in body["data"]] == run_ids[:7]
    assert body["pagination"]["last_page"] == 5
    followed = http.get(body["next"]).json()
    assert [run["id"] for run in followed["data"]] == run_ids[7:14]
    beyond = http.get(url(emu, f"/syncs/{sync_id}/sync_runs"), params={"page": 9}).json()
    assert beyond["data"] == []
    assert beyond["next"] is None


def test_per_page_is_clamped_to_100(http: requests.Session, emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(FAST)
    for _ in range(105):
        emu.trigger(sync_id)
    body = http.get(url(emu, f"/syncs/{sync_id}/sync_runs"), params={"per_page": 1000}).json()
    assert len(body["data"]) == 100
    assert body["pagination"]["per_page"] == 100
    assert body["pagination"]["last_page"] == 2


@pytest.mark.parametrize("path", ["/syncs", "/sources", "/destinations", "/sources/4/models", "/syncs/52/sync_runs"])
def test_every_list_endpoint_pages(http: requests.Session, emu: CensusEmulator, path: str) -> None:
    body = http.get(url(emu, path), params={"per_page": 1}).json()
    assert len(body["data"]) == 1
    assert body["pagination"]["per_page"] == 1
    assert body["pagination"]["total_records"] >= 2
    assert body["next"] is not None


@pytest.mark.parametrize(
    "params",
    [{"page": "0"}, {"page": "abc"}, {"page": "-1"}, {"per_page": "0"}, {"per_page": "x"}, {"order": "up"}],
)
def test_bad_paging_parameters_are_400(http: requests.Session, emu: CensusEmulator, params: dict[str, str]) -> None:
    response = http.get(url(emu, "/syncs"), params=params)
    assert response.status_code == 400
    assert response.json()["status"] == "error"


# -- run life cycle -----------------------------------------------------------------------


def test_completed_run_life_cycle(http: requests.Session, emu: CensusEmulator) -> None:
    script = RunScript(records_processed=7, records_updated=6, records_failed=1, source_record_count=8)
    sync_id = emu.add_sync(script, label="orders")
    run_id = trigger(http, emu, sync_id, force_full_sync="true")
    assert emu.run(run_id)["status"] == "queued"
    assert emu.run(run_id)["status"] == "queued"  # run() does not advance
    seen = [poll(http, emu, run_id) for _ in range(5)]
    assert [run["status"] for run in seen] == ["queued", "working", "working", "completed", "completed"]
    assert seen[0]["current_step"] is None
    for going in seen[:3]:
        assert going["current_step"] == (None if going["status"] == "queued" else "Running sync")
        assert going["records_processed"] is None
        assert going["completed_at"] is None
    done = seen[3]
    assert done["records_processed"] == 7
    assert done["records_updated"] == 6
    assert done["records_failed"] == 1
    assert done["source_record_count"] == 8
    assert done["full_sync"] is True
    assert done["canceled"] is False
    assert done["scheduled_execution_time"] is None
    assert done["sync_trigger_reason"] == {"ui_tag": "API", "ui_detail": "Triggered via API"}
    for key in ("created_at", "updated_at", "completed_at"):
        assert ISO_MS.match(done[key]), done[key]
    assert emu.run(run_id) == seen[4]
    assert emu.run_finished_at(run_id) is not None
    assert get_data(http, emu, f"/syncs/{sync_id}")["status"] == "Up to date"


def test_poll_counts_are_configurable(http: requests.Session, emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(RunScript(queued_polls=2, working_polls=1))
    run_id = trigger(http, emu, sync_id, force_full_sync="false")
    assert statuses(http, emu, run_id, 4) == ["queued", "queued", "working", "completed"]
    assert emu.run(run_id)["full_sync"] is False


def test_failed_run(http: requests.Session, emu: CensusEmulator) -> None:
    script = RunScript(outcome="failed", error_code="JSON_ARRAY_ERROR", error_message="bad", error_detail="very")
    sync_id = emu.add_sync(RunScript())
    emu.script_sync(sync_id, script)
    run_id = trigger(http, emu, sync_id)
    final = [poll(http, emu, run_id) for _ in range(4)][-1]
    assert final["status"] == "failed"
    assert (final["error_code"], final["error_message"], final["error_detail"]) == ("JSON_ARRAY_ERROR", "bad", "very")
    assert final["completed_at"] is None
    assert final["records_updated"] is None
    assert get_data(http, emu, f"/syncs/{sync_id}")["status"] == "Failing"


def test_skipped_outcome(http: requests.Session, emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(RunScript(outcome="skipped"))
    run_id = trigger(http, emu, sync_id)
    assert emu.run(run_id)["status"] == "skipped"
    assert statuses(http, emu, run_id, 2) == ["skipped", "skipped"]


def test_canceled_outcome(http: requests.Session, emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(RunScript(outcome="canceled", working_polls=1))
    run_id = trigger(http, emu, sync_id)
    seen = [poll(http, emu, run_id) for _ in range(3)]
    assert [run["status"] for run in seen] == ["queued", "working", "failed"]
    assert [run["canceled"] for run in seen] == [False, False, True]
    emu.script_sync(sync_id, RunScript(outcome="canceled", cancel_status="completed", queued_polls=0, working_polls=0))
    other = trigger(http, emu, sync_id)
    assert poll(http, emu, other)["status"] == "completed"
    assert emu.run(other)["canceled"] is True


def test_retired_state_then_completed(http: requests.Session, emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(RunScript(outcome="retired", status_name="retrying"))
    run_id = trigger(http, emu, sync_id)
    assert statuses(http, emu, run_id, 4) == ["retrying", "retrying", "retrying", "completed"]
    default = emu.add_sync(RunScript(outcome="retired", queued_polls=1, working_polls=0))
    assert statuses(http, emu, trigger(http, emu, default), 2) == ["preparing", "completed"]


def test_unknown_end_state(http: requests.Session, emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(RunScript(outcome="unknown", status_name="exploded"))
    run_id = trigger(http, emu, sync_id)
    assert statuses(http, emu, run_id, 5) == ["queued", "working", "working", "exploded", "exploded"]
    assert emu.run(run_id)["completed_at"] is None


def test_never_ending_run(http: requests.Session, emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(RunScript(outcome="never"))
    run_id = trigger(http, emu, sync_id)
    assert statuses(http, emu, run_id, 10)[-1] == "working"
    assert emu.run_finished_at(run_id) is None


class RunClock:
    """The runs' ``time.monotonic()``, moved only by the test: a time-driven run is where this clock
    says, however long each request takes on a busy machine."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


def test_time_driven_run(http: requests.Session, emu: CensusEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = RunClock(1000.0)
    monkeypatch.setattr(runs_module, "time", clock)
    sync_id = emu.add_sync(RunScript(advance="time", queued_seconds=1.5, working_seconds=0.5))
    run_id = trigger(http, emu, sync_id)
    assert emu.run_finished_at(run_id) == 1002.0  # known ahead: created, then 1.5 s queued and 0.5 s working
    assert statuses(http, emu, run_id, 5) == ["queued"] * 5  # polls do not drive it
    expected = [(1001.499, "queued"), (1001.5, "working"), (1001.999, "working"), (1002.0, "completed")]
    for now, status in expected:
        clock.now = now
        assert poll(http, emu, run_id)["status"] == status, now
    clock.now = 1010.0
    assert poll(http, emu, run_id)["status"] == "completed"
    assert emu.run_finished_at(run_id) == 1002.0


def test_invalid_scripts_are_refused() -> None:
    with pytest.raises(ValueError, match="outcome"):
        RunScript(outcome="exploded")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        RunScript(queued_polls=-1)


# -- trigger rules and cancel -------------------------------------------------------------


def test_trigger_while_busy_is_skipped(http: requests.Session, emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(RunScript(queued_polls=1, working_polls=1))
    first = trigger(http, emu, sync_id)
    second = trigger(http, emu, sync_id)
    assert second > first
    assert emu.run(second)["status"] == "skipped"
    assert get_data(http, emu, f"/syncs/{sync_id}")["status"] == "Working"
    assert statuses(http, emu, first, 3) == ["queued", "working", "completed"]
    third = trigger(http, emu, sync_id)
    assert emu.run(third)["status"] == "queued"
    assert [run["id"] for run in emu.runs_of(sync_id)] == [third, second, first]


def test_run_ids_are_global_and_increasing(http: requests.Session, emu: CensusEmulator) -> None:
    ids = [trigger(http, emu, sync_id) for sync_id in (60, 61)]
    ids.append(trigger(http, emu, emu.add_sync(FAST)))
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert min(ids) > 94


def test_bad_force_full_sync_is_400(http: requests.Session, emu: CensusEmulator) -> None:
    response = http.post(url(emu, "/syncs/60/trigger"), params={"force_full_sync": "maybe"})
    assert response.status_code == 400
    assert emu.runs_of(60) == []


def test_cancel_running_and_finished_runs(http: requests.Session, emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(RunScript(outcome="never"))
    run_id = trigger(http, emu, sync_id)
    poll(http, emu, run_id)
    response = http.post(url(emu, f"/sync_runs/{run_id}/cancel"))
    assert response.status_code == 200
    assert response.json() == {"status": "cancelled", "data": {}}
    canceled = poll(http, emu, run_id)
    assert canceled["canceled"] is True
    assert canceled["status"] == "failed"
    assert emu.run_finished_at(run_id) is not None
    assert emu.run(trigger(http, emu, sync_id))["status"] == "queued"  # no longer busy

    done_id = trigger(http, emu, emu.add_sync(FAST))
    before = poll(http, emu, done_id)
    again = http.post(url(emu, f"/sync_runs/{done_id}/cancel"))
    assert again.json() == {"status": "cancelled", "data": {}}
    assert emu.run(done_id) == before
    missing = http.post(url(emu, "/sync_runs/999999/cancel"))
    assert missing.status_code == 404
    assert "Sync run" in missing.json()["message"]
    assert http.get(url(emu, "/sync_runs/999999")).status_code == 404


def test_cancel_status_is_configurable(http: requests.Session, emu: CensusEmulator) -> None:
    sync_id = emu.add_sync(RunScript(cancel_status="completed"))
    run_id = trigger(http, emu, sync_id)
    http.post(url(emu, f"/sync_runs/{run_id}/cancel"))
    run = poll(http, emu, run_id)
    assert (run["status"], run["canceled"]) == ("completed", True)


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "502", "503", "401", "403"])
def test_status_faults(http: requests.Session, emu: CensusEmulator, kind: str) -> None:
    emu.fail_next(kind)
    response = http.get(url(emu, "/syncs"))
    assert response.status_code == int(kind)
    assert response.json()["status"] == "error"
    assert http.get(url(emu, "/syncs")).status_code == 200
    assert [(r.status, r.fault) for r in emu.requests] == [(int(kind), kind), (200, None)]


def test_429_with_retry_after_seconds(http: requests.Session, emu: CensusEmulator) -> None:
    emu.fail_next("429", retry_after=3)
    response = http.get(url(emu, "/syncs"))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    emu.set_faults(FaultProfile(rate=1.0, kinds=("429",), retry_after=0.5))
    assert http.get(url(emu, "/syncs")).headers["Retry-After"] == "0.5"


def test_429_with_retry_after_date(http: requests.Session, emu: CensusEmulator) -> None:
    emu.fail_next("429-date", retry_after=5)
    before = time.time()
    response = http.get(url(emu, "/syncs"))
    after = time.time()
    assert response.status_code == 429
    when = email.utils.parsedate_to_datetime(response.headers["Retry-After"]).timestamp()
    # The emulator answered at some moment between before and after: 5 s later, rounded up to a whole second.
    assert before + 5 <= when < after + 6


def test_html_fault(http: requests.Session, emu: CensusEmulator) -> None:
    emu.fail_next("html")
    response = http.get(url(emu, "/syncs"))
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html>" in response.text
    with pytest.raises(ValueError):
        response.json()


def test_cut_json_fault(http: requests.Session, emu: CensusEmulator) -> None:
    emu.fail_next("cut_json")
    response = http.get(url(emu, "/syncs"))
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content) > 0
    with pytest.raises(ValueError):
        json.loads(response.content)


def test_empty_fault(http: requests.Session, emu: CensusEmulator) -> None:
    emu.fail_next("empty")
    response = http.get(url(emu, "/syncs"))
    assert response.status_code == 200
    assert response.content == b""


def test_drop_fault_changes_nothing(http: requests.Session, emu: CensusEmulator) -> None:
    emu.fail_next("drop", method="POST", path_prefix="/api/v1/syncs/")
    with pytest.raises(requests.ConnectionError):
        http.post(url(emu, "/syncs/60/trigger"))
    assert emu.runs_of(60) == []
    last = emu.requests[-1]
    assert (last.status, last.fault) == (None, "drop")
    assert trigger(http, emu, 60) > 0  # the session recovers on a new connection


def test_drop_after_fault_starts_the_run(http: requests.Session, emu: CensusEmulator) -> None:
    emu.fail_next("drop_after", method="POST")
    with pytest.raises(requests.ConnectionError):
        http.post(url(emu, "/syncs/61/trigger"))
    runs = emu.runs_of(61)
    assert len(runs) == 1
    assert runs[0]["status"] == "queued"
    assert (emu.requests[-1].status, emu.requests[-1].fault) == (None, "drop_after")
    listed = get_data(http, emu, "/syncs/61/sync_runs")
    assert [run["id"] for run in listed] == [runs[0]["id"]]


@pytest.mark.parametrize("kind", ["429", "500", "html", "cut_json", "empty", "drop", "401"])
def test_faulted_trigger_creates_no_run(http: requests.Session, emu: CensusEmulator, kind: str) -> None:
    emu.fail_next(kind)
    try:
        http.post(url(emu, "/syncs/60/trigger"))
    except requests.ConnectionError:
        assert kind == "drop"
    assert emu.runs_of(60) == []


def test_latency_fault_and_constant_latency(
    http: requests.Session, emu: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the emulator waits, recorded where it waits: that no delay is left is not a matter of how fast
    # the answer came (a busy machine can take longer than any latency a test would set).
    delays: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(seconds)

    monkeypatch.setattr(server_module, "asyncio", SimpleNamespace(sleep=recorded_sleep))
    emu.fail_next("latency", latency=0.3)
    started = time.monotonic()
    assert http.get(url(emu, "/syncs")).status_code == 200
    assert time.monotonic() - started >= 0.3
    assert emu.requests[-1].fault == "latency"
    assert emu.requests[-1].finished_at - emu.requests[-1].started_at >= 0.3
    assert delays == [0.3]
    emu.set_faults(FaultProfile(latency=0.2))
    started = time.monotonic()
    for _ in range(2):
        assert http.get(url(emu, "/sources")).status_code == 200
    assert time.monotonic() - started >= 0.4
    assert emu.requests[-1].fault is None
    assert delays == [0.3, 0.2, 0.2]
    emu.set_faults(None)
    assert http.get(url(emu, "/sources")).status_code == 200
    assert emu.requests[-1].fault is None
    assert delays == [0.3, 0.2, 0.2], "no latency once the profile is gone"


def test_random_faults_are_seeded_and_filtered(http: requests.Session, emu: CensusEmulator) -> None:
    def draw() -> list[str | None]:
        emu.clear_requests()
        emu.set_faults(FaultProfile(rate=0.5, kinds=("500", "503"), seed=7, methods=("GET",)))
        for _ in range(40):
            http.get(url(emu, "/syncs"))
        return [record.fault for record in emu.requests]

    first = draw()
    assert first == draw()
    assert 5 < sum(fault is not None for fault in first) < 35
    assert {fault for fault in first} == {None, "500", "503"}
    assert http.patch(url(emu, "/syncs/60"), json={"label": "x"}).status_code == 200  # POST/PATCH spared
    emu.set_faults(FaultProfile(rate=1.0, kinds=("500",), path_prefix="/api/v1/sync_runs/"))
    assert http.get(url(emu, "/syncs")).status_code == 200
    assert http.get(url(emu, "/sync_runs/94")).status_code == 500


def test_fail_next_counts_and_matches(http: requests.Session, emu: CensusEmulator) -> None:
    emu.fail_next("503", count=2, method="POST", path_prefix="/api/v1/syncs/")
    assert http.get(url(emu, "/syncs/60")).status_code == 200
    assert http.post(url(emu, "/syncs/60/trigger")).status_code == 503
    assert http.post(url(emu, "/syncs/60/trigger")).status_code == 503
    assert http.post(url(emu, "/syncs/60/trigger")).status_code == 200
    assert len(emu.runs_of(60)) == 1
    emu.fail_next("500")
    emu.clear_faults()
    assert http.get(url(emu, "/syncs")).status_code == 200


def test_fault_profile_validation() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FaultProfile(rate=0.1, kinds=("teapot",))
    with pytest.raises(ValueError, match="rate"):
        FaultProfile(rate=1.5)
    profile = FaultProfile(rate=0.1, kinds=["429", "drop"], methods=["get"])  # type: ignore[arg-type]
    assert profile.kinds == ("429", "drop")
    assert profile.methods == ("GET",)


# -- request log --------------------------------------------------------------------------


def test_request_log(http: requests.Session, emu: CensusEmulator) -> None:
    before = time.monotonic()
    run_id = trigger(http, emu, 61, force_full_sync="true")
    poll(http, emu, run_id)
    requests.get(url(emu, "/syncs"), headers={"Authorization": "Bearer nope"})
    log = emu.requests
    assert all(isinstance(record, RecordedRequest) for record in log)
    assert [(r.method, r.path, r.status) for r in log] == [
        ("POST", "/api/v1/syncs/61/trigger", 200),
        ("GET", f"/api/v1/sync_runs/{run_id}", 200),
        ("GET", "/api/v1/syncs", 401),
    ]
    assert log[0].query == {"force_full_sync": "true"}
    assert all(before <= r.started_at <= r.finished_at <= time.monotonic() for r in log)
    assert TOKEN not in repr(log)
    assert emu.requests_for("POST", "/api/v1/syncs/61/trigger") == [log[0]]
    assert emu.requests_for("get") == log[1:]
    emu.clear_requests()
    assert emu.requests == []


# -- the command line ---------------------------------------------------------------------


def test_command_line_serves_until_terminated() -> None:
    process = emulator_cli.serve("--token", "cli-token", "--latency", "0.05")
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert re.match(r"^http://127\.0\.0\.1:\d+/api/v1$", base_url), base_url
        assert "cli-token" in process.stdout.readline()
        response = requests.get(base_url + "/syncs/60", headers={"Authorization": "Bearer cli-token"}, timeout=5)
        assert response.status_code == 200
        assert response.json()["data"]["id"] == 60
    finally:
        emulator_cli.stop(process)


def test_command_line_control_channel_scripts_runs_and_hands_out_the_request_log() -> None:
    with emulator_cli.controlled("--token", "cli-token") as emulator:
        assert emulator.token == "cli-token"
        before = time.time()
        # Working for 10 minutes: the read below finds it going however slow the machine is.
        started = emulator.command({"call": "start_run", "script": {"advance": "time", "working_seconds": 600}})
        assert before + 599 < started["ends_at"] < time.time() + 601
        response = requests.get(
            f"{emulator.base_url}/sync_runs/{started['run_id']}",
            headers={"Authorization": "Bearer cli-token"},
            timeout=5,
        )
        assert response.json()["data"]["status"] in ("queued", "working")
        assert emulator.command({"call": "run", "run_id": started["run_id"]})["run"]["id"] == started["run_id"]
        logged = emulator.command({"call": "requests"})["requests"]
        assert [(r["method"], r["path"], r["status"]) for r in logged] == [
            ("GET", f"/api/v1/sync_runs/{started['run_id']}", 200)
        ]
        assert before <= logged[0]["started_at"] <= logged[0]["finished_at"] <= time.time()
        assert "known 'call'" in emulator.command({"call": "teapot"})["error"]
        assert "start_run" in emulator.command({"call": "start_run", "script": {"outcome": "nonsense"}})["error"]


def test_command_line_rejects_unknown_fault_kinds() -> None:
    result = emulator_cli.refusal("--fault-rate", "0.5", "--faults", "teapot")
    assert result.returncode == 2
    assert "teapot" in result.stderr


# -- lifecycle of the emulator itself -----------------------------------------------------


def test_start_stop_and_port_reuse() -> None:
    emulator = CensusEmulator()
    with pytest.raises(RuntimeError):
        _ = emulator.base_url
    emulator.start()
    port = emulator.port
    assert emulator.base_url == f"http://127.0.0.1:{port}/api/v1"
    assert emulator.token == "secret-token:emulator"
    emulator.stop()
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/api/v1/syncs", timeout=2)
    with CensusEmulator(port=port) as again:
        assert again.port == port


# -- pytest fixtures ----------------------------------------------------------------------


def _plugin_args() -> list[str]:
    """The plugin is opt-in: a user's run loads it with ``-p``."""
    return ["-p", "airflow_provider_census.testing.pytest_plugin"]


def test_pytest_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import json
        import os

        import requests


        def test_emulator(census_emulator):
            headers = {"Authorization": f"Bearer {census_emulator.token}"}
            response = requests.get(census_emulator.base_url + "/syncs/60", headers=headers)
            assert response.status_code == 200


        def test_conn(census_conn):
            conn = json.loads(os.environ["AIRFLOW_CONN_CENSUS_DEFAULT"])
            assert conn["conn_type"] == "census"
            version = conn["extra"]["api_version"]
            assert conn["password"] == census_conn.token_for(version)
            assert conn["extra"]["base_url"] == census_conn.api_base_url(version)
            headers = {"Authorization": f"Bearer {conn['password']}"}
            response = requests.post(conn["extra"]["base_url"] + "/syncs/61/trigger", headers=headers)
            assert response.json()["status"] == "success"
            assert len(census_conn.runs_of(61)) == 1


        def test_env_is_restored():
            assert "AIRFLOW_CONN_CENSUS_DEFAULT" not in os.environ
        """
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)  # test_conn once per API version


# -- a thousand pollers -------------------------------------------------------------------


async def test_a_thousand_concurrent_keep_alive_pollers() -> None:
    """A thousand clients poll at once over keep-alive connections, and every one sees its run end."""
    clients = 1000
    with CensusEmulator(token=TOKEN) as emulator:
        sync_id = emulator.add_sync(RunScript(advance="time", queued_seconds=0.5, working_seconds=1.0))
        run_id = emulator.trigger(sync_id)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        run_url = f"{emulator.base_url}/sync_runs/{run_id}"
        codes: list[int] = []
        connections_opened: list[object] = []

        everyone_polled = asyncio.Event()

        async def poll(session: aiohttp.ClientSession) -> str:
            async with session.get(run_url, headers=headers) as response:
                codes.append(response.status)
                return str((await response.json())["data"]["status"])

        async def poller(session: aiohttp.ClientSession) -> str:
            await poll(session)
            if len(codes) == clients:
                everyone_polled.set()
            await everyone_polled.wait()  # all connections are open at once before anyone polls again
            status = await poll(session)
            while status in ("queued", "working"):
                await asyncio.sleep(0.5)
                status = await poll(session)
            return status

        async def on_connection_created(*args: object) -> None:
            connections_opened.append(args)

        tracing = aiohttp.TraceConfig()
        tracing.on_connection_create_end.append(on_connection_created)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, trace_configs=[tracing]) as session:
            results = await asyncio.gather(*(poller(session) for _ in range(clients)))

    assert results == ["completed"] * clients
    assert set(codes) == {200}
    assert len(codes) >= 2 * clients
    # Keep-alive held: later polls reused the connections of the first ones.
    assert len(connections_opened) <= clients
