"""The hook against the emulator over real HTTP: every endpoint, paging, sync and async."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import time
import warnings
import weakref
from typing import Any

import pytest

from airflow_provider_census.api.errors import (
    CensusApiVersionError,
    CensusAuthenticationError,
    CensusNotFoundError,
    CensusValidationError,
)
from airflow_provider_census.api.retry import ONE_TRY
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.hooks import preflight as preflight_module
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.hooks.census_async import CensusAsyncHook
from airflow_provider_census.testing import CensusEmulator, RunScript

BRAZE = {"v1": 15, "v2": "glimmering_donkey"}
"""The emulator's Braze destination: an integer id on v1, an activation's text id on V2."""

ASYNC_HOOKS = pytest.mark.parametrize("hook_class", [CensusHook, CensusAsyncHook])
"""The async calls, through the hook tasks use and through the one triggers use."""


def valid_sync(api_version: str) -> dict[str, Any]:
    return {
        "operation": "upsert",
        "label": "orders to braze",
        "source_attributes": {"connection_id": 4, "object": {"type": "model", "name": "braze_test"}},
        "destination_attributes": {"connection_id": BRAZE[api_version], "object": "user"},
        "mappings": [{"from": {"type": "column", "data": "EMAIL"}, "to": "external_id", "is_primary_identifier": True}],
    }


def test_catalog_endpoints(hook: CensusHook, census_api_version: str) -> None:
    sources = hook.list_sources().items
    assert {source["id"] for source in sources} >= {4, 10}
    assert hook.get_source(4)["slug"] == hook.get_source(sources[0]["slug"] if sources[0]["id"] == 4 else 4)["slug"]
    objects = list(hook.iter_source_objects(4))
    assert {obj["type"] for obj in objects} == {"model", "table"}
    model_id = next(obj["id"] for obj in objects if obj["type"] == "model")
    assert hook.get_model(4, model_id)["columns"]
    assert all(obj["type"] == "model" for obj in hook.iter_models(4))
    table_id = next(obj["id"] for obj in objects if obj["type"] == "table")
    assert hook.get_table(4, table_id)["table_name"]
    assert [table["id"] for table in hook.iter_tables(4)] == [table_id]
    braze = BRAZE[census_api_version]
    activations = hook.list_activations().items
    assert {activation["slug"] for activation in activations} >= {"braze", "hubspot"}
    assert hook.get_activation("braze")["id"] == braze
    assert {obj["full_name"] for obj in hook.iter_activation_objects(braze)} >= {"user", "event"}
    assert hook.get_activation_object(braze, "user")["fields"]
    assert {kind["service_name"] for kind in hook.list_activation_types().items} >= {"braze"}


def test_v1_names_of_activation_calls_work_on_v1_and_point_v2_at_the_new_names(
    hook: CensusHook, census_api_version: str
) -> None:
    calls = {
        "list_activations": lambda: hook.list_destinations().items,
        "get_activation": lambda: hook.get_destination("braze"),
        "list_activation_objects": lambda: hook.list_destination_objects(15).items,
        "get_activation_object": lambda: hook.get_destination_object(15, "user"),
    }
    for new_name, call in calls.items():
        if census_api_version == "v1":
            assert call()
        else:
            with pytest.raises(CensusApiVersionError, match=f"use CensusHook.{new_name} instead"):
                call()
    if census_api_version == "v2":
        with pytest.raises(CensusApiVersionError) as info:
            hook.list_destinations()
        assert hook.census_conn_id in str(info.value)


def test_v2_lists_send_the_group(hook: CensusHook, census_conn: CensusEmulator, census_api_version: str) -> None:
    hook.list_sources()
    hook.list_activations()
    hook.list_syncs(group_id="projected_sickle" if census_api_version == "v2" else None)
    expected = {"group_id": census_conn.group_id} if census_api_version == "v2" else {}
    for path in ("/sources", "/activations" if census_api_version == "v2" else "/destinations", "/syncs"):
        (sent,) = census_conn.requests_for("GET", path)
        assert {key: sent.query[key] for key in sent.query if key == "group_id"} == expected, path


def connect_v2_without_a_group(monkeypatch: pytest.MonkeyPatch, emulator: CensusEmulator) -> None:
    extra = {"base_url": emulator.api_base_url("v2"), "api_version": "v2"}
    conn = {"conn_type": "census", "password": emulator.token_for("v2"), "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_CENSUS_DEFAULT", json.dumps(conn))


def test_v2_lists_are_sent_without_a_group_when_none_is_known(
    census_emulator: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect_v2_without_a_group(monkeypatch, census_emulator)
    hook = CensusHook(retry_policy=ONE_TRY)
    assert hook.list_sources().items
    assert hook.list_activations().items
    assert hook.list_syncs().items
    for path in ("/sources", "/activations", "/syncs"):
        (sent,) = census_emulator.requests_for("GET", path)
        assert "group_id" not in sent.query, path


def test_a_v2_list_census_refuses_for_want_of_a_group_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with CensusEmulator(require_group=True) as emulator:
        connect_v2_without_a_group(monkeypatch, emulator)
        with pytest.raises(CensusValidationError) as info:
            CensusHook(retry_policy=ONE_TRY).list_activations()
    message = str(info.value)
    assert "HTTP 400 on GET /activations" in message
    assert "The request named no group; set the extra group_id of Airflow connection 'census_default'" in message
    assert "Setup tab" in message


def test_v2_sync_creation_sends_no_group_in_its_query(hook: CensusHook, census_conn: CensusEmulator) -> None:
    """Nothing documents group_id on V2's POST /syncs: none is sent, though the connection has one."""
    hook.create_sync(valid_sync(hook.api_version), validate_only=True)
    (sent,) = census_conn.requests_for("POST", "/syncs")
    assert "group_id" not in sent.query


