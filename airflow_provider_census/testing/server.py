"""The HTTP face of the emulator: routes, the Census envelope, auth, paging and faults.

Every request passes one middleware that checks the token, applies any fault, runs the
handler, turns errors into Census error bodies and records the request. Handlers only do
quick in-memory work under the workspace lock, so they never block the event loop; the
only waiting (latency faults) is ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from airflow_provider_census.testing import paging
from airflow_provider_census.testing.catalog import JSON
from airflow_provider_census.testing.errors import ApiError, not_found
from airflow_provider_census.testing.faults import Decision, FaultPlan
from airflow_provider_census.testing.requestlog import RecordedRequest, RequestLog
from airflow_provider_census.testing.workspace import Workspace

API_PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class EmulatorState:
    """What the handlers share with the test-facing :class:`CensusEmulator`."""

    token: str
    workspace: Workspace
    faults: FaultPlan
    log: RequestLog


STATE: web.AppKey[EmulatorState] = web.AppKey("census_emulator_state", EmulatorState)


# -- envelope -----------------------------------------------------------------------------


def success(data: Any, status: str = "success", http_status: int = 200) -> web.Response:
    return web.json_response({"status": status, "data": data}, status=http_status)


def error(http_status: int, message: str) -> web.Response:
    return web.json_response({"status": "error", "message": message}, status=http_status)


def listing(request: web.Request, items: list[Any]) -> web.Response:
    """One page of ``items`` (oldest first) with ``pagination`` and the older ``next`` URL."""
    page_request = paging.parse(request.query)
    page, pagination = paging.paginate(items, page_request)
    next_page = pagination["next_page"]
    next_url = None if next_page is None else str(request.url.update_query(page=str(next_page)))
    body = {"status": "success", "data": page, "pagination": pagination, "next": next_url}
    return web.json_response(body)


def _int_id(raw: str, what: str) -> int:
    """Path ids are integers; anything else names a resource that cannot exist."""
    if not raw.isdigit():
        raise not_found(what, raw)
    return int(raw)


async def _json_body(request: web.Request) -> object:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "The request body must be valid JSON") from None


# -- faults ---------------------------------------------------------------------------------

_HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_FAULT_MESSAGES = {
    "429": (429, "Too many requests. Please retry later."),
    "429-date": (429, "Too many requests. Please retry later."),
    "500": (500, "Internal server error"),
    "502": (502, "Bad gateway"),
    "503": (503, "Service unavailable"),
    "401": (401, "Invalid or expired API token"),
    "403": (403, "This API token may not access this resource"),
}


def _seconds_header(seconds: float) -> str:
    """``Retry-After`` in seconds: an integer when whole, else a decimal number."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _date_header(seconds: float) -> str:
    """``Retry-After`` as an HTTP date, rounded up to the next whole second."""
    return email.utils.formatdate(math.ceil(time.time() + seconds), usegmt=True)


