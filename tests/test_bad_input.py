"""Bad input, one row each: what was given, the error it must raise, and what its message must say.

Every message has to name what was wrong and what to do about it, and none may hold the
API token. Answers the emulator cannot give (a run without a status, ``data`` of the wrong
type, an HTML page with status 200, a server that echoes the token) come from
:class:`CannedCensus`, a one-answer server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest

from airflow_provider_census.api.errors import (
    CensusApiVersionError,
    CensusAuthenticationError,
    CensusConfigurationError,
    CensusError,
    CensusInputError,
    CensusNotFoundError,
    CensusPollingError,
    CensusRateLimitError,
    CensusResponseError,
    CensusServerError,
    CensusTransportError,
    CensusValidationError,
)
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.operators.census import CensusTriggerSyncOperator
from airflow_provider_census.sensors.census import CensusSyncRunSensor
from airflow_provider_census.testing import CensusEmulator, RunScript
from airflow_provider_census.testing.pytest_plugin import CONN_ENV_VAR
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS, AirflowException
from tests.conftest import QUICK_RETRIES
from tests.task_context import context_for, run_deferred

CANARY_ID = uuid.uuid4().hex
TOKEN = f"cnry-{CANARY_ID}"
PAT = f"cnry-pat-{CANARY_ID}"  # V2's token carries the same canary, so a leak of either is found
WRONG_TOKEN = f"cnry-wrong-{uuid.uuid4().hex}"
# Airflow itself refuses a task built without a required argument, in its own words.
MISSING_ARGUMENT_ERROR: type[Exception] = TypeError if AIRFLOW_V_3_0_PLUS else AirflowException
A_SYNC_CONFIG: dict[str, Any] = {
    "operation": "upsert",
    "source_attributes": {"connection_id": 4, "object": {"type": "model", "name": "braze_test"}},
    "destination_attributes": {"connection_id": 15, "object": "user"},
    "mappings": [],
}


@pytest.fixture
def census_emulator() -> Iterator[CensusEmulator]:
    """The plugin's emulator, but expecting a canary token that no message may repeat."""
    with CensusEmulator(token=TOKEN, pat=PAT) as emulator:
        yield emulator


GROUP_REQUIRED = '{"status": "error", "message": "group_id is required"}'
"""What Census might answer a V2 list sent without a group (no V2 page says it needs one)."""


@dataclass(frozen=True)
class Canned:
    """One HTTP answer; ``{authorization}`` in the body is replaced by the request's header."""

    status: int
    body: str
    content_type: str = "application/json"


class CannedCensus:
    """A server on 127.0.0.1 that gives every request the same answer, for answers the emulator lacks."""

    def __init__(self, answer: Canned) -> None:
        self.answer = answer
        self.received: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="canned-census", daemon=True)

    @property
    def base_url(self) -> str:
        """The server's root: the connection's API version adds its ``/api/vN`` path."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CannedCensus:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                canned.received.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = canned.answer.body.replace("{authorization}", self.headers.get("Authorization", ""))
                payload = body.encode()
                self.send_response(canned.answer.status)
                self.send_header("Content-Type", canned.answer.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _reply

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads ``received`` instead."""

        return Handler


