"""The "Census sync run" link points at the right app host for each connection."""

from __future__ import annotations

import json

import pytest

from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.sensors.census import CensusSyncRunSensor
from tests.task_context import FakeTaskInstance, context_for


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "https://app.getcensus.com/syncs/7/history?sync_run_id=42"),
        ({"region": "eu"}, "https://app-eu.getcensus.com/syncs/7/history?sync_run_id=42"),
        (
            {"base_url": "https://census.corp.example/api/v1"},
            "https://census.corp.example/syncs/7/history?sync_run_id=42",
        ),
    ],
)
def test_run_url_follows_the_connection(monkeypatch: pytest.MonkeyPatch, extra: dict[str, str], expected: str) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CENSUS_DEFAULT", json.dumps({"conn_type": "census", "password": "tok-123456", "extra": extra})
    )
    assert CensusHook().sync_run_url(7, 42) == expected
    ti = FakeTaskInstance()
    CensusSyncRunSensor(task_id="wait", sync_run_id=42).publish(context_for(ti), 7, 42)
    assert ti.pushed == [("sync_run_id", 42), ("sync_run_url", expected)]
    assert "tok-123456" not in expected
