"""Answers Census (or a proxy) may give, and the typed result or error each one becomes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_census.api import endpoints as ep
from airflow_provider_census.api.endpoints import Endpoint, Request
from airflow_provider_census.api.errors import (
    CensusApiError,
    CensusAuthenticationError,
    CensusNotFoundError,
    CensusRateLimitError,
    CensusRedirectError,
    CensusResponseError,
    CensusServerError,
    CensusValidationError,
)
from airflow_provider_census.api.inputs import PageQuery, census_id, id_or_slug
from airflow_provider_census.api.models import Page, SyncRun
from airflow_provider_census.api.retry import is_transient
from airflow_provider_census.api.settings import ClientSettings
from airflow_provider_census.api.states import RunOutcome
from airflow_provider_census.api.wire import Answer, parse, prepare
from airflow_provider_census.hooks.census import CensusHook

TOKEN = "secret-token:canary-3f9a1c"
SETTINGS = ClientSettings(
    base_url="https://app.getcensus.com/api/v1", token=TOKEN, token_origin="Airflow connection 'census_default'"
)


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Answer(status, headers or {}, raw)


def bound(endpoint: Endpoint[Any], query: PageQuery | None = None, **arguments: Any) -> Request[Any]:
    if query is not None:
        arguments["params"] = query.params()
    return endpoint.bind(SETTINGS, **arguments)


def read(request: Request[Any], raw: Answer) -> Any:
    return parse(SETTINGS, request, raw)


def raised(request: Request[Any], raw: Answer) -> CensusApiError:
    with pytest.raises(CensusApiError) as info:
        read(request, raw)
    assert TOKEN not in str(info.value)
    return info.value


def test_prepare_sends_token_in_header_only() -> None:
    request = bound(ep.TRIGGER_SYNC, params={"force_full_sync": True}, sync_id=7)
    url, headers, _body = prepare(SETTINGS, request)
    assert request.method == "POST"
    assert url == "https://app.getcensus.com/api/v1/syncs/7/trigger?force_full_sync=true"
    assert TOKEN not in url
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["User-Agent"].startswith("airflow-provider-census/")
    assert TOKEN not in repr(request) and TOKEN not in repr(SETTINGS)


def test_prepare_encodes_json_body_and_quotes_path_parts() -> None:
    url, _headers, _body = prepare(
        SETTINGS, bound(ep.GET_DESTINATION_OBJECT, activation="my dest/1", object_name="a/b c")
    )
    assert url.endswith("/destinations/my%20dest%2F1/objects/a%2Fb%20c")
    _url, headers, body = prepare(SETTINGS, bound(ep.CREATE_SYNC, body={"operation": "upsert", "validate_only": True}))
    assert headers["Content-Type"] == "application/json"
    assert body is not None and json.loads(body)["validate_only"] is True


def test_run_with_unknown_fields_nulls_and_text_numbers_is_accepted() -> None:
    payload = {
        "id": "12",
        "sync_id": 3,
        "status": "working",
        "records_processed": None,
        "records_updated": "40",
        "source_record_invalids": 2,
        "brand_new_field": {"x": 1},
        "canceled": None,
    }
    run = read(bound(ep.GET_SYNC_RUN, sync_run_id=12), answer(200, {"status": "success", "data": payload}))
    assert isinstance(run, SyncRun)
    assert (run.id, run.records_processed, run.records_updated, run.records_invalid) == (12, None, 40, 2)
    assert run.raw["brand_new_field"] == {"x": 1}
    assert run.outcome is RunOutcome.IN_PROGRESS


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"id": 1, "sync_id": 2}, "no text 'status'"),
        ({"sync_id": 2, "status": "completed"}, "no integer 'id'"),
        ({"id": 1, "status": "completed"}, "no integer 'sync_id'"),
        ([1, 2], "should be a JSON object"),
        (None, "should be a JSON object"),
    ],
)
def test_run_of_the_wrong_shape_is_an_unreadable_response(data: Any, fragment: str) -> None:
    error = raised(bound(ep.GET_SYNC_RUN, sync_run_id=1), answer(200, {"status": "success", "data": data}))
    assert isinstance(error, CensusResponseError)
    assert fragment in str(error)
    assert "GET /sync_runs/1" in str(error)


def test_list_data_of_the_wrong_type_is_an_unreadable_response() -> None:
    error = raised(bound(ep.LIST_SYNCS, PageQuery()), answer(200, {"status": "success", "data": {"id": 1}}))
    assert isinstance(error, CensusResponseError)
    assert "should be a JSON array" in str(error)


@pytest.mark.parametrize(
    ("status", "body", "error_class", "fragments"),
    [
        (
            401,
            {"status": "error", "message": "Unauthorized"},
            CensusAuthenticationError,
            ["census_default", "password"],
        ),
        (403, {"status": "error", "message": "Forbidden"}, CensusAuthenticationError, ["may not access sync 5"]),
        (404, {"status": "error", "message": "Not found"}, CensusNotFoundError, ["no sync 5", "Not found"]),
        (422, {"status": "error", "message": "Mappings are invalid"}, CensusValidationError, ["Mappings are invalid"]),
        (400, {"status": 400, "error": "bad request"}, CensusValidationError, ["bad request"]),
        (500, {"status": "error", "message": "boom"}, CensusServerError, ["HTTP 500", "boom"]),
        (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", CensusServerError, ["HTML page", "502 Bad"]),
        (429, b"", CensusRateLimitError, ["rate limiting"]),
        (200, b"<!DOCTYPE html><html>login</html>", CensusResponseError, ["HTML page"]),
        (200, b'{"status": "success", "da', CensusResponseError, ["not valid JSON", "success"]),
        (200, b"", CensusResponseError, ["empty body"]),
        (200, b"[1, 2]", CensusResponseError, ["JSON of type list"]),
        (200, {"status": "error", "message": "sync is paused"}, CensusValidationError, ["sync is paused"]),
        (200, {"status": "not_found", "message": "nope"}, CensusNotFoundError, ["nope"]),
        (301, b"<html>Moved</html>", CensusRedirectError, ["HTTP 301, a redirect", "base_url"]),
        (404, {"status": 404}, CensusNotFoundError, ["no sync 5", "HTTP 404"]),
    ],
)
def test_each_error_answer_maps_to_one_error_class(
    status: int, body: Any, error_class: type[CensusApiError], fragments: list[str]
) -> None:
    error = raised(bound(ep.GET_SYNC, sync_id=5), answer(status, body))
    assert type(error) is error_class
    assert error.http_status == status
    for fragment in fragments:
        assert fragment in str(error)


def test_token_echoed_by_census_is_scrubbed() -> None:
    error = raised(bound(ep.GET_SYNC, sync_id=5), answer(401, {"status": "error", "message": f"bad token {TOKEN}"}))
    assert "***" in str(error)
    assert error.census_message is not None and TOKEN not in error.census_message


def test_retry_after_seconds_and_date_are_read() -> None:
    seconds = raised(bound(ep.GET_SYNC, sync_id=5), answer(429, {}, {"Retry-After": "7"}))
    assert seconds.retry_after == 7.0
    date = raised(bound(ep.GET_SYNC, sync_id=5), answer(503, {}, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert date.retry_after == 0.0


def test_a_redirect_names_where_it_points_without_its_query_and_is_not_retried() -> None:
    headers = {"Location": "https://app.getcensus.com/api/v1/syncs/5?token=abc"}
    error = raised(bound(ep.GET_SYNC, sync_id=5), answer(308, b"", headers))
    assert "a redirect to https://app.getcensus.com/api/v1/syncs/5." in str(error)
    assert "token=abc" not in str(error)
    assert not is_transient(error)


def test_cancel_answer_with_census_spelling_is_a_success() -> None:
    envelope = read(bound(ep.CANCEL_SYNC_RUN, sync_run_id=9), answer(200, {"status": "cancelled", "data": {}}))
    assert envelope["status"] == "cancelled"


def test_page_follows_pagination_block() -> None:
    page = read(
        bound(ep.LIST_SYNCS, PageQuery(2, 1, "asc")),
        answer(
            200,
            {
                "status": "success",
                "data": [{"id": 1}],
                "pagination": {"page": 2, "per_page": 1, "next_page": 3, "prev_page": 1, "last_page": 3},
            },
        ),
    )
    assert isinstance(page, Page)
    assert page.next_number == 3
    last = read(
        bound(ep.LIST_SYNCS, PageQuery(3, 1)),
        answer(200, {"status": "success", "data": [{"id": 1}], "pagination": {"next_page": None, "last_page": 3}}),
    )
    assert last.next_number is None


def test_page_with_only_the_older_next_url_ends_on_a_short_page() -> None:
    full = read(
        bound(ep.LIST_SYNCS, PageQuery(1, 2)),
        answer(200, {"status": "success", "data": [{"id": 1}, {"id": 2}], "next": "https://x/api/v1/syncs"}),
    )
    assert full.next_number == 2
    short = read(
        bound(ep.LIST_SYNCS, PageQuery(2, 2)),
        answer(200, {"status": "success", "data": [{"id": 3}], "next": "https://x/api/v1/syncs"}),
    )
    assert short.next_number is None


HOOK = CensusHook("no_such_connection")
"""Arguments are checked before the connection is read, so a hook without one shows it."""
CONFIG = {"operation": "upsert", "source_attributes": {}, "destination_attributes": {}, "mappings": [{}]}


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: HOOK.get_sync_run("abc"), "sync_run_id must be a positive integer"),
        (lambda: HOOK.get_sync_run(-3), "sync_run_id must be a positive integer"),
        (lambda: HOOK.get_sync_run(0), "sync_run_id must be a positive integer"),
        (lambda: HOOK.trigger_sync_run(True), "sync_id must be a positive integer"),
        (lambda: HOOK.trigger_sync_run(""), "sync_id must be a positive integer"),
        (lambda: HOOK.trigger_sync_run(None), "sync_id must be a positive integer"),
        (lambda: HOOK.get_source(""), "source must be a positive integer"),
        (lambda: HOOK.get_activation_object(1, " "), "object_name must be"),
        (lambda: PageQuery(per_page=101), "per_page must be an integer from 1 to 100"),
        (lambda: PageQuery(page=0), "page must be an integer from 1"),
        (lambda: PageQuery(order="newest"), "order must be 'asc' or 'desc'"),
        (lambda: HOOK.create_sync({"operation": "mirror"}), "lacks source_attributes, destination_attributes"),
        (
            lambda: HOOK.create_sync(
                {"operation": "merge", "source_attributes": 1, "destination_attributes": 1, "mappings": 1}
            ),
            "operation must be one of",
        ),
        (lambda: HOOK.update_sync(1, {}), "non-empty mapping"),
    ],
)
def test_bad_arguments_fail_before_sending(make: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        make()


def test_ids_rendered_by_templates_are_accepted() -> None:
    assert bound(ep.GET_SYNC_RUN, sync_run_id=census_id(" 42 ", "sync_run_id")).path == "/sync_runs/42"
    assert bound(ep.GET_SOURCE, source=id_or_slug("snowflake-prod", "source")).path == "/sources/snowflake-prod"
