"""Every path and method of the Census management API, written once.

The hosts and the API version live here too: Census has announced that v1 retires on
2027-01-15 in favour of a v2, and keeping the version in one place lets v2 arrive without
touching the hook, the operators or the trigger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

API_VERSION = "v1"
REGION_APP_HOSTS: Mapping[str, str] = {
    "us": "https://app.getcensus.com",
    "eu": "https://app-eu.getcensus.com",
}
DEFAULT_REGION = "us"
MAX_PER_PAGE = 100


def region_base_url(region: str) -> str:
    """The API base URL of a Census region (``us`` or ``eu``)."""
    return f"{REGION_APP_HOSTS[region]}/api/{API_VERSION}"


def app_url_for_base(base_url: str) -> str:
    """The Census app's host for an API base URL: the same scheme and host, no path."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def sync_run_app_url(base_url: str, sync_id: int, sync_run_id: int) -> str:
    """The page of one run in its sync's history, as Census's app links it."""
    query = urlencode({"sync_run_id": sync_run_id})
    return f"{app_url_for_base(base_url)}/syncs/{sync_id}/history?{query}"


@dataclass(frozen=True)
class ApiRequest:
    """One request, described without any HTTP library, so both clients send the same thing.

    ``safe_to_retry`` is False for calls that act each time they arrive (triggering a sync,
    creating one): those are retried only when the request surely never reached Census.
    ``subject`` names what the request is about, for error messages ("sync 61").
    """

    method: str
    path: str
    subject: str
    params: tuple[tuple[str, str], ...] = ()
    body: Any = None
    safe_to_retry: bool = True

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Endpoint:
    """A method and a path template such as ``/syncs/{sync_id}/trigger``."""

    method: str
    path: str
    subject: str
    safe_to_retry: bool = True

    def bind(
        self,
        *,
        params: Mapping[str, str | int | bool | None] | None = None,
        body: Any = None,
        **path_args: str | int,
    ) -> ApiRequest:
        """Fill the path (each part URL-quoted: slugs and object names are user text)."""
        quoted = {key: quote(str(value), safe="") for key, value in path_args.items()}
        return ApiRequest(
            method=self.method,
            path=self.path.format(**quoted),
            subject=self.subject.format(**{key: str(value) for key, value in path_args.items()}),
            params=_query_pairs(params or {}),
            body=body,
            safe_to_retry=self.safe_to_retry,
        )


def _query_pairs(params: Mapping[str, str | int | bool | None]) -> tuple[tuple[str, str], ...]:
    """Query parameters as text, booleans spelt the way Census expects (``true``/``false``)."""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        pairs.append((key, text))
    return tuple(pairs)


LIST_SOURCES = Endpoint("GET", "/sources", "the sources")
GET_SOURCE = Endpoint("GET", "/sources/{source}", "source {source}")
LIST_SOURCE_OBJECTS = Endpoint("GET", "/sources/{source}/objects", "the objects of source {source}")
LIST_MODELS = Endpoint("GET", "/sources/{source}/models", "the models of source {source}")
GET_MODEL = Endpoint("GET", "/sources/{source}/models/{model_id}", "model {model_id} of source {source}")
LIST_TABLES = Endpoint("GET", "/sources/{source}/tables", "the tables of source {source}")
GET_TABLE = Endpoint("GET", "/sources/{source}/tables/{table_id}", "table {table_id} of source {source}")
LIST_DESTINATIONS = Endpoint("GET", "/destinations", "the destinations")
GET_DESTINATION = Endpoint("GET", "/destinations/{destination}", "destination {destination}")
LIST_DESTINATION_OBJECTS = Endpoint(
    "GET", "/destinations/{destination}/objects", "the objects of destination {destination}"
)
GET_DESTINATION_OBJECT = Endpoint(
    "GET",
    "/destinations/{destination}/objects/{object_name}",
    "object {object_name} of destination {destination}",
)
LIST_SYNCS = Endpoint("GET", "/syncs", "the syncs")
GET_SYNC = Endpoint("GET", "/syncs/{sync_id}", "sync {sync_id}")
CREATE_SYNC = Endpoint("POST", "/syncs", "a new sync", safe_to_retry=False)
CREATE_SYNC_LEGACY = Endpoint("POST", "/syncs/create", "a new sync", safe_to_retry=False)
UPDATE_SYNC = Endpoint("PATCH", "/syncs/{sync_id}", "sync {sync_id}")
DELETE_SYNC = Endpoint("DELETE", "/syncs/{sync_id}", "sync {sync_id}")
TRIGGER_SYNC = Endpoint("POST", "/syncs/{sync_id}/trigger", "sync {sync_id}", safe_to_retry=False)
LIST_SYNC_RUNS = Endpoint("GET", "/syncs/{sync_id}/sync_runs", "sync {sync_id}")
GET_SYNC_RUN = Endpoint("GET", "/sync_runs/{sync_run_id}", "sync run {sync_run_id}")
CANCEL_SYNC_RUN = Endpoint("POST", "/sync_runs/{sync_run_id}/cancel", "sync run {sync_run_id}")
