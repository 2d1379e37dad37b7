"""Every sample response printed in Census's API documents parses into our typed results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_census.api import endpoints as ep
from airflow_provider_census.api.endpoints import Request
from airflow_provider_census.api.inputs import PageQuery
from airflow_provider_census.api.models import Sync, SyncRun
from airflow_provider_census.api.settings import ClientSettings
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.api.wire import Answer
from airflow_provider_census.api.wire import parse as parse_answer

SAMPLES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "data" / "doc_samples.json").read_text())
SETTINGS = ClientSettings(base_url="https://app.getcensus.com/api/v1", token="secret-token:sample")
ALL_PAGES = PageQuery(1, 100, "desc").params()

REQUEST_FOR_SAMPLE: dict[str, Request[Any]] = {
    "GET /sources": ep.LIST_SOURCES.bind(SETTINGS, params=ALL_PAGES),
    "GET /sources/[ID or SLUG]": ep.GET_SOURCE.bind(SETTINGS, source=4),
    "GET /sources/[ID or SLUG]/models/[ID]": ep.GET_MODEL.bind(SETTINGS, source=4, model_id=18),
    "GET /sources/[ID or SLUG]/tables/[ID]": ep.GET_TABLE.bind(SETTINGS, source=4, table_id=2),
    "GET /destinations": ep.LIST_DESTINATIONS.bind(SETTINGS, params=ALL_PAGES),
    "GET /destinations/[ID or SLUG]": ep.GET_DESTINATION.bind(SETTINGS, activation="braze"),
    "GET /destinations/[ID or SLUG]/objects/[OBJECT_FULL_NAME]": ep.GET_DESTINATION_OBJECT.bind(
        SETTINGS, activation=15, object_name="user"
    ),
    "GET /sync_runs/[ID]": ep.GET_SYNC_RUN.bind(SETTINGS, sync_run_id=94),
    "GET /syncs/[ID]/sync_runs": ep.LIST_SYNC_RUNS.bind(SETTINGS, params=ALL_PAGES, sync_id=52),
    "POST /syncs/[ID]/trigger": ep.TRIGGER_SYNC.bind(SETTINGS, sync_id=52),
    "POST /syncs/create": ep.CREATE_SYNC_LEGACY.bind(SETTINGS, body={"operation": "mirror"}),
}


def parse(sample: dict[str, Any]) -> Any:
    answer = Answer(200, {"Content-Type": "application/json"}, json.dumps(sample["response"]).encode())
    return parse_answer(SETTINGS, REQUEST_FOR_SAMPLE[sample["endpoint"]], answer)


def test_every_documented_endpoint_has_a_sample() -> None:
    assert sorted(sample["endpoint"] for sample in SAMPLES) == sorted(REQUEST_FOR_SAMPLE)


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample["endpoint"] for sample in SAMPLES])
def test_sample_parses_and_keeps_every_field(sample: dict[str, Any]) -> None:
    result = parse(sample)
    data = sample["response"]["data"]
    if isinstance(data, list):
        assert len(result.items) == len(data)
        for item, raw in zip(result.items, data, strict=True):
            assert (item.raw if isinstance(item, SyncRun | Sync) else item) == raw
    elif isinstance(result, SyncRun):
        assert result.raw == data
    elif isinstance(result, int):
        assert result == data["sync_run_id"]
    elif hasattr(result, "sync_id"):
        assert result.sync_id == data["sync_id"]
        assert result.status == "created"
    else:
        assert result == data


def test_sync_run_sample_fields() -> None:
    (sample,) = [s for s in SAMPLES if s["endpoint"] == "GET /sync_runs/[ID]"]
    run = parse(sample)
    assert (run.id, run.sync_id, run.status, run.canceled) == (94, 52, "completed", False)
    assert (run.records_processed, run.records_updated, run.records_failed, run.records_invalid) == (1, 1, 0, 0)
    assert run.source_record_count == 1
    assert run.outcome is RunOutcome.SUCCEEDED
    assert run.raw["sync_trigger_reason"]["ui_tag"] == "Manual"


def test_failed_run_sample_carries_census_error_fields() -> None:
    (sample,) = [s for s in SAMPLES if s["endpoint"] == "GET /syncs/[ID]/sync_runs"]
    failed = parse(sample).items[1]
    assert failed.outcome is RunOutcome.FAILED
    assert failed.error_code == "JSON_ARRAY_ERROR"
    assert failed.error_message is not None and failed.error_message.startswith("The array field")
    assert failed.error_detail is not None and "custom_field:Users" in failed.error_detail
    assert failed.records_processed is None
    assert failed.current_step == "Running sync"
