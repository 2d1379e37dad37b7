"""Retry rules over real HTTP: what is retried, how long we wait, and never two runs per trigger."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_census.api.endpoints import GET_SYNC, TRIGGER_SYNC
from airflow_provider_census.api.errors import (
    CensusApiError,
    CensusAuthenticationError,
    CensusError,
    CensusNotFoundError,
    CensusRateLimitError,
    CensusResponseError,
    CensusServerError,
    CensusTransportError,
    CensusTriggerUnconfirmedError,
)
from airflow_provider_census.api.models import Page, SyncRun
from airflow_provider_census.api.retry import RetryPolicy, parse_retry_after
from airflow_provider_census.api.settings import ClientSettings
from airflow_provider_census.hooks import triggering
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.testing import CensusEmulator, RunScript
from tests.conftest import QUICK_RETRIES

TRANSIENT_KINDS = ["429", "429-date", "500", "502", "503", "html", "cut_json", "empty", "drop"]
ERROR_FOR_KIND: dict[str, type[CensusError]] = {
    "429": CensusRateLimitError,
    "500": CensusServerError,
    "503": CensusServerError,
    "html": CensusServerError,
    "cut_json": CensusResponseError,
    "empty": CensusResponseError,
    "drop": CensusTransportError,
    "401": CensusAuthenticationError,
    "403": CensusAuthenticationError,
}


def sync_path(sync_id: int) -> str:
    return f"/syncs/{sync_id}"


@pytest.mark.parametrize("kind", TRANSIENT_KINDS)
def test_transient_faults_on_reads_are_retried(hook: CensusHook, census_conn: CensusEmulator, kind: str) -> None:
    census_conn.fail_next(kind, count=2, method="GET", path_prefix=sync_path(61), retry_after=0.01)
    assert hook.get_sync(61).id == 61
    faults = [r.fault for r in census_conn.requests_for("GET", sync_path(61))]
    assert faults == [kind, kind, None]


@pytest.mark.parametrize(("kind", "error_class"), ERROR_FOR_KIND.items())
def test_persistent_fault_ends_with_its_error_class(
    hook: CensusHook, census_conn: CensusEmulator, kind: str, error_class: type[CensusError]
) -> None:
    census_conn.fail_next(kind, count=50, method="GET", path_prefix=sync_path(61), retry_after=0.01)
    with pytest.raises(error_class) as info:
        hook.get_sync(61)
    assert census_conn.token not in str(info.value)
    assert "/syncs/61" in str(info.value)
    attempts = len(census_conn.requests_for("GET", sync_path(61)))
    assert attempts == (1 if kind in ("401", "403") else QUICK_RETRIES.max_attempts)


def test_dropped_connection_may_have_reached_census(hook: CensusHook, census_conn: CensusEmulator) -> None:
    census_conn.fail_next("drop", count=50, method="GET", path_prefix=sync_path(61))
    with pytest.raises(CensusTransportError) as info:
        hook.get_sync(61)
    assert info.value.reached_census is True


def test_refused_connection_surely_did_not_reach_census(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_CENSUS_DEFAULT",
        f'{{"conn_type": "census", "password": "tok-12345", "extra": {{"base_url": "http://127.0.0.1:{closed_port}"}}}}',
    )
    with pytest.raises(CensusTransportError) as info:
        CensusHook(retry_policy=QUICK_RETRIES).get_sync(61)
    assert info.value.reached_census is False
    assert "could not connect" in str(info.value)


def test_retry_after_is_waited_for(hook: CensusHook, census_conn: CensusEmulator) -> None:
    census_conn.fail_next("429", count=1, method="GET", path_prefix=sync_path(61), retry_after=0.25)
    hook.get_sync(61)
    limited, served = census_conn.requests_for("GET", sync_path(61))
    assert limited.status == 429
    assert served.started_at - limited.finished_at >= 0.25


def test_wait_follows_retry_after_capped_else_backs_off() -> None:
    policy = RetryPolicy(initial_wait=1.0, max_wait=30.0, max_retry_after=60.0)
    limited = CensusRateLimitError("x", http_status=429, request_label="GET /x", retry_after=12.0)
    assert policy.wait_seconds(1, limited) == 12.0
    flooded = CensusRateLimitError("x", http_status=429, request_label="GET /x", retry_after=3600.0)
    assert policy.wait_seconds(1, flooded) == 60.0
    waits = [policy.wait_seconds(attempt, None) for attempt in range(1, 8)]
    assert 1.0 <= waits[0] <= 2.0 and 2.0 <= waits[1] <= 3.0 and 4.0 <= waits[2] <= 5.0
    assert max(waits) == 30.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Thu, 01 Jan 2099 00:00:10 GMT", now=4070908800.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_total_budget_bounds_the_tries(census_conn: CensusEmulator) -> None:
    """Each wait is exactly 0.1 s, so a 1.5 s budget allows at most 16 tries of the 100 allowed.

    The lower bound stays loose: on a loaded machine a first request alone may take most of a
    second, and a budget that tight would make the test depend on the machine's speed.
    """
    policy = RetryPolicy(max_attempts=100, budget_seconds=1.5, initial_wait=0.1, max_wait=0.1)
    census_conn.fail_next("500", count=200, method="GET", path_prefix=sync_path(61))
    with pytest.raises(CensusServerError):
        CensusHook(retry_policy=policy).get_sync(61)
    assert 2 <= len(census_conn.requests_for("GET", sync_path(61))) <= 16


def test_non_repeatable_requests_retry_only_when_surely_not_received() -> None:
    settings = ClientSettings(base_url="https://app.getcensus.com/api/v2", token="t", api_version="v2")
    trigger = TRIGGER_SYNC.bind(settings, sync_id=1)
    read = GET_SYNC.bind(settings, sync_id=1)
    never_connected = CensusTransportError("x", reached_census=False)
    dropped = CensusTransportError("x", reached_census=True)
    limited = CensusRateLimitError("x", http_status=429, request_label="POST /x")
    failed = CensusServerError("x", http_status=502, request_label="POST /x")
    policy = RetryPolicy()
    assert [policy.should_retry(trigger, exc) for exc in (never_connected, dropped, limited, failed)] == [
        True,
        False,
        True,
        False,
    ]
    assert all(policy.should_retry(read, exc) for exc in (never_connected, dropped, limited, failed))
    assert not policy.should_retry(read, CensusNotFoundError("x", http_status=404, request_label="GET /x"))


# -- the trigger: one call, one run --------------------------------------------------------


def trigger_posts(emulator: CensusEmulator, sync_id: int) -> list[Any]:
    return emulator.requests_for("POST", f"{sync_path(sync_id)}/trigger")


def test_rate_limited_trigger_is_resent_without_doubt(hook: CensusHook, census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="never"))
    census_conn.fail_next("429", count=1, method="POST", path_prefix=sync_path(sync_id), retry_after=0.01)
    run_id = hook.trigger_sync_run(sync_id)
    assert [r.fault for r in trigger_posts(census_conn, sync_id)] == ["429", None]
    assert [run["id"] for run in census_conn.runs_of(sync_id)] == [run_id]


def test_trigger_whose_answer_was_lost_adopts_its_run(hook: CensusHook, census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="never"))
    earlier = census_conn.trigger(sync_id)
    census_conn.script_sync(sync_id, RunScript(outcome="completed"))
    census_conn.fail_next("drop_after", count=1, method="POST", path_prefix=sync_path(sync_id))
    run_id = hook.trigger_sync_run(sync_id)
    assert len(trigger_posts(census_conn, sync_id)) == 1
    runs = [run["id"] for run in census_conn.runs_of(sync_id)]
    assert runs == [run_id, earlier]


@pytest.mark.parametrize("kind", ["503", "drop", "html", "cut_json"])
def test_ambiguous_trigger_failure_checks_then_resends_once(
    hook: CensusHook, census_conn: CensusEmulator, kind: str
) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="never"))
    census_conn.fail_next(kind, count=1, method="POST", path_prefix=sync_path(sync_id))
    run_id = hook.trigger_sync_run(sync_id)
    posts = trigger_posts(census_conn, sync_id)
    assert [r.fault for r in posts] == [kind, None]
    checks = [
        r
        for r in census_conn.requests_for("GET", f"{sync_path(sync_id)}/sync_runs")
        if posts[0].finished_at <= r.started_at <= posts[1].started_at
    ]
    assert len(checks) == 2
    assert [run["id"] for run in census_conn.runs_of(sync_id)] == [run_id]


def test_trigger_never_confirmed_gives_up_without_a_second_run(hook: CensusHook, census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="never"))
    census_conn.fail_next("drop", count=50, method="POST", path_prefix=sync_path(sync_id))
    with pytest.raises(CensusTriggerUnconfirmedError, match=f"Triggering sync {sync_id} failed"):
        hook.trigger_sync_run(sync_id)
    assert len(trigger_posts(census_conn, sync_id)) == QUICK_RETRIES.max_attempts
    assert census_conn.runs_of(sync_id) == []


def test_trigger_of_unknown_sync_names_it(
    hook: CensusHook, census_conn: CensusEmulator, census_api_version: str
) -> None:
    """v1's run list says the sync does not exist before anything is sent; on V2 that list is not documented,
    so its 404 proves nothing, and the documented trigger's own 404 is the answer (it started nothing)."""
    with pytest.raises(CensusNotFoundError, match="Census has no sync 424242") as info:
        hook.trigger_sync_run(424242)
    posts = trigger_posts(census_conn, 424242)
    if census_api_version == "v1":
        assert posts == []
    else:
        assert [post.status for post in posts] == [404]
        assert "POST /syncs/424242/trigger" in str(info.value)