def test_sync_life_cycle_create_update_delete(
    hook: CensusHook, census_conn: CensusEmulator, census_api_version: str
) -> None:
    valid = valid_sync(census_api_version)
    checked = hook.create_sync(valid, validate_only=True)
    assert checked.sync_id is None and checked.status == "success"
    created = hook.create_sync(valid)
    assert created.status == "created" and created.sync_id is not None
    if census_api_version == "v1":
        legacy = hook.create_sync(
            {
                **valid,
                "source_attributes": {
                    "connection_slug": "snowflake-xxxxxxx-us-east-1",
                    "type": "model",
                    "model_name": "braze_test",
                },
            },
            legacy_endpoint=True,
        )
        assert legacy.sync_id is not None and legacy.sync_id != created.sync_id
    sync = hook.get_sync(created.sync_id)
    assert (sync.id, sync.label, sync.operation) == (created.sync_id, "orders to braze", "upsert")
    assert hook.update_sync(created.sync_id, {"paused": True}).status == "updated"
    assert hook.get_sync(created.sync_id).paused is True
    assert created.sync_id in {s.id for s in hook.iter_syncs(per_page=1)}
    assert hook.delete_sync(created.sync_id).status == "deleted"
    with pytest.raises(CensusNotFoundError, match=f"no sync {created.sync_id}"):
        hook.get_sync(created.sync_id)
    assert [r.method for r in census_conn.requests_for("POST", "/syncs")] == ["POST", "POST"]


def test_census_validation_message_reaches_the_user(hook: CensusHook, census_api_version: str) -> None:
    with pytest.raises(CensusValidationError) as info:
        hook.create_sync({**valid_sync(census_api_version), "mappings": []})
    assert info.value.http_status == 422
    assert info.value.census_message and info.value.census_message in str(info.value)


def test_trigger_and_follow_a_run_to_completion(hook: CensusHook, census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="completed", records_processed=7, records_updated=7))
    run_id = hook.trigger_sync_run(sync_id, force_full_sync=True)
    states = []
    for _ in range(10):
        run = hook.get_sync_run(run_id)
        states.append(run.status)
        if run.outcome.is_terminal:
            break
    assert states == ["queued", "working", "working", "completed"]
    assert run.outcome is RunOutcome.SUCCEEDED
    assert (run.records_processed, run.full_sync) == (7, True)
    assert [r.id for r in hook.iter_sync_runs(sync_id)] == [run_id]
    latest = hook.latest_sync_run(sync_id)
    assert latest is not None and latest.id == run_id
    (trigger,) = census_conn.requests_for("POST", f"/syncs/{sync_id}/trigger")
    assert trigger.query == {"force_full_sync": "true"}


def test_failed_run_carries_census_error_fields(hook: CensusHook, census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(
        RunScript(outcome="failed", working_polls=0, error_code="JSON_ARRAY_ERROR", error_message="bad array")
    )
    run_id = hook.trigger_sync_run(sync_id)
    hook.get_sync_run(run_id)
    run = hook.get_sync_run(run_id)
    assert run.outcome is RunOutcome.FAILED
    assert (run.error_code, run.error_message) == ("JSON_ARRAY_ERROR", "bad array")


def test_cancel_a_run(hook: CensusHook, census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="never"))
    run_id = hook.trigger_sync_run(sync_id)
    assert hook.cancel_sync_run(run_id)["status"] == "cancelled"
    assert hook.get_sync_run(run_id).outcome is RunOutcome.CANCELED
    with pytest.raises(CensusNotFoundError, match="no sync run 999999"):
        hook.cancel_sync_run(999999)


