"""The "Census sync run" link points at the right app host for each connection."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_census.api.settings import sync_run_app_url
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.outcomes import RunExpectations
from airflow_provider_census.waiting import SyncRunWaiter, WaitSettings
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
    hook = CensusHook()
    assert sync_run_app_url(hook.base_url, 7, 42) == expected
    ti = FakeTaskInstance()
    settings = WaitSettings("census_default", 1.0, 3, 60.0, True)
    waiter = SyncRunWaiter(hook, RunExpectations(), settings, logging.getLogger("test"))
    waiter.publish(context_for(ti), 7, 42)
    assert ti.pushed == [("sync_run_id", 42), ("sync_run_url", expected)]
    assert "tok-123456" not in expected