def test_trigger_refused_by_census_is_not_retried(hook: CensusHook, census_conn: CensusEmulator) -> None:
    census_conn.fail_next("403", count=5, method="POST", path_prefix=sync_path(61))
    with pytest.raises(CensusAuthenticationError):
        hook.trigger_sync_run(61)
    assert len(trigger_posts(census_conn, 61)) == 1


# -- the async client follows the same rules ------------------------------------------------


async def test_async_reads_are_retried(census_conn: CensusEmulator) -> None:
    run_id = census_conn.trigger(61)
    census_conn.fail_next("503", count=2, method="GET", path_prefix=f"/sync_runs/{run_id}")
    hook = CensusHook(retry_policy=QUICK_RETRIES)
    try:
        assert (await hook.aget_sync_run(run_id)).id == run_id
    finally:
        await hook.aclose()
    assert [r.fault for r in census_conn.requests_for("GET", f"/sync_runs/{run_id}")] == ["503", "503", None]


@pytest.mark.parametrize(("kind", "error_class"), [("drop", CensusTransportError), ("cut_json", CensusResponseError)])
async def test_async_persistent_fault_ends_with_its_error_class(
    census_conn: CensusEmulator, kind: str, error_class: type[CensusApiError]
) -> None:
    run_id = census_conn.trigger(61)
    census_conn.fail_next(kind, count=50, method="GET", path_prefix=f"/sync_runs/{run_id}")
    hook = CensusHook(retry_policy=QUICK_RETRIES)
    try:
        with pytest.raises(error_class) as info:
            await hook.aget_sync_run(run_id)
    finally:
        await hook.aclose()
    assert census_conn.token not in str(info.value)
    # aiohttp itself resends an idempotent request once when the server hangs up (meant for
    # stale keep-alive connections), so each of our attempts is two requests on a drop.
    sends_per_attempt = 2 if kind == "drop" else 1
    attempts = len(census_conn.requests_for("GET", f"/sync_runs/{run_id}"))
    assert attempts == sends_per_attempt * QUICK_RETRIES.max_attempts