def fault_response(kind: str, decision: Decision) -> web.Response | None:
    """The answer a fault gives instead of the real one; None means "no answer at all"."""
    if kind == "drop":
        return None
    if kind == "html":
        return web.Response(status=502, text=_HTML_502, content_type="text/html")
    if kind == "empty":
        return web.Response(status=200, body=b"", content_type="application/json")
    if kind == "cut_json":
        full = json.dumps({"status": "success", "data": {"id": 1, "status": "working", "note": "x" * 64}})
        return web.Response(status=200, text=full[: len(full) // 2], content_type="application/json")
    http_status, message = _FAULT_MESSAGES[kind]
    response = error(http_status, message)
    if kind == "429":
        response.headers["Retry-After"] = _seconds_header(decision.retry_after)
    elif kind == "429-date":
        response.headers["Retry-After"] = _date_header(decision.retry_after)
    return response


def _drop(request: web.Request) -> web.Response:
    """Close the connection before any byte of an answer is written.

    aiohttp then fails to write the returned placeholder, notices the closed transport and
    forgets the request, so the client sees the connection end without a response.
    """
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


# -- the middleware --------------------------------------------------------------------------


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the handler, turning every kind of refusal into a Census error body."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error(exc.http_status, exc.message)
    except web.HTTPNotFound:
        return error(404, f"Not found: {request.method} {request.path}")
    except web.HTTPMethodNotAllowed:
        return error(405, f"Method {request.method} is not allowed on {request.path}")


@web.middleware
async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Auth, faults, handling and recording, in that order, for every request."""
    state = request.app[STATE]
    started = time.monotonic()

    def record(status: int | None, fault: str | None) -> None:
        state.log.add(
            RecordedRequest(request.method, request.path, dict(request.query), status, fault, started, time.monotonic())
        )

    if request.headers.get("Authorization") != f"Bearer {state.token}":
        record(401, None)
        return error(401, "Unauthorized: send the workspace API token as 'Authorization: Bearer <token>'")
    decision = state.faults.decide(request.method, request.path)
    if decision.delay > 0:
        await asyncio.sleep(decision.delay)
    kind = decision.kind
    if kind == "latency":
        await asyncio.sleep(decision.latency)
    elif kind is not None and kind != "drop_after":
        faulty = fault_response(kind, decision)
        record(None if faulty is None else faulty.status, kind)
        return _drop(request) if faulty is None else faulty
    response = await _answer(request, handler)
    if kind == "drop_after":
        record(None, kind)
        return _drop(request)
    record(response.status, kind)
    return response


# -- handlers: sources and destinations ------------------------------------------------------


def _source(request: web.Request) -> JSON:
    key = request.match_info["source"]
    found = request.app[STATE].workspace.catalog.source(key)
    if found is None:
        raise not_found("Source", key)
    return found


def _destination(request: web.Request) -> JSON:
    key = request.match_info["destination"]
    found = request.app[STATE].workspace.catalog.destination(key)
    if found is None:
        raise not_found("Destination", key)
    return found


async def list_sources(request: web.Request) -> web.Response:
    return listing(request, request.app[STATE].workspace.catalog.sources())


async def get_source(request: web.Request) -> web.Response:
    source = _source(request)
    source["data_sources"] = request.app[STATE].workspace.catalog.data_sources(source["id"])
    return success(source)


async def source_objects(request: web.Request) -> web.Response:
    return listing(request, request.app[STATE].workspace.catalog.data_sources(_source(request)["id"]))


def _strip_columns(items: list[JSON]) -> list[JSON]:
    return [{key: value for key, value in item.items() if key != "columns"} for item in items]


async def list_models(request: web.Request) -> web.Response:
    models = request.app[STATE].workspace.catalog.models(_source(request)["id"])
    return listing(request, _strip_columns(models))


def _by_id(items: list[JSON], raw: str, what: str) -> web.Response:
    """The item whose id is ``raw`` (as the path spells it), or a 404 naming it."""
    for item in items:
        if str(item["id"]) == raw:
            return success(item)
    raise not_found(what, raw)


async def get_model(request: web.Request) -> web.Response:
    models = request.app[STATE].workspace.catalog.models(_source(request)["id"])
    return _by_id(models, request.match_info["model"], "Model")


async def list_tables(request: web.Request) -> web.Response:
    tables = request.app[STATE].workspace.catalog.tables(_source(request)["id"])
    return listing(request, _strip_columns(tables))


async def get_table(request: web.Request) -> web.Response:
    tables = request.app[STATE].workspace.catalog.tables(_source(request)["id"])
    return _by_id(tables, request.match_info["table"], "Table")


async def list_destinations(request: web.Request) -> web.Response:
    return listing(request, request.app[STATE].workspace.catalog.destinations())


async def get_destination(request: web.Request) -> web.Response:
    destination = _destination(request)
    catalog = request.app[STATE].workspace.catalog
    destination["objects"] = catalog.objects(destination["id"], with_fields=False)
    return success(destination)


async def destination_objects(request: web.Request) -> web.Response:
    catalog = request.app[STATE].workspace.catalog
    return listing(request, catalog.objects(_destination(request)["id"], with_fields=False))


async def destination_object(request: web.Request) -> web.Response:
    destination = _destination(request)
    name = request.match_info["full_name"]
    for obj in request.app[STATE].workspace.catalog.objects(destination["id"], with_fields=True):
        if obj["full_name"] == name:
            return success(obj)
    raise not_found("Destination object", name)


# -- handlers: syncs and runs ----------------------------------------------------------------


async def list_syncs(request: web.Request) -> web.Response:
    return listing(request, request.app[STATE].workspace.list_syncs())


async def get_sync(request: web.Request) -> web.Response:
    sync_id = _int_id(request.match_info["sync"], "Sync")
    return success(request.app[STATE].workspace.get_sync(sync_id))


async def create_sync(request: web.Request) -> web.Response:
    body = await _json_body(request)
    validate_only = isinstance(body, dict) and body.get("validate_only") is True
    sync_id = request.app[STATE].workspace.create_sync(body, validate_only=validate_only)
    if sync_id is None:
        return success({})
    return success({"sync_id": sync_id}, status="created", http_status=201)


async def update_sync(request: web.Request) -> web.Response:
    sync_id = _int_id(request.match_info["sync"], "Sync")
    request.app[STATE].workspace.get_sync(sync_id)  # a missing sync is a 404 before a bad body
    body = await _json_body(request)
    return success(request.app[STATE].workspace.update_sync(sync_id, body), status="updated")


async def delete_sync(request: web.Request) -> web.Response:
    sync_id = _int_id(request.match_info["sync"], "Sync")
    request.app[STATE].workspace.delete_sync(sync_id)
    return success({}, status="deleted")


def _flag(raw: str | None, name: str) -> bool:
    if raw is None or raw == "":
        return False
    lowered = raw.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ApiError(400, f"{name} must be true or false, not {raw!r}")


async def trigger_sync(request: web.Request) -> web.Response:
    sync_id = _int_id(request.match_info["sync"], "Sync")
    full_sync = _flag(request.query.get("force_full_sync"), "force_full_sync")
    run_id = request.app[STATE].workspace.trigger(sync_id, full_sync=full_sync)
    return success({"sync_run_id": run_id})


async def sync_runs(request: web.Request) -> web.Response:
    sync_id = _int_id(request.match_info["sync"], "Sync")
    return listing(request, request.app[STATE].workspace.runs_of(sync_id))


async def get_run(request: web.Request) -> web.Response:
    run_id = _int_id(request.match_info["run"], "Sync run")
    return success(request.app[STATE].workspace.poll_run(run_id))


async def cancel_run(request: web.Request) -> web.Response:
    run_id = _int_id(request.match_info["run"], "Sync run")
    request.app[STATE].workspace.cancel_run(run_id)
    return success({}, status="cancelled")


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/sources", list_sources),
    ("GET", "/sources/{source}", get_source),
    ("GET", "/sources/{source}/objects", source_objects),
    ("GET", "/sources/{source}/models", list_models),
    ("GET", "/sources/{source}/models/{model}", get_model),
    ("GET", "/sources/{source}/tables", list_tables),
    ("GET", "/sources/{source}/tables/{table}", get_table),
    ("GET", "/destinations", list_destinations),
    ("GET", "/destinations/{destination}", get_destination),
    ("GET", "/destinations/{destination}/objects", destination_objects),
    ("GET", "/destinations/{destination}/objects/{full_name:.+}", destination_object),
    ("GET", "/syncs", list_syncs),
    ("POST", "/syncs", create_sync),
    ("POST", "/syncs/create", create_sync),
    ("GET", "/syncs/{sync}", get_sync),
    ("PATCH", "/syncs/{sync}", update_sync),
    ("DELETE", "/syncs/{sync}", delete_sync),
    ("POST", "/syncs/{sync}/trigger", trigger_sync),
    ("GET", "/syncs/{sync}/sync_runs", sync_runs),
    ("GET", "/sync_runs/{run}", get_run),
    ("POST", "/sync_runs/{run}/cancel", cancel_run),
]


def build_app(state: EmulatorState) -> web.Application:
    """The aiohttp application serving the Census v1 API under ``/api/v1``."""
    app = web.Application(middlewares=[pipeline])
    app[STATE] = state
    for method, path, handler in ROUTES:
        app.router.add_route(method, API_PREFIX + path, handler)
    return app


async def serve(state: EmulatorState, host: str, port: int, keepalive_timeout: float) -> web.AppRunner:
    """Start listening; the caller keeps the loop running and later awaits ``cleanup()``.

    A deep backlog and a long keep-alive let a thousand pollers connect at once and keep
    their connections between polls, as they would against Census.
    """
    runner = web.AppRunner(
        build_app(state),
        access_log=None,
        handle_signals=False,
        keepalive_timeout=keepalive_timeout,
        shutdown_timeout=0.5,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    return runner
