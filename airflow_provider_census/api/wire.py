"""Request building and answer parsing, shared by the synchronous and the asynchronous client.

Both clients send what :func:`prepare` makes of a :class:`~.endpoints.Request` and hand the
:class:`Answer` to the same :func:`parse`, which checks Census's envelope and returns the
call's typed result; they differ only in how bytes travel (``requests`` for tasks,
``aiohttp`` for triggers). So what a call sends, what an answer means and which error it
is are written once. A request that got no answer at all is worded in :mod:`.transport_failures`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode, urlsplit

from airflow_provider_census import __version__
from airflow_provider_census.api import routes
from airflow_provider_census.api.endpoints import Request
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
from airflow_provider_census.api.models import ShapeError
from airflow_provider_census.api.retry import parse_retry_after
from airflow_provider_census.api.settings import (
    GROUP_ID_HELP,
    MIGRATION_STEPS,
    TOKEN_KINDS,
    V1,
    V1_RETIRED_ON,
    V2,
    ClientSettings,
    region_base_url,
    v1_is_retired,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

USER_AGENT = f"airflow-provider-census/{__version__}"
EXCERPT_CHARS = 160


@dataclass(frozen=True)
class Answer:
    """What came back: status, headers and the raw body, before anything is read from it."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def retry_after(self) -> float | None:
        """Census's ``Retry-After`` wish, in seconds, if it sent one."""
        return parse_retry_after(_header(self.headers, "Retry-After"))