def test_after_a_lost_answer_only_a_run_created_since_the_trigger_went_out_is_adopted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Someone else's run, newer than the baseline but created before our trigger, is not ours."""
    sent_at = 1_800_000_000.0

    def run(run_id: int, seconds_after_sending: float | None) -> SyncRun:
        created = None
        if seconds_after_sending is not None:
            moment = datetime.fromtimestamp(sent_at + seconds_after_sending, timezone.utc)
            created = moment.isoformat().replace("+00:00", "Z")
        return SyncRun(id=run_id, sync_id=7, status="working", canceled=False, created_at=created)

    hook = CensusHook("unused", trigger_settle_seconds=0.05)
    listed: list[list[SyncRun]] = [[run(12, -60.0)], [run(12, -60.0)], [run(13, 0.4), run(12, -60.0)]]
    monkeypatch.setattr(hook, "list_sync_runs", lambda *args, **kwargs: Page(listed.pop(0), 1, 10, None, None))
    deadline = time.monotonic() + 10
    assert triggering._run_started_after(hook, 7, baseline=11, sent_at=sent_at, deadline=deadline) is None
    assert triggering._run_started_after(hook, 7, baseline=11, sent_at=sent_at, deadline=deadline) == 13
    undated = [run(14, None)]
    monkeypatch.setattr(hook, "list_sync_runs", lambda *args, **kwargs: Page(undated, 1, 10, None, None))
    assert triggering._run_started_after(hook, 7, baseline=11, sent_at=sent_at, deadline=deadline) == 14
