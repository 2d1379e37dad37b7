"""Where requests go and with which token: API versions, regional hosts, client settings.

Census serves two management APIs side by side until v1 is switched off on 2027-01-15:
v1 (workspace API key, one workspace) and V2 (Activations personal access token, a Fivetran
group). The connection chooses one; this module is the only place that knows the hosts, the
versions and the tokens each takes, so nothing above the API layer ever asks which it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from urllib.parse import urlencode, urlsplit

from airflow_provider_census.api.retry import RetryPolicy

V1 = "v1"
V2 = "v2"
API_VERSIONS = (V1, V2)
DEFAULT_API_VERSION = V1
"""What a connection without ``api_version`` talks: v1, as every connection made for 2.1 did."""
V1_RETIRED_ON = date(2027, 1, 15)

REGION_APP_HOSTS: Mapping[str, str] = {
    "us": "https://app.getcensus.com",
    "eu": "https://app-eu.getcensus.com",
}
DEFAULT_REGION = "us"

TOKEN_KINDS: Mapping[str, str] = {
    V1: "a workspace API key (Census: workspace Settings, API access)",
    V2: "an Activations personal access token (your user settings in Fivetran Activations)",
}
GROUP_ID_HELP = (
    "the Fivetran group id is its destination's id: shown on the destination's Setup tab in Fivetran and "
    "listed by Fivetran's REST API (GET https://api.fivetran.com/v1/groups); V2's sources and activations "
    "answer with theirs too"
)
MIGRATION_STEPS = (
    "create an Activations personal access token and put it in the connection's password field, "
    "then set the connection's extra api_version to v2"
)


BUDGET_LEARN = "learn"
"""The default request budget: no cap until Census answers 429, then the rate it teaches (see :mod:`.budget`)."""
BUDGET_OFF = "off"
"""No request budget at all: every request goes the moment it is asked for, 429 or not."""
REQUEST_BUDGETS = (BUDGET_LEARN, BUDGET_OFF)


def region_base_url(region: str, api_version: str) -> str:
    """The API base URL of a Census region (``us`` or ``eu``) for one API version."""
    return f"{REGION_APP_HOSTS[region]}/api/{api_version}"


def app_url_for_base(base_url: str) -> str:
    """The Census app's host for an API base URL: the same scheme and host, no path."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def syncs_app_url(base_url: str) -> str:
    """The workspace's list of syncs in the Census app."""
    return f"{app_url_for_base(base_url)}/syncs"


def sync_run_app_url(base_url: str, sync_id: int, sync_run_id: int) -> str:
    """The page of one run in its sync's history, as Census's app links it."""
    query = urlencode({"sync_run_id": sync_run_id})
    return f"{app_url_for_base(base_url)}/syncs/{sync_id}/history?{query}"


def today() -> date:
    """The UTC date, read in one place so tests can move the clock past v1's retirement."""
    return datetime.now(timezone.utc).date()


def v1_is_retired() -> bool:
    return today() >= V1_RETIRED_ON


@dataclass(frozen=True)
class ClientSettings:
    """Where to send requests, with which token and how patiently.

    ``token_origin`` names where the token came from (an Airflow connection id), so that an
    authentication error says what to fix. ``group_id`` is the Fivetran group that V2 list
    requests are scoped to. ``region`` is the Census region the connection names (``us``,
    ``eu``, or None for a host of no region): usually that of ``base_url``'s host, but a
    proxy's base_url may stand for a region, so it is kept apart for the errors that
    depend on it. ``token`` is excluded from ``repr``. ``request_budget`` is ``learn`` (requests
    pass this process's budget of the token, :mod:`.budget_gate`) or ``off`` (no budget);
    ``request_cap`` an explicit limit of that budget, in requests per second.
    """

    base_url: str
    token: str = field(repr=False)
    api_version: str = DEFAULT_API_VERSION
    group_id: str | None = None
    region: str | None = None
    token_origin: str = "the Census API token"  # noqa: S105 (a description, not a secret)
    timeout: float = 30.0
    connect_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    request_budget: str = BUDGET_LEARN
    request_cap: float | None = None