@dataclass
class Scene:
    """What a row may set up: the connection, the emulator's faults, canned servers (stopped on exit)."""

    emulator: CensusEmulator
    monkeypatch: pytest.MonkeyPatch
    api_version: str
    servers: list[CannedCensus] = field(default_factory=list)
    stack: ExitStack = field(default_factory=ExitStack)

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stack.close()

    def connect(self, password: str | None = None, **extra: str) -> None:
        """Point ``census_default`` at whatever ``extra`` says (default: the emulator), on the scene's API version."""
        self.connect_on(self.api_version, password, **extra)

    def connect_on(self, api_version: str, password: str | None = None, **extra: str) -> None:
        """Point ``census_default`` at the emulator (or ``extra``) on ``api_version``, with its token unless given."""
        extra = extra or {"base_url": self.emulator.api_base_url(api_version)}
        token = self.emulator.token_for(api_version) if password is None else password
        conn = {"conn_type": "census", "password": token, "extra": {"api_version": api_version, **extra}}
        self.monkeypatch.setenv(CONN_ENV_VAR, json.dumps(conn))

    def sync_config(self) -> dict[str, Any]:
        """A sync to Braze, whose id is 15 on v1 and an activation's text id on V2 (Census refuses it: no mappings)."""
        braze = 15 if self.api_version == "v1" else "glimmering_donkey"
        return {**A_SYNC_CONFIG, "destination_attributes": {"connection_id": braze, "object": "user"}}

    def retire_v1(self) -> None:
        """Move the provider's clock to the day Census switches API v1 off."""
        from airflow_provider_census.api import settings

        self.monkeypatch.setattr(settings, "today", lambda: settings.V1_RETIRED_ON)

    def canned(self, answer: Canned) -> CannedCensus:
        server = self.stack.enter_context(CannedCensus(answer))
        self.servers.append(server)
        self.connect(base_url=server.base_url)
        return server

    def fail(self, kind: str, **options: Any) -> None:
        """Every request fails with ``kind`` from now on (more than any retry policy tries)."""
        self.emulator.fail_next(kind, 100, **options)

    def received_urls(self) -> list[str]:
        """Every URL (path and query) that the emulator and the canned servers received."""
        return urls_received(self.emulator) + [path for server in self.servers for path in server.received]


def urls_received(emulator: CensusEmulator) -> list[str]:
    """Every URL (path and query) the emulator received, as the client sent it."""
    return [f"{request.path}?{urlencode(request.query)}" for request in emulator.requests]


@pytest.fixture
def scene(census_conn: CensusEmulator, census_api_version: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scene]:
    with Scene(census_conn, monkeypatch, census_api_version) as staged:
        yield staged


def quick_hook(conn_id: str = CensusHook.default_conn_name, **kwargs: Any) -> CensusHook:
    return CensusHook(conn_id, retry_policy=QUICK_RETRIES, trigger_settle_seconds=0.05, **kwargs)


def operator(**kwargs: Any) -> CensusTriggerSyncOperator:
    kwargs.setdefault("sync_id", 60)
    kwargs.setdefault("poll_interval", 0.02)
    task = CensusTriggerSyncOperator(task_id="census_sync", **kwargs)
    task.hook = quick_hook(task.census_conn_id)
    return task


def sensor(**kwargs: Any) -> CensusSyncRunSensor:
    kwargs.setdefault("poke_interval", 0.02)
    task = CensusSyncRunSensor(task_id="wait_for_run", **kwargs)
    task.hook = quick_hook(task.census_conn_id)
    return task


def run_operator(**kwargs: Any) -> Any:
    return run_deferred(operator(**kwargs), context_for())


def poke(**kwargs: Any) -> Any:
    return sensor(**kwargs).poke(context_for())


def rendered(template_value: object, make: Callable[..., Any], field_name: str) -> Any:
    """A task whose templated field renders from ``value`` in the context, as Airflow renders it."""
    task = make(**{field_name: "{{ value }}"})
    task.render_template_fields({"value": template_value})
    return task


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, read, released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def success(data: object) -> str:
    """A Census success envelope around ``data``, whatever its shape."""
    return json.dumps({"status": "success", "data": data})


@dataclass(frozen=True)
class BadInput:
    """One row: ``attempt`` does the bad thing in ``scene``; the error and its message are checked."""

    name: str
    attempt: Callable[[Scene], object]
    error: type[BaseException]
    phrases: tuple[str, ...]


