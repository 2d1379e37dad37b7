"""Every sample response printed in Census's API documents parses into our typed results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_census.api import operations as ops
from airflow_provider_census.api.client import ClientSettings, RawAnswer, parse_answer, read_result
from airflow_provider_census.api.models import Sync, SyncRun
from airflow_provider_census.api.operations import PageQuery
from airflow_provider_census.api.states import RunOutcome

SAMPLES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "data" / "doc_samples.json").read_text())
SETTINGS = ClientSettings(base_url="https://app.getcensus.com/api/v1", token="secret-token:sample")
ALL_PAGES = PageQuery(1, 100, "desc")

OPERATION_FOR_SAMPLE: dict[str, ops.Operation[Any]] = {
    "GET /sources": ops.list_sources(ALL_PAGES),
    "GET /sources/[ID or SLUG]": ops.get_source(4),
    "GET /sources/[ID or SLUG]/models/[ID]": ops.get_model(4, 18),
    "GET /sources/[ID or SLUG]/tables/[ID]": ops.get_table(4, 2),
    "GET /destinations": ops.list_destinations(ALL_PAGES),
    "GET /destinations/[ID or SLUG]": ops.get_destination("braze"),
    "GET /destinations/[ID or SLUG]/objects/[OBJECT_FULL_NAME]": ops.get_destination_object(15, "user"),
    "GET /sync_runs/[ID]": ops.get_sync_run(94),
    "GET /syncs/[ID]/sync_runs": ops.list_sync_runs(52, ALL_PAGES),
    "POST /syncs/[ID]/trigger": ops.trigger_sync(52),
    "POST /syncs/create": ops.create_sync(
        {"operation": "mirror", "source_attributes": {}, "destination_attributes": {}, "mappings": []},
        legacy_endpoint=True,
    ),
}


def parse(sample: dict[str, Any]) -> Any:
    operation = OPERATION_FOR_SAMPLE[sample["endpoint"]]
    answer = RawAnswer(200, {"Content-Type": "application/json"}, json.dumps(sample["response"]).encode())
    return read_result(operation, parse_answer(SETTINGS, operation.request, answer))


def test_every_documented_endpoint_has_a_sample() -> None:
    assert sorted(sample["endpoint"] for sample in SAMPLES) == sorted(OPERATION_FOR_SAMPLE)


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