def prepare(settings: ClientSettings, request: Request[Any]) -> tuple[str, dict[str, str], bytes | None]:
    """The URL, headers and body to send; the token travels only in the Authorization header."""
    url = settings.base_url.rstrip("/") + request.path
    if request.params:
        url = f"{url}?{urlencode(request.params)}"
    headers = {
        "Authorization": f"Bearer {settings.token}",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    body = None
    if request.body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(request.body).encode()
    return url, headers, body


def parse(settings: ClientSettings, request: Request[T], answer: Answer) -> T:
    """The call's typed result, or the typed error that the answer means."""
    envelope = _envelope(settings, request, answer)
    if request.assumed:
        routes.note_served(settings.base_url, request.route)
    try:
        return request.read(envelope, dict(request.params))
    except ShapeError as exc:
        raise CensusResponseError(
            f"Census answered {request.label} with an unexpected shape: {exc}. Check that the "
            "connection's base_url points at the Census API itself; if it does, Census changed this answer: "
            "upgrade airflow-provider-census or report it.",
            http_status=answer.status,
            request_label=request.label,
        ) from None


def _envelope(settings: ClientSettings, request: Request[Any], answer: Answer) -> Mapping[str, Any]:
    """The JSON envelope of a success; an error status or an ``error`` envelope raises."""
    log.debug("Census %s -> HTTP %d", request.label, answer.status)
    payload = _decode_json(answer.body)
    if answer.status >= 400:
        raise _with_retirement_note(settings, _error_for_status(settings, request, answer, payload))
    if 300 <= answer.status < 400:
        raise _redirect_error(settings, request, answer)
    if answer.status == 204 or (not answer.body.strip() and request.method == "DELETE"):
        return {}
    if not isinstance(payload, Mapping):
        raise CensusResponseError(
            f"Census answered {request.label} with HTTP {answer.status} but "
            f"{_describe_body(settings, answer.body, payload)}; expected a JSON object. "
            "A proxy may be in the way, or Census had a passing fault.",
            http_status=answer.status,
            request_label=request.label,
        )
    envelope_status = payload.get("status")
    if envelope_status in ("error", "not_found"):
        message = _census_message(settings, payload)
        error_class = CensusNotFoundError if envelope_status == "not_found" else CensusValidationError
        raise error_class(
            f"Census refused {request.label} for {request.subject}: {message or 'no reason given'}",
            http_status=answer.status,
            request_label=request.label,
            census_message=message,
        )
    return payload


def scrub(settings: ClientSettings, text: str) -> str:
    """Text from the wire with the token removed, in case anything echoes it back."""
    return text.replace(settings.token, "***") if settings.token else text


def _decode_json(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _census_message(settings: ClientSettings, payload: Any) -> str | None:
    if isinstance(payload, Mapping):
        for key in ("message", "error", "errors"):
            value = payload.get(key)
            if value:
                text = value if isinstance(value, str) else json.dumps(value)
                return scrub(settings, text)
    return None


def _describe_body(settings: ClientSettings, body: bytes, payload: Any) -> str:
    """A short, token-free account of a body we could not use, quoting its start."""
    if not body.strip():
        return "an empty body"
    text = scrub(settings, body.decode("utf-8", errors="replace"))
    excerpt = re.sub(r"\s+", " ", text).strip()[:EXCERPT_CHARS]
    if payload is not None:
        return f"JSON of type {type(payload).__name__}: {excerpt!r}"
    if re.match(r"\s*(<!doctype|<html|<)", text, re.IGNORECASE):
        return f"an HTML page, not JSON: {excerpt!r}"
    return f"a body that is not valid JSON (cut off?): {excerpt!r}"


def _error_for_status(settings: ClientSettings, request: Request[Any], answer: Answer, payload: Any) -> CensusApiError:
    status = answer.status
    message = _census_message(settings, payload)
    said = f": {message}" if message else f"; the body was {_describe_body(settings, answer.body, payload)}"
    where = f"HTTP {status} on {request.label}"
    retry_after = answer.retry_after
    common: dict[str, Any] = {
        "http_status": status,
        "request_label": request.label,
        "census_message": message,
        "retry_after": retry_after,
    }
    if status == 401:
        return CensusAuthenticationError(
            f"Census did not accept the API token from {settings.token_origin} ({where}){said}. "
            f"{_token_advice(settings)}{wrong_host_hint(settings, 'unauthorized')}",
            **common,
        )
    if status == 403:
        return CensusAuthenticationError(
            f"The API token from {settings.token_origin} may not access {request.subject} ({where}){said}. "
            f"Use {_token_owner(settings)}.",
            **common,
        )
    if status == 404 or (status == 405 and request.assumed):
        return _not_found(settings, request, said, common)
    if status == 429:
        wait = f"; it asked to wait {retry_after:g} s" if retry_after is not None else ""
        return CensusRateLimitError(
            f"Census is rate limiting requests ({where}){wait}. Run fewer Census tasks at once or "
            "raise their poll_interval; for a token shared with other tools or Airflow processes, set the "
            "connection's extra max_requests_per_second.",
            **common,
        )
    if status >= 500:
        return CensusServerError(
            f"Census failed to answer {request.subject} ({where}){said}. The fault is on Census's side or a proxy's: "
            "retry the task later, and contact Census support if it persists.",
            **common,
        )
    return CensusValidationError(
        f"Census refused the request for {request.subject} ({where}){said}{_group_advice(settings, request, message)}",
        **common,
    )


def _group_advice(settings: ClientSettings, request: Request[Any], message: str | None) -> str:
    """What to do when V2 refuses a request over its Fivetran group.

    The provider sends ``group_id`` only where known and never demands one beforehand (no V2
    page says which calls need it), so Census's refusal is where a missing or wrong group
    shows: it names the connection's extra, and how to find the id.
    """
    if settings.api_version != V2 or not message or "group" not in message.lower():
        return ""
    sent = dict(request.params).get("group_id")
    fix = "check" if sent else "set"
    named = f"The request named group {sent!r}; " if sent else "The request named no group; "
    return (
        f". {named}{fix} the extra group_id of {settings.token_origin} (or pass group_id= to the hook's "
        f"method) to the group of your Activations workspace: {GROUP_ID_HELP}."
    )


def _not_found(settings: ClientSettings, request: Request[Any], said: str, common: dict[str, Any]) -> CensusApiError:
    """A 404, worded for what it can mean: on a route the version's reference documents, a missing object;
    on one it does not (a v1 route sent to V2), a missing object or a route this Census does not serve."""
    if request.assumed:
        return CensusNotFoundError(
            f"Census answered HTTP {common['http_status']} on {request.label}{said}, a call the API "
            f"{settings.api_version} reference does not document (it is v1's, assumed to exist on "
            f"{settings.api_version}): either this Census does not serve it, or {request.subject} does not exist. "
            f"Check {request.subject} in the Census app, and run "
            f"`python -m airflow_provider_census check` for {settings.token_origin} to see which calls it serves."
            f"{wrong_host_hint(settings, 'not_found')}",
            assumed_route=True,
            **common,
        )
    return CensusNotFoundError(
        f"Census has no {request.subject} (HTTP 404 on {request.label}){said}. Check the id, and that "
        f"{settings.token_origin} points at the right {_scope(settings)} and region."
        f"{wrong_host_hint(settings, 'not_found')}",
        **common,
    )


def _scope(settings: ClientSettings) -> str:
    return "Fivetran group" if settings.api_version == V2 else "workspace"


def _token_owner(settings: ClientSettings) -> str:
    if settings.api_version == V2:
        return "the personal access token of a user with access to the group that owns it"
    return "an API key of the workspace that owns it"


def _redirect_error(settings: ClientSettings, request: Request[Any], answer: Answer) -> CensusRedirectError:
    """A redirect, worded as the connection problem it nearly always is (http for https, a path left out)."""
    location = urlsplit(_header(answer.headers, "Location") or "")
    target = f" to {location.scheme}://{location.netloc}{location.path}" if location.netloc else ""
    return CensusRedirectError(
        f"Census answered {request.label} with HTTP {answer.status}, a redirect{target}. The request was not "
        f"followed, so the token stays with {settings.base_url}: set the connection's base_url (or region) to "
        "where the API really is, e.g. https://app.getcensus.com/api/v2.",
        http_status=answer.status,
        request_label=request.label,
    )


def _token_advice(settings: ClientSettings) -> str:
    """What a 401 most likely means: a token of the other API version, or one revoked or mistyped."""
    if settings.api_version == V2:
        return (
            f"API v2 takes {TOKEN_KINDS[V2]}; a v1 workspace API key is refused there. Put a personal access "
            "token in the connection's password field, or set its extra api_version to v1 while v1 lives "
            f"(until {V1_RETIRED_ON.isoformat()})."
        )
    return (
        f"API v1 takes {TOKEN_KINDS[V1]}; an Activations personal access token is not one. Put the workspace "
        "API key in the connection's password field, or, to use a personal access token, set the "
        "connection's extra api_version to v2."
    )


def _with_retirement_note(settings: ClientSettings, error: CensusApiError) -> CensusApiError:
    """Once v1 is switched off, every v1 failure says so first: it is the likely cause and has one fix."""
    if settings.api_version != V1 or not v1_is_retired():
        return error
    note = (
        f"Census retired API v1 on {V1_RETIRED_ON.isoformat()}, and {settings.token_origin} still talks v1: "
        f"{MIGRATION_STEPS}. "
    )
    error.args = (note + str(error),)
    return error


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


HostFailure = Literal["unreachable", "not_found", "unauthorized"]
_AS_SEEN: Mapping[HostFailure, str] = {
    "unreachable": "fails to connect like this (no such name, refused, or a certificate for another name)",
    "not_found": "answers 404 to every call",
    "unauthorized": "refuses even a valid personal access token",
}
V1_KEY_PREFIX = "secret-token:"
"""How v1 workspace API keys usually start; V2's personal access tokens do not."""


def wrong_host_hint(settings: ClientSettings, failure: HostFailure) -> str:
    """On V2 in the EU region, a failure that a host without V2 would cause also names the US host.

    Whether V2 is served on the EU host is contested (Census's own Terraform V2 client says it
    has one host, ``app.getcensus.com``; other V2 users document ``app-eu.getcensus.com`` too),
    so a connection that names the EU region and cannot connect, finds nothing, or has a
    personal access token refused is told which host to try and how to choose it. A refused
    token that looks like a v1 key (``secret-token:...``) is the token's fault, not the host's.
    The provider never tries the other host itself: the token goes only where the connection
    points. Pure, so the wording is tested without any host.
    """
    if settings.api_version != V2 or settings.region != "eu":
        return ""
    if failure == "unauthorized" and settings.token.startswith(V1_KEY_PREFIX):
        return ""
    us_base_url = region_base_url("us", V2)
    return (
        f" {settings.token_origin} talks API v2 in Census's EU region, a host Census's own V2 client does not "
        f"know (it knows only {us_base_url}); a host without V2 {_AS_SEEN[failure]}. To use the US host, set "
        f"the connection's extra region to us (or its base_url to {us_base_url}); the token is sent only to "
        "the host the connection names."
    )