def test_iterators_follow_pages_to_the_end(hook: CensusHook, census_conn: CensusEmulator) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="skipped"))
    triggered = [hook.trigger_sync_run(sync_id) for _ in range(7)]
    census_conn.clear_requests()
    seen = [run.id for run in hook.iter_sync_runs(sync_id, per_page=3)]
    assert seen == sorted(triggered, reverse=True)
    assert [r.query["page"] for r in census_conn.requests_for("GET", f"/syncs/{sync_id}/sync_runs")] == [
        "1",
        "2",
        "3",
    ]
    oldest_first = [run.id for run in hook.iter_sync_runs(sync_id, per_page=100, order="asc")]
    assert oldest_first == sorted(triggered)
    page = hook.list_sync_runs(sync_id, page=2, per_page=3)
    assert [run.id for run in page.items] == sorted(triggered, reverse=True)[3:6]


def test_test_connection(hook: CensusHook, census_conn: CensusEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert message.startswith(f"Connected to Census API {hook.api_version} at {hook.base_url}. list syncs"), message
    monkeypatch.setenv(
        "AIRFLOW_CONN_CENSUS_BAD",
        f'{{"conn_type": "census", "password": "wrong-token", "extra": {{"base_url": "{census_conn.base_url}"}}}}',
    )
    ok, message = CensusHook("census_bad").test_connection()
    assert not ok
    assert "census_bad" in message and "wrong-token" not in message


def test_requests_are_logged_at_debug_without_the_token(
    hook: CensusHook, census_conn: CensusEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_census"):
        hook.get_sync(61)
    assert "GET /syncs/61 -> HTTP 200" in caplog.text
    assert census_conn.token not in caplog.text


@ASYNC_HOOKS
async def test_async_client_reads_runs_and_cancels(
    census_conn: CensusEmulator, hook_class: type[CensusHook | CensusAsyncHook]
) -> None:
    sync_id = census_conn.add_sync(RunScript(outcome="never"))
    run_id = census_conn.trigger(sync_id)
    hook = hook_class()
    try:
        first = await hook.aget_sync_run(run_id)
        assert (first.id, first.sync_id, first.status) == (run_id, sync_id, "queued")
        assert (await hook.acancel_sync_run(run_id))["status"] == "cancelled"
        assert (await hook.aget_sync_run(run_id)).outcome is RunOutcome.CANCELED
    finally:
        await hook.aclose()


async def test_the_async_hook_knows_its_host_once_it_read_the_connection(census_conn: CensusEmulator) -> None:
    """Its base_url and run links are never read blockingly: before the connection was read, they are an error."""
    hook = CensusAsyncHook()
    with pytest.raises(RuntimeError, match="await asettings"):
        _ = hook.base_url
    async with hook:
        settings = await hook.asettings()
        assert (hook.base_url, hook.api_version) == (settings.base_url, settings.api_version)
    blocking = CensusHook()
    assert (hook.base_url, hook.api_version) == (blocking.base_url, blocking.api_version), "kept after aclose"
    assert hook.sync_run_url(61, 7) == blocking.sync_run_url(61, 7)
    assert census_conn.token not in repr(settings)
    assert not census_conn.requests, "reading the settings sends nothing"


async def test_async_and_sync_clients_send_the_same_request(census_conn: CensusEmulator) -> None:
    hook = CensusHook()
    hook.get_sync_run(census_conn.trigger(61))
    try:
        await hook.aget_sync_run(census_conn.trigger(61))
    finally:
        await hook.aclose()
    sync_get, async_get = [r for r in census_conn.requests if r.api_path.startswith("/sync_runs/")]
    assert (sync_get.method, sync_get.query) == (async_get.method, async_get.query)


async def test_hooks_in_one_loop_share_one_pooled_client(census_conn: CensusEmulator) -> None:
    """The client stays open while any hook holds it; the last hook to close it closes it."""
    from airflow_provider_census.api import async_pool

    run_id = census_conn.trigger(61)
    first, second = CensusHook(), CensusAsyncHook()
    await first.aget_sync_run(run_id)
    await second.aget_sync_run(run_id)
    assert async_pool.open_clients() == 1
    await first.aclose()
    assert async_pool.open_clients() == 1
    assert (await second.aget_sync_run(run_id)).id == run_id
    await second.aclose()
    assert async_pool.open_clients() == 0


async def test_hooks_of_other_patience_get_a_client_of_their_own(census_conn: CensusEmulator) -> None:
    """One pooled client per loop and settings: a hook's timeout and retries are part of its settings."""
    from airflow_provider_census.api import async_pool

    run_id = census_conn.trigger(61)
    hooks = [CensusAsyncHook(), CensusAsyncHook(), CensusAsyncHook(retry_policy=ONE_TRY), CensusAsyncHook(timeout=5)]
    try:
        for hook in hooks:
            assert (await hook.aget_sync_run(run_id)).id == run_id
        assert async_pool.open_clients() == 3
    finally:
        for hook in hooks:
            await hook.aclose()
    assert async_pool.open_clients() == 0


async def test_hooks_that_start_together_read_the_connection_once(
    census_conn: CensusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a connection costs a triggerer more than a poll: hooks in one loop share one reading."""
    from airflow_provider_census.hooks import census_async

    reads: list[str] = []
    read_connection = census_async.aget_connection

    async def counted(conn_id: str) -> Any:
        reads.append(conn_id)
        return await read_connection(conn_id)

    monkeypatch.setattr(census_async, "aget_connection", counted)
    run_id = census_conn.trigger(61)
    hooks = [CensusAsyncHook() for _ in range(5)]
    try:
        runs = await asyncio.gather(*(hook.aget_sync_run(run_id) for hook in hooks))
    finally:
        for hook in hooks:
            await hook.aclose()
    assert [run.id for run in runs] == [run_id] * 5
    assert reads == ["census_default"]


def test_each_event_loop_gets_its_own_client(census_conn: CensusEmulator) -> None:
    """A client belongs to the loop it was opened in: each loop opens its own and closes it."""
    from airflow_provider_census.api import async_pool

    run_id = census_conn.trigger(61)
    hook = CensusHook()
    open_before_and_after: list[tuple[int, int]] = []

    async def read() -> None:
        before = async_pool.open_clients()
        await hook.aget_sync_run(run_id)
        open_before_and_after.append((before, async_pool.open_clients()))
        await hook.aclose()

    asyncio.run(read())
    asyncio.run(read())
    assert open_before_and_after == [(0, 1), (0, 1)]


def use_token(monkeypatch: pytest.MonkeyPatch, census_conn: CensusEmulator, version: str, token: str) -> None:
    """Rewrite ``census_default`` as the plugin wrote it, with another token."""
    conn = json.loads(os.environ["AIRFLOW_CONN_CENSUS_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_CENSUS_DEFAULT", json.dumps({**conn, "password": token}))


@ASYNC_HOOKS
async def test_a_token_rotated_while_waiting_is_picked_up_at_the_first_401(
    census_conn: CensusEmulator,
    census_api_version: str,
    monkeypatch: pytest.MonkeyPatch,
    hook_class: type[CensusHook | CensusAsyncHook],
) -> None:
    run_id = census_conn.trigger(61)
    async with hook_class() as hook:
        await hook.aget_sync_run(run_id)
        census_conn.rotate_token(census_api_version, "rotated-token")
        use_token(monkeypatch, census_conn, census_api_version, "rotated-token")
        assert (await hook.aget_sync_run(run_id)).id == run_id
    statuses = [r.status for r in census_conn.requests_for("GET", f"/sync_runs/{run_id}")]
    assert statuses == [200, 401, 200]


@ASYNC_HOOKS
async def test_a_revoked_token_fails_with_the_authentication_error_after_one_fresh_read(
    census_conn: CensusEmulator, census_api_version: str, hook_class: type[CensusHook | CensusAsyncHook]
) -> None:
    run_id = census_conn.trigger(61)
    async with hook_class() as hook:
        await hook.aget_sync_run(run_id)
        census_conn.rotate_token(census_api_version, "someone-else")
        with pytest.raises(CensusAuthenticationError, match="census_default"):
            await hook.aget_sync_run(run_id)
    statuses = [r.status for r in census_conn.requests_for("GET", f"/sync_runs/{run_id}")]
    assert statuses == [200, 401], "the same refused token is not sent twice"


def test_the_hook_works_across_event_loops_and_keeps_none_alive(
    census_conn: CensusEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = census_conn.trigger(61)
    hook = CensusHook()
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def read() -> int:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return (await hook.aget_sync_run(run_id)).id

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        assert asyncio.run(read()) == run_id  # left open on purpose: the next loop must not reuse it
        assert asyncio.run(read()) == run_id

        async def read_and_close() -> int:
            async with hook:
                return await read()

        assert asyncio.run(read_and_close()) == run_id
    gc.collect()
    # The last loop may stay referenced by asgiref's thread-local (Airflow reads connections through it).
    assert [ref() for ref in loops[:2]] == [None, None], "a finished event loop is still referenced"
    assert not [r.getMessage() for r in caplog.records if "Unclosed" in r.getMessage()]


async def test_repeated_calls_send_what_they_are_given_now(census_conn: CensusEmulator) -> None:
    """Another run id, or the same query dict with new contents, is what the next request carries."""
    from airflow_provider_census.api import endpoints as ep

    sync_id = census_conn.add_sync(RunScript())
    runs = [census_conn.trigger(sync_id), census_conn.trigger(sync_id)]
    hook = CensusHook()
    query = {"page": 1, "per_page": 1, "order": "desc"}
    try:
        assert (await hook.aget_sync_run(runs[0])).id == runs[0]
        assert (await hook.aget_sync_run(runs[1])).id == runs[1]
        newest = (await hook.arun(ep.LIST_SYNC_RUNS, params=query, sync_id=sync_id)).items[0].id
        query["page"] = 2
        older = (await hook.arun(ep.LIST_SYNC_RUNS, params=query, sync_id=sync_id)).items[0].id
    finally:
        await hook.aclose()
    assert (newest, older) == (runs[1], runs[0])


def test_test_connection_tries_once_and_says_why(
    hook: CensusHook, census_conn: CensusEmulator, census_api_version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user on the connection form wants the reason soon: one request, no retries, no backoff.

    The first check proves the token on a documented call: V2's list of activations, v1's list of syncs."""
    proof = "/activations" if census_api_version == "v2" else "/syncs"
    census_conn.fail_next("503", count=1, method="GET", path_prefix=proof)
    ok, message = hook.test_connection()
    assert not ok
    assert "503" in message
    assert len(census_conn.requests_for("GET", proof)) == 1

    monkeypatch.setattr(preflight_module, "TIMEOUT_SECONDS", 0.3)
    census_conn.fail_next("latency", count=1, method="GET", path_prefix=proof, latency=1.0)
    ok, message = hook.test_connection()
    assert not ok
    assert "got no answer" in message and "Timeout" in message, message
    give_up_at = time.monotonic() + 10  # the slow request is logged once the emulator has answered it
    while len(census_conn.requests_for("GET", proof)) < 2 and time.monotonic() < give_up_at:
        time.sleep(0.05)
    time.sleep(0.2)  # room for a retry, had there been one
    assert len(census_conn.requests_for("GET", proof)) == 2


def test_a_transport_failure_names_its_root_cause_whole_and_without_the_query() -> None:
    """requests wraps urllib3's NameResolutionError in a MaxRetryError whose text repeats the URL with its query."""
    import socket

    import requests
    from urllib3.connection import HTTPSConnection
    from urllib3.exceptions import MaxRetryError, NameResolutionError

    from airflow_provider_census.api import endpoints as ep
    from airflow_provider_census.api.settings import ClientSettings
    from airflow_provider_census.api.transport_failures import transport_error

    host = "app.census-that-does-not-resolve.example"
    resolution = NameResolutionError(host, HTTPSConnection(host), socket.gaierror(-2, "Name or service not known"))
    url = "/api/v1/syncs?page=1&per_page=1&order=desc"
    wrapped = requests.ConnectionError(MaxRetryError(None, url, resolution))  # type: ignore[arg-type]
    settings = ClientSettings(base_url=f"https://{host}/api/v1", token="t")
    message = str(transport_error(settings, ep.LIST_SYNCS.bind(settings), wrapped, reached_census=False))
    assert "NameResolutionError: Failed to resolve 'app.census-that-does-not-resolve.example'" in message, message
    assert "Name or service not known" in message
    assert "page=" not in message and "object at 0x" not in message and "MaxRetryError" not in message


def test_a_long_cause_is_cut_at_a_word() -> None:
    from airflow_provider_census.api.transport_failures import reason_of
    from airflow_provider_census.api.wire import EXCERPT_CHARS

    reason = reason_of(OSError(" ".join(["unreachable"] * 40)))
    words = reason.removeprefix("OSError: ").removesuffix(" …").split(" ")
    assert set(words) == {"unreachable"} and reason.endswith(" …")
    assert len(reason) <= len("OSError: ") + EXCERPT_CHARS + 2
