"""The HTTP face of the emulator: routes, the Census envelope, auth, paging and faults.

Both API versions are served from one application over one workspace: v1 under
``/api/v1`` and V2 (Activations) under ``/api/v2``. Every request passes one middleware
that refuses versions the workspace does not serve, checks the token of the version
asked, applies any fault, runs the handler, turns errors into that version's error
bodies and records the request. Handlers ask :func:`api_version` where the versions
differ (names of destinations, ``group_id``). They only do quick in-memory work under the
workspace lock, so they never block the event loop; the only waiting (latency faults) is
``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from airflow_provider_census.testing import paging, v2, versions
from airflow_provider_census.testing.catalog import JSON
from airflow_provider_census.testing.errors import ApiError, not_found
from airflow_provider_census.testing.faults import Decision, FaultPlan
from airflow_provider_census.testing.ratelimit import RateLimit
from airflow_provider_census.testing.requestlog import RecordedRequest, RequestLog
from airflow_provider_census.testing.workspace import Workspace

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class EmulatorState:
    """What the handlers share with the test-facing :class:`CensusEmulator`.

    ``token`` is the v1 workspace API key and ``pat`` the V2 personal access token; each
    is accepted only by its own version, as Census does. ``require_group`` makes V2's lists
    of sources and activations refuse a request without ``group_id``.
    """

    token: str
    pat: str
    group_id: str
    api_versions: tuple[str, ...]
    workspace: Workspace
    faults: FaultPlan
    log: RequestLog
    v2_routes: str = "all"
    require_group: bool = False
    rate_limit: RateLimit = field(default_factory=RateLimit)

    def token_for(self, version: str) -> str:
        return self.token if version == "v1" else self.pat


STATE: web.AppKey[EmulatorState] = web.AppKey("census_emulator_state", EmulatorState)


def api_version(request: web.Request) -> str | None:
    """``"v1"`` or ``"v2"``: which version the request's path is under (handlers see no other)."""
    return versions.split(request.path)[0]


# -- envelope -----------------------------------------------------------------------------


def success(data: Any, status: str = "success", http_status: int = 200) -> web.Response:
    return web.json_response({"status": status, "data": data}, status=http_status)


def error(http_status: int, message: str) -> web.Response:
    return web.json_response({"status": "error", "message": message}, status=http_status)


def version_error(version: str, http_status: int, message: str) -> web.Response:
    """An error as ``version`` words it: a V2 404 is a bare ``{"status": 404}``, without a message.

    Census's V2 answers a missing resource that way, so clients must cope with an error
    body that explains nothing; every other error keeps v1's ``status``/``message`` body.
    """
    if version == "v2" and http_status == 404:
        return web.json_response({"status": 404}, status=404)
    return error(http_status, message)


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
    "404": (404, "Not found"),
}


def _seconds_header(seconds: float) -> str:
    """``Retry-After`` in seconds: an integer when whole, else a decimal number."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _date_header(seconds: float) -> str:
    """``Retry-After`` as an HTTP date, rounded up to the next whole second."""
    return email.utils.formatdate(math.ceil(time.time() + seconds), usegmt=True)


def fault_response(kind: str, decision: Decision, version: str = "v1") -> web.Response | None:
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
    response = version_error(version, http_status, message)
    if kind == "429":
        response.headers["Retry-After"] = _seconds_header(decision.retry_after)
    elif kind == "429-date":
        response.headers["Retry-After"] = _date_header(decision.retry_after)
    return response


RATE_LIMITED = "rate_limit"
"""The ``fault`` the request log gives a request the emulator's rate limit refused."""


def rate_limited(version: str, retry_after: int) -> web.Response:
    """The 429 of a token over its limit, with ``Retry-After`` in whole seconds, as Census sends it."""
    response = version_error(version, 429, "Too many requests. Please retry later.")
    response.headers["Retry-After"] = str(retry_after)
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


async def _answer(request: web.Request, handler: Handler, version: str) -> web.StreamResponse:
    """Run the handler, turning every kind of refusal into an error body of ``version``."""
    try:
        return await handler(request)
    except ApiError as exc:
        return version_error(version, exc.http_status, exc.message)
    except web.HTTPNotFound:
        return version_error(version, 404, f"Not found: {request.method} {request.path}")
    except web.HTTPMethodNotAllowed:
        return error(405, f"Method {request.method} is not allowed on {request.path}")