def id_rows(field_name: str, make: Callable[[Any], object]) -> list[BadInput]:
    """Ids that are not positive integers, given directly or through a template."""
    direct = [("abc", "'abc'"), (-5, "-5"), (0, "got 0"), (True, "True"), (1.5, "1.5")]
    rows = [
        BadInput(
            f"{field_name}={value!r}",
            lambda scene, value=value: make(value),
            CensusInputError,
            (f"{field_name} must be a positive integer Census id", shown),
        )
        for value, shown in direct
    ]
    rows += [
        BadInput(
            f"templated {field_name} rendering to {text!r}",
            lambda scene, text=text: make(text),
            CensusInputError,
            (f"{field_name} must be", f"got {text!r}", "template", "rendered to nothing", "XCom"),
        )
        for text in ("", "None")
    ]
    return rows


ROWS: list[BadInput] = [
    *id_rows("sync_id", lambda value: run_operator(sync_id=value)),
    *id_rows("sync_run_id", lambda value: poke(sync_run_id=value)),
    BadInput(
        "Jinja template of sync_id rendering None",
        lambda scene: run_deferred(rendered(None, operator, "sync_id"), context_for()),
        CensusInputError,
        ("sync_id must be a positive integer", "got 'None'", "rendered to nothing"),
    ),
    BadInput(
        "Jinja template of sync_run_id rendering ''",
        lambda scene: rendered("", sensor, "sync_run_id").poke(context_for()),
        CensusInputError,
        ("sync_run_id must be a positive integer", "got ''", "the trigger task ran"),
    ),
    BadInput(
        "sensor given no sync_run_id",
        lambda scene: poke(sync_run_id=None),
        CensusInputError,
        ("sync_run_id must be a positive integer Census id, got None", "CensusTriggerSyncOperator returned"),
    ),
    BadInput(
        "sensor without the sync_run_id argument",
        lambda scene: CensusSyncRunSensor(task_id="wait_for_run"),
        MISSING_ARGUMENT_ERROR,
        ("sync_run_id",),
    ),
    BadInput(
        "missing connection",
        lambda scene: run_operator(census_conn_id="census_missing"),
        CensusConfigurationError,
        ("'census_missing' does not exist", "AIRFLOW_CONN_CENSUS_MISSING", "password field"),
    ),
    BadInput(
        "missing connection, read by a trigger",
        lambda scene: asyncio.run(quick_hook("census_missing").aget_sync_run(5)),
        CensusConfigurationError,
        ("'census_missing' does not exist", "AIRFLOW_CONN_CENSUS_MISSING"),
    ),
    BadInput(
        "empty token",
        lambda scene: (scene.connect(password="  "), poke(sync_run_id=1)),
        CensusConfigurationError,
        ("'census_default' has no API token", "in its password field", "it talks Census API"),
    ),
    BadInput(
        "unknown region",
        lambda scene: (scene.connect(region="mars"), quick_hook().get_sync(60)),
        CensusConfigurationError,
        ("region 'mars'", "eu and us", "set base_url instead"),
    ),
    BadInput(
        "plain http to a remote host",
        lambda scene: (scene.connect(base_url="http://census.example.com"), quick_hook().get_sync(60)),
        CensusConfigurationError,
        ("plain http base_url to 'census.example.com'", "unencrypted", "Use https"),
    ),
    BadInput(
        "base_url that is no URL",
        lambda scene: (scene.connect(base_url="app.getcensus.com"), quick_hook().get_sync(60)),
        CensusConfigurationError,
        ("'app.getcensus.com', which is not an http(s) URL", "use e.g. https://app.getcensus.com/api/v2"),
    ),
    BadInput(
        "401: the wrong token",
        lambda scene: (scene.connect(password=WRONG_TOKEN), run_operator()),
        CensusAuthenticationError,
        ("did not accept the API token from Airflow connection 'census_default'", "HTTP 401", "password field"),
    ),
    BadInput(
        "401: a v1 workspace API key on a V2 connection",
        lambda scene: (scene.connect_on("v2", password=TOKEN), quick_hook().get_sync(60)),
        CensusAuthenticationError,
        ("'census_default'", "API v2 takes an Activations personal access token", "api_version to v1"),
    ),
    BadInput(
        "401: a personal access token on a v1 connection",
        lambda scene: (scene.connect_on("v1", password=PAT), quick_hook().get_sync(60)),
        CensusAuthenticationError,
        ("'census_default'", "API v1 takes a workspace API key", "set the connection's extra api_version to v2"),
    ),
    BadInput(
        "a v1 failure once v1 is retired",
        lambda scene: (scene.retire_v1(), scene.connect_on("v1", password=WRONG_TOKEN), quick_hook().get_sync(60)),
        CensusAuthenticationError,
        ("Census retired API v1 on 2027-01-15", "'census_default' still talks v1", "api_version to v2"),
    ),
    BadInput(
        "an api_version Census does not have",
        lambda scene: (
            scene.connect_on("v3", password=TOKEN, base_url="https://app.getcensus.com"),
            quick_hook().get_sync(60),
        ),
        CensusConfigurationError,
        ("api_version 'v3'", "v2 (an Activations personal access token)", "v1 (a workspace API key"),
    ),
    BadInput(
        "a v1-only hook method on a V2 connection",
        lambda scene: (scene.connect_on("v2"), quick_hook().list_destinations()),
        CensusApiVersionError,
        ("list_destinations is a Census API v1 call", "talks API v2", "use CensusHook.list_activations"),
    ),
    BadInput(
        "v1's legacy sync creation on a V2 connection",
        lambda scene: (scene.connect_on("v2"), quick_hook().create_sync(A_SYNC_CONFIG, legacy_endpoint=True)),
        CensusApiVersionError,
        ("create_sync is a Census API v1 call", "without legacy_endpoint=True"),
    ),
    BadInput(
        "a V2 list Census refuses without a group",
        lambda scene: (
            scene.connect_on("v2", base_url=scene.canned(Canned(400, GROUP_REQUIRED)).base_url),
            quick_hook().list_sources(),
        ),
        CensusValidationError,
        (
            "HTTP 400 on GET /sources",
            "group_id is required",
            "The request named no group",
            "set the extra group_id of Airflow connection 'census_default'",
            "Setup tab",
        ),
    ),
    BadInput(
        "403: a token of another workspace",
        lambda scene: (scene.fail("403"), quick_hook().get_sync(60)),
        CensusAuthenticationError,
        ("may not access sync 60", "HTTP 403", "that owns it"),
    ),
    BadInput(
        "404: a sync that does not exist",
        lambda scene: run_operator(sync_id=987654),
        CensusNotFoundError,
        ("Census has no sync 987654", "HTTP 404", "Check the id", "and region"),
    ),
    BadInput(
        "404: a run that does not exist",
        lambda scene: poke(sync_run_id=987655),
        CensusNotFoundError,
        ("Census has no sync run 987655", "HTTP 404", "Check the id"),
    ),
    BadInput(
        "422: create sync refused",
        lambda scene: quick_hook().create_sync(scene.sync_config()),
        CensusValidationError,
        ("Census refused the request for a new sync", "HTTP 422", "mappings"),
    ),
    BadInput(
        "200 with an error envelope",
        lambda scene: (
            scene.canned(Canned(200, '{"status": "error", "message": "Sync is paused"}')),
            poke(sync_run_id=5),
        ),
        CensusValidationError,
        ("Census refused GET /sync_runs/5 for sync run 5", "Sync is paused"),
    ),
    BadInput(
        "5xx, every time",
        lambda scene: (scene.fail("500"), quick_hook().get_sync_run(5)),
        CensusServerError,
        ("HTTP 500 on GET /sync_runs/5", "Internal server error", "retry the task later"),
    ),
    BadInput(
        "HTML error page from a proxy",
        lambda scene: (scene.fail("html"), quick_hook().get_sync_run(5)),
        CensusServerError,
        ("HTTP 502", "an HTML page, not JSON", "502 Bad Gateway", "retry the task later"),
    ),
    BadInput(
        "HTML page with status 200",
        lambda scene: (
            scene.canned(Canned(200, "<!DOCTYPE html><title>Sign in</title>", "text/html")),
            quick_hook().get_sync_run(5),
        ),
        CensusResponseError,
        ("with HTTP 200 but an HTML page, not JSON", "Sign in", "A proxy may be in the way"),
    ),
    BadInput(
        "empty body",
        lambda scene: (scene.fail("empty"), quick_hook().get_sync_run(5)),
        CensusResponseError,
        ("an empty body", "expected a JSON object", "A proxy may be in the way"),
    ),
    BadInput(
        "JSON cut off",
        lambda scene: (scene.fail("cut_json"), quick_hook().get_sync_run(5)),
        CensusResponseError,
        ("not valid JSON (cut off?)", '{"status": "success"', "expected a JSON object"),
    ),
    BadInput(
        "data is a list, not an object",
        lambda scene: (scene.canned(Canned(200, success([{"id": 5}]))), quick_hook().get_sync_run(5)),
        CensusResponseError,
        ("unexpected shape", "a sync run should be a JSON object, got list", "base_url"),
    ),
    BadInput(
        "run without status",
        lambda scene: (scene.canned(Canned(200, success({"id": 5, "sync_id": 3}))), quick_hook().get_sync_run(5)),
        CensusResponseError,
        ("sync run 5 has no text 'status' (got None)", "unexpected shape", "upgrade airflow-provider-census"),
    ),
    BadInput(
        "run with a null status",
        lambda scene: (
            scene.canned(Canned(200, success({"id": 5, "sync_id": 3, "status": None}))),
            quick_hook().get_sync_run(5),
        ),
        CensusResponseError,
        ("sync run 5 has no text 'status' (got None)", "base_url"),
    ),
    BadInput(
        "run with a numeric status",
        lambda scene: (
            scene.canned(Canned(200, success({"id": 5, "sync_id": 3, "status": 3}))),
            quick_hook().get_sync_run(5),
        ),
        CensusResponseError,
        ("sync run 5 has no text 'status' (got 3)",),
    ),
    BadInput(
        "rate limited, every time",
        lambda scene: (scene.fail("429", retry_after=0.01), quick_hook().get_sync_run(5)),
        CensusRateLimitError,
        ("rate limiting", "HTTP 429", "raise their poll_interval"),
    ),
    BadInput(
        "no answer in time",
        lambda scene: (scene.fail("latency", latency=1.0), quick_hook(timeout=0.1).get_sync_run(5)),
        CensusTransportError,
        ("got no answer for GET /sync_runs/5", "ReadTimeout", "region or base_url", "retried"),
    ),
    BadInput(
        "nothing listening at base_url",
        lambda scene: (
            scene.connect(base_url=f"http://127.0.0.1:{closed_port()}"),
            quick_hook().get_sync_run(5),
        ),
        CensusTransportError,
        ("could not connect for GET /sync_runs/5", "region or base_url is right and reachable"),
    ),
    BadInput(
        "polls that keep failing while deferred",
        lambda scene: (
            scene.fail("503", method="GET", path_prefix="/sync_runs/"),
            run_operator(deferrable=True, max_poll_failures=2),
        ),
        CensusPollingError,
        ("failed 2 times in a row", "HTTP 503", "Service unavailable"),
    ),
    BadInput(
        "a trigger event that cannot be read",
        lambda scene: operator().execute_complete(context_for(), event={"status": "finished"}),
        CensusError,
        ("event cannot be read", "check it in Census, then clear the task"),
    ),
    BadInput(
        "poll_interval=0",
        lambda scene: operator(poll_interval=0),
        CensusInputError,
        ("poll_interval must be a positive number of seconds", "got 0"),
    ),
    BadInput(
        "poll_interval<0",
        lambda scene: operator(poll_interval=-10),
        CensusInputError,
        ("poll_interval must be a positive", "-10"),
    ),
    BadInput(
        "poll_interval='abc'",
        lambda scene: operator(poll_interval="abc"),
        CensusInputError,
        ("poll_interval must be", "'abc'"),
    ),
    BadInput(
        "timeout=0",
        lambda scene: operator(timeout=0),
        CensusInputError,
        ("timeout must be a positive number of seconds or a timedelta", "got 0"),
    ),
    BadInput(
        "negative timedelta timeout",
        lambda scene: operator(timeout=timedelta(seconds=-5)),
        CensusInputError,
        ("timeout must be a positive number of seconds or a timedelta", "timedelta(days=-1"),
    ),
    BadInput(
        "unknown_state_timeout=0",
        lambda scene: sensor(sync_run_id=1, unknown_state_timeout=0),
        CensusInputError,
        ("unknown_state_timeout must be a positive number of seconds",),
    ),
    BadInput(
        "max_poll_failures=0",
        lambda scene: operator(max_poll_failures=0),
        CensusInputError,
        ("max_poll_failures must be a whole number from 1", "got 0"),
    ),
    BadInput(
        "max_rejected_share above 1",
        lambda scene: operator(max_rejected_share=1.5),
        CensusInputError,
        ("max_rejected_share must be between 0 and 1", "got 1.5"),
    ),
    BadInput(
        "negative max_rejected_records",
        lambda scene: sensor(sync_run_id=1, max_rejected_records=-1),
        CensusInputError,
        ("max_rejected_records must be a whole number >= 0", "got -1"),
    ),
    BadInput(
        "unknown on_skipped choice",
        lambda scene: operator(on_skipped="ignore"),
        CensusInputError,
        ("on_skipped must be one of fail, succeed, wait", "got 'ignore'"),
    ),
    BadInput(
        "per_page beyond Census's limit",
        lambda scene: quick_hook().list_syncs(per_page=500),
        CensusInputError,
        ("per_page must be an integer from 1 to 100", "got 500"),
    ),
    BadInput(
        "sync configuration missing fields",
        lambda scene: quick_hook().create_sync({"operation": "upsert"}),
        CensusInputError,
        ("lacks source_attributes, destination_attributes, mappings", "required by Census"),
    ),
]