def _unauthorized(state: EmulatorState, version: str, authorization: str | None) -> str:
    """A 401 message naming the kind of token ``version`` takes, and the kind that was sent.

    Sending the other version's token is the likeliest mistake while migrating, so the
    message says so; it never repeats the token itself.
    """
    message = f"Unauthorized: API {version} takes {versions.CREDENTIALS[version]}, as 'Authorization: Bearer <token>'"
    for other in versions.API_VERSIONS:
        if other != version and authorization == f"Bearer {state.token_for(other)}":
            message += f"; the token sent is {versions.CREDENTIALS[other]}, which only API {other} takes"
    return message


def _unserved(state: EmulatorState, request: web.Request) -> web.Response:
    """The 404 for a path under no version this workspace serves, naming the ones it does."""
    served = " and ".join(versions.prefix(name) for name in state.api_versions)
    return error(404, f"Not found: {request.method} {request.path}; this workspace serves its API under {served}")


@web.middleware
async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Version and auth checks, the rate limit, faults, handling and recording, in that order, for every request."""
    state = request.app[STATE]
    started = time.monotonic()
    version, api_path = versions.split(request.path)

    def record(status: int | None, fault: str | None) -> None:
        query = dict(request.query)
        finished = time.monotonic()
        state.log.add(
            RecordedRequest(request.method, request.path, query, status, fault, started, finished, version, api_path)
        )

    if version is None or version not in state.api_versions:
        record(404, None)
        return _unserved(state, request)
    authorization = request.headers.get("Authorization")
    if authorization != f"Bearer {state.token_for(version)}":
        record(401, None)
        return error(401, _unauthorized(state, version, authorization))
    retry_after = state.rate_limit.admit(state.token_for(version), started)
    if retry_after is not None:
        record(429, RATE_LIMITED)
        return rate_limited(version, retry_after)
    with_query = f"{api_path}?{request.query_string}" if request.query_string else api_path
    decision = state.faults.decide(request.method, request.path, with_query)
    if decision.delay > 0:
        await asyncio.sleep(decision.delay)
    kind = decision.kind
    if kind == "latency":
        await asyncio.sleep(decision.latency)
    elif kind is not None and kind != "drop_after":
        faulty = fault_response(kind, decision, version)
        record(None if faulty is None else faulty.status, kind)
        return _drop(request) if faulty is None else faulty
    response = await _answer(request, handler, version)
    if kind == "drop_after":
        record(None, kind)
        return _drop(request)
    record(response.status, kind)
    return response


# -- V2's group scope ------------------------------------------------------------------------


def _check_group(request: web.Request, given: object, *, required: bool = False) -> None:
    """On V2, refuse a request whose ``group_id`` is not ours, or missing when ``required``.

    No V2 page documents a group as required (the token carries its user's access), so a
    request without one is answered whole; a refusal for a missing group (400, naming
    ``group_id``) is what an emulator made with ``require_group`` says, for testing what
    users see if Census does demand one. A group the workspace is not in is answered as
    Census does, as if nothing were there (a bare V2 404). v1 has no groups and ignores the
    parameter.
    """
    if api_version(request) != "v2":
        return
    if given is None or given == "":
        if required:
            raise ApiError(400, "group_id is required on API v2: add the query parameter group_id=<your group id>")
        return
    if given != request.app[STATE].group_id:
        raise not_found("Group", given)


def _query_group(request: web.Request, *, required: bool = False) -> None:
    _check_group(request, request.query.get("group_id"), required=required)


def _listing_group(request: web.Request) -> None:
    """The group of a V2 list of sources or activations: optional, unless the emulator requires one."""
    _query_group(request, required=request.app[STATE].require_group)


# -- handlers: sources and destinations ------------------------------------------------------


def _source(request: web.Request) -> JSON:
    key = request.match_info["source"]
    found = request.app[STATE].workspace.catalog.source(key)
    if found is None:
        raise not_found("Source", key)
    return found


def _shown_source(request: web.Request, source: JSON) -> JSON:
    if api_version(request) == "v2":
        return v2.source(source, request.app[STATE].group_id)
    return source


def _destination(request: web.Request) -> JSON:
    """The destination the path names: by v1 id or slug on v1, by activation id or slug on V2."""
    key = request.match_info["destination"]
    catalog = request.app[STATE].workspace.catalog
    if api_version(request) == "v2":
        found, what = catalog.destination_for_activation(key), "Activation"
    else:
        found, what = catalog.destination(key), "Destination"
    if found is None:
        raise not_found(what, key)
    return found


def _shown_destination(request: web.Request, destination: JSON) -> JSON:
    state = request.app[STATE]
    if api_version(request) == "v2":
        return v2.activation(state.workspace.catalog, destination, state.group_id)
    return destination


async def list_sources(request: web.Request) -> web.Response:
    _listing_group(request)
    sources = request.app[STATE].workspace.catalog.sources()
    return listing(request, [_shown_source(request, source) for source in sources])


async def get_source(request: web.Request) -> web.Response:
    source = _source(request)
    source["data_sources"] = request.app[STATE].workspace.catalog.data_sources(source["id"])
    return success(_shown_source(request, source))


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


async def list_segments(request: web.Request) -> web.Response:
    segments = request.app[STATE].workspace.catalog.segments(_source(request)["id"])
    return listing(request, segments)


async def get_segment(request: web.Request) -> web.Response:
    segments = request.app[STATE].workspace.catalog.segments(_source(request)["id"])
    return _by_id(segments, request.match_info["segment"], "Segment")


async def list_datasets(request: web.Request) -> web.Response:
    return listing(request, _strip_columns(request.app[STATE].workspace.catalog.datasets()))


async def get_dataset(request: web.Request) -> web.Response:
    return _by_id(request.app[STATE].workspace.catalog.datasets(), request.match_info["dataset"], "Dataset")


async def list_destinations(request: web.Request) -> web.Response:
    _listing_group(request)
    destinations = request.app[STATE].workspace.catalog.destinations()
    return listing(request, [_shown_destination(request, destination) for destination in destinations])


async def get_destination(request: web.Request) -> web.Response:
    destination = _destination(request)
    catalog = request.app[STATE].workspace.catalog
    destination["objects"] = catalog.objects(destination["id"], with_fields=False)
    return success(_shown_destination(request, destination))


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


async def list_destination_types(request: web.Request) -> web.Response:
    return listing(request, request.app[STATE].workspace.catalog.destination_types())


# -- handlers: syncs and runs ----------------------------------------------------------------


def _shown_sync(request: web.Request, sync: JSON) -> JSON:
    if api_version(request) == "v2":
        return v2.sync(request.app[STATE].workspace.catalog, sync)
    return sync


async def _sync_body(request: web.Request) -> object:
    """The JSON body of a create or update, with V2's activation ids made the workspace's."""
    body = await _json_body(request)
    if api_version(request) != "v2":
        return body
    if isinstance(body, dict):
        _check_group(request, body.get("group_id"))
    return v2.sync_body(request.app[STATE].workspace.catalog, body)


async def list_syncs(request: web.Request) -> web.Response:
    _query_group(request)
    syncs = request.app[STATE].workspace.list_syncs()
    return listing(request, [_shown_sync(request, sync) for sync in syncs])


async def get_sync(request: web.Request) -> web.Response:
    sync_id = _int_id(request.match_info["sync"], "Sync")
    return success(_shown_sync(request, request.app[STATE].workspace.get_sync(sync_id)))


async def create_sync(request: web.Request) -> web.Response:
    body = await _sync_body(request)
    validate_only = isinstance(body, dict) and body.get("validate_only") is True
    sync_id = request.app[STATE].workspace.create_sync(body, validate_only=validate_only)
    if sync_id is None:
        return success({})
    return success({"sync_id": sync_id}, status="created", http_status=201)


async def update_sync(request: web.Request) -> web.Response:
    sync_id = _int_id(request.match_info["sync"], "Sync")
    request.app[STATE].workspace.get_sync(sync_id)  # a missing sync is a 404 before a bad body
    body = await _sync_body(request)
    updated = request.app[STATE].workspace.update_sync(sync_id, body)
    return success(_shown_sync(request, updated), status="updated")


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


# What ``GET /syncs/test_status`` shows of a run; Census adds the record it tried to send.
_TEST_STATUS_FIELDS = (
    "id",
    "created_at",
    "updated_at",
    "completed_at",
    "error_code",
    "error_message",
    "error_detail",
    "status",
)


async def sync_test_status(request: web.Request) -> web.Response:
    """A run's status by ``?sync_run_id=``; it counts as a poll, as ``GET /sync_runs/{id}`` does.

    Counting it lets a client that waits through this endpoint see its run finish. The
    emulator sends no records, so ``sample_record`` is always null.
    """
    raw = request.query.get("sync_run_id", "")
    if not raw:
        raise ApiError(400, "sync_run_id is required")
    if not raw.isdigit():
        raise ApiError(400, f"sync_run_id must be a positive integer, not {raw!r}")
    run = request.app[STATE].workspace.poll_run(int(raw))
    shown = {key: run[key] for key in _TEST_STATUS_FIELDS}
    return success({**shown, "sample_record": None})


async def cancel_run(request: web.Request) -> web.Response:
    run_id = _int_id(request.match_info["run"], "Sync run")
    request.app[STATE].workspace.cancel_run(run_id)
    return success({}, status="cancelled")


V1: tuple[str, ...] = ("v1",)
V2: tuple[str, ...] = ("v2",)
BOTH: tuple[str, ...] = ("v1", "v2")
# (versions, method, path after /api/vN, handler). Where paths overlap the fixed one comes
# first (``/syncs/test_status`` before ``/syncs/{sync}``), so it wins with any aiohttp,
# whether its router tries routes in order or plain paths first. V2 renames destinations
# to activations and connectors to activation types; the path variable keeps one name.
ROUTES: list[tuple[tuple[str, ...], str, str, Handler]] = [
    (BOTH, "GET", "/sources", list_sources),
    (BOTH, "GET", "/sources/{source}", get_source),
    (BOTH, "GET", "/sources/{source}/objects", source_objects),
    (BOTH, "GET", "/sources/{source}/models", list_models),
    (BOTH, "GET", "/sources/{source}/models/{model}", get_model),
    (BOTH, "GET", "/sources/{source}/tables", list_tables),
    (BOTH, "GET", "/sources/{source}/tables/{table}", get_table),
    (BOTH, "GET", "/sources/{source}/filter_segments", list_segments),
    (BOTH, "GET", "/sources/{source}/filter_segments/{segment}", get_segment),
    (BOTH, "GET", "/datasets", list_datasets),
    (BOTH, "GET", "/datasets/{dataset}", get_dataset),
    (V1, "GET", "/destinations", list_destinations),
    (V1, "GET", "/destinations/{destination}", get_destination),
    (V1, "GET", "/destinations/{destination}/objects", destination_objects),
    (V1, "GET", "/destinations/{destination}/objects/{full_name:.+}", destination_object),
    (V1, "GET", "/connectors", list_destination_types),
    (V2, "GET", "/activations", list_destinations),
    (V2, "GET", "/activations/{destination}", get_destination),
    (V2, "GET", "/activations/{destination}/objects", destination_objects),
    (V2, "GET", "/activations/{destination}/objects/{full_name:.+}", destination_object),
    (V2, "GET", "/activation_types", list_destination_types),
    (BOTH, "GET", "/syncs", list_syncs),
    (BOTH, "POST", "/syncs", create_sync),
    (V1, "POST", "/syncs/create", create_sync),
    (BOTH, "GET", "/syncs/test_status", sync_test_status),
    (BOTH, "GET", "/syncs/{sync}", get_sync),
    (BOTH, "PATCH", "/syncs/{sync}", update_sync),
    (BOTH, "DELETE", "/syncs/{sync}", delete_sync),
    (BOTH, "POST", "/syncs/{sync}/trigger", trigger_sync),
    (BOTH, "GET", "/syncs/{sync}/sync_runs", sync_runs),
    (BOTH, "GET", "/sync_runs/{run}", get_run),
    (BOTH, "POST", "/sync_runs/{run}/cancel", cancel_run),
]


V2_DOCUMENTED: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/activations"),
        ("GET", "/activations/{destination}"),
        ("GET", "/activations/{destination}/objects"),
        ("GET", "/activations/{destination}/objects/{full_name:.+}"),
        ("GET", "/activation_types"),
        ("GET", "/datasets"),
        ("GET", "/datasets/{dataset}"),
        ("GET", "/syncs/test_status"),
        ("PATCH", "/syncs/{sync}"),
        ("POST", "/syncs/{sync}/trigger"),
        ("POST", "/sync_runs/{run}/cancel"),
    }
)
"""The V2 routes Fivetran's Activations V2 reference documents (Public Preview, as read in 2026-12).

Every other V2 route here is v1's, assumed to exist on V2 too. With ``v2_routes="documented"``
the emulator serves only these on V2 and answers the rest with V2's bare ``{"status": 404}``, so
a client can be tested against a V2 that is exactly what its reference promises."""


def _served(state: EmulatorState, version: str, method: str, path: str) -> bool:
    if version not in state.api_versions:
        return False
    return version != "v2" or state.v2_routes == "all" or (method, path) in V2_DOCUMENTED


def build_app(state: EmulatorState) -> web.Application:
    """The aiohttp application serving each API version of ``state`` under ``/api/vN``."""
    app = web.Application(middlewares=[pipeline])
    app[STATE] = state
    for route_versions, method, path, handler in ROUTES:
        for version in route_versions:
            if _served(state, version, method, path):
                app.router.add_route(method, versions.prefix(version) + path, handler)
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