def test_the_table_is_large_enough() -> None:
    assert len(ROWS) >= 25
    assert len({row.name for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_bad_input_fails_with_a_message_that_says_what_to_do(scene: Scene, row: BadInput) -> None:
    scene.emulator.add_sync(RunScript(outcome="never"))
    with pytest.raises(row.error) as info:
        row.attempt(scene)
    assert type(info.value) is row.error, type(info.value)
    message = str(info.value)
    missing = [phrase for phrase in row.phrases if phrase not in message]
    assert not missing, f"{missing} not in: {message}"
    for token in (TOKEN, PAT, WRONG_TOKEN):
        assert token not in message and token not in repr(info.value)


@pytest.mark.parametrize(
    "answer",
    [
        Canned(401, '{"status": "error", "message": "token {authorization} is revoked"}'),
        Canned(500, "<html>upstream said: {authorization}</html>", "text/html"),
        Canned(200, "not json, but {authorization}", "text/plain"),
    ],
    ids=["401-json", "500-html", "200-text"],
)
def test_a_server_echoing_the_token_gets_it_scrubbed_from_the_message(scene: Scene, answer: Canned) -> None:
    server = scene.canned(answer)
    with pytest.raises(CensusError) as info:
        quick_hook().get_sync_run(5)
    assert server.received, "the canned server was reached, so its echo was read"
    message = str(info.value)
    assert "Bearer ***" in message, message
    assert TOKEN not in message
