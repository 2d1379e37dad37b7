"""From an Airflow connection's fields to where Census is: the API base URL and version.

Connections come in every shape users made over the years: provider 2.1's (the host field,
with or without a scheme, and no extras), this provider's (``region`` or ``base_url`` and
``api_version``), and the older prefixed extras of Airflow 2's form. Reading them is pure
(a mapping and a host in, a URL and a version out; the one side effect is the warning about a
plain http URL the connection allows), so it lives apart from the hooks that use it, and every
refusal says what to change. :func:`client_settings` puts it together for both hooks, the
blocking one and the asyncio one, and registers the token with Airflow's secrets masker.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_census.api import inputs
from airflow_provider_census.api.errors import CensusConfigurationError
from airflow_provider_census.api.retry import RetryPolicy
from airflow_provider_census.api.settings import (
    API_VERSIONS,
    BUDGET_LEARN,
    BUDGET_OFF,
    DEFAULT_API_VERSION,
    DEFAULT_REGION,
    REGION_APP_HOSTS,
    REQUEST_BUDGETS,
    TOKEN_KINDS,
    V1_RETIRED_ON,
    ClientSettings,
    region_base_url,
)
from airflow_provider_census.get_provider_info import CONNECTION_TYPE
from airflow_provider_census.version_compat import AirflowNotFoundException, mask_secret

if TYPE_CHECKING:
    from airflow.sdk import Connection

LOOPBACK_NAMES = frozenset({"localhost"})
INSECURE_HTTP_EXTRA = "allow_insecure_http"
REQUEST_CAP_EXTRA = "max_requests_per_second"
REQUEST_BUDGET_EXTRA = "request_budget"
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off", ""})

log = logging.getLogger(__name__)


def client_settings(
    conn: Connection, conn_id: str, *, timeout: float = 30.0, retry: RetryPolicy | None = None
) -> ClientSettings:
    """Check the connection and turn it into client settings; the token is masked in logs."""
    origin = f"Airflow connection {conn_id!r}"
    token = (conn.password or "").strip()
    extras = conn.extra_dejson
    base_url, api_version = endpoint_from_connection(extras, conn.host, origin)
    if not token:
        raise CensusConfigurationError(
            f"{origin} has no API token: put {TOKEN_KINDS[api_version]} in its password field "
            f"(it talks Census API {api_version})."
        )
    mask_secret(token)
    budget, cap = request_budget(extras, origin)
    return ClientSettings(
        base_url=base_url,
        token=token,
        api_version=api_version,
        group_id=inputs.group_id(extra(extras, "group_id")),
        region=named_region(extras, conn.host, base_url, origin),
        token_origin=origin,
        timeout=timeout,
        retry=retry or RetryPolicy(),
        request_budget=budget,
        request_cap=cap,
    )


def request_budget(extras: Mapping[str, Any], origin: str) -> tuple[str, float | None]:
    """The connection's request budget (``learn`` or ``off``) and its cap in requests per second (None: none).

    ``request_budget`` ``learn`` (the default) keeps to the rate Census teaches with its 429s,
    within ``max_requests_per_second`` when set; ``off`` sends every request at once, as without
    a budget, so a cap beside it cannot hold and is refused.
    """
    named = extra(extras, REQUEST_BUDGET_EXTRA)
    budget = str(named).strip().lower() if named not in (None, "") else BUDGET_LEARN
    if budget not in REQUEST_BUDGETS:
        raise CensusConfigurationError(
            f"{origin} has {REQUEST_BUDGET_EXTRA} {named!r}; use {BUDGET_LEARN} (the default: no limit until Census "
            f"answers 429, then the rate it allows) or {BUDGET_OFF} (no budget: every request goes at once)."
        )
    given = extras.get(REQUEST_CAP_EXTRA)  # 0 is refused, not taken for "not set" as extra() would
    cap = _request_cap(extra(extras, REQUEST_CAP_EXTRA) if given is None else given, origin)
    if cap is not None and budget == BUDGET_OFF:
        raise CensusConfigurationError(
            f"{origin} has {REQUEST_CAP_EXTRA} {cap:g} and {REQUEST_BUDGET_EXTRA} {BUDGET_OFF}: a cap needs the "
            f"budget. Remove {REQUEST_CAP_EXTRA} to send without a budget, or set {REQUEST_BUDGET_EXTRA} to "
            f"{BUDGET_LEARN} to keep to the cap."
        )
    return budget, cap


def _request_cap(value: Any, origin: str) -> float | None:
    """``max_requests_per_second``: a positive number (JSON, or text as Airflow 2's form stores it), or empty."""
    if value is None or value == "":
        return None
    try:
        cap = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        cap = math.nan
    if not math.isfinite(cap) or cap <= 0:
        raise CensusConfigurationError(
            f"{origin} has {REQUEST_CAP_EXTRA} {value!r}; put a positive number of requests per second there "
            "(e.g. 5, or 0.5 for one request every 2 s) that this process may send to Census on the connection's "
            "token, or leave it empty for no cap (the budget then learns Census's limit from its 429 answers)."
        )
    return cap


@contextmanager
def connection_must_exist(conn_id: str) -> Iterator[None]:
    """Airflow only says the id is not defined; say how to define it (both hooks read through this)."""
    try:
        yield
    except AirflowNotFoundException as exc:
        raise CensusConfigurationError(
            f"Airflow connection {conn_id!r} does not exist. Create it with type 'census', "
            "extra api_version v2 and an Activations personal access token in its password field (UI, CLI, "
            f"or the environment variable AIRFLOW_CONN_{conn_id.upper()}), or pass "
            "census_conn_id of an existing one."
        ) from exc


def endpoint_from_connection(extras: Mapping[str, Any], host: str | None, origin: str) -> tuple[str, str]:
    """The API base URL and version from the connection.

    ``base_url`` wins; else a host that is not a Census app host (2.1 connections kept the
    address there); else the region, from ``region`` or from a Census app host, which must
    agree when both are set. The version is ``api_version``, else the one a base URL's path
    names, else v1 (what connections made for 2.1 talk).
    """
    version = _api_version(extras, origin)
    host = (host or "").strip()
    host_region = _region_of_app_host(host) if host else None
    address = extra(extras, "base_url") or _host_address(host, host_region)
    if address:
        return checked_base_url(str(address), origin, version, allow_http=_flag(extras, INSECURE_HTTP_EXTRA, origin))
    version = version or DEFAULT_API_VERSION
    return region_base_url(_region(extras, host_region, origin), version), version


def named_region(extras: Mapping[str, Any], host: str | None, base_url: str, origin: str) -> str | None:
    """The Census region the connection stands for, or None for a host of no region.

    That of the base URL when it is a Census app host; else the ``region`` extra (or a 2.1
    Census host), since a proxy's base_url may stand in front of a region's host. Errors
    that depend on the region (V2 on the EU host) read it from here.
    """
    served = _region_of_app_host(base_url)
    if served is not None:
        return served
    host = (host or "").strip()
    host_region = _region_of_app_host(host) if host else None
    if extra(extras, "region") or host_region:
        return _region(extras, host_region, origin)
    return None


def _host_address(host: str, host_region: str | None) -> str:
    """A non-Census host given as the address (provider 2.1 read it as ``https://`` + host)."""
    if not host or host_region is not None:
        return ""
    return host if "://" in host else f"https://{host}"


def _api_version(extras: Mapping[str, Any], origin: str) -> str | None:
    value = extra(extras, "api_version")
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    text = text if text.startswith("v") else f"v{text}"
    if text not in API_VERSIONS:
        raise CensusConfigurationError(
            f"{origin} has api_version {value!r}; Census has v2 (an Activations personal access token) and v1 "
            f"(a workspace API key, until {V1_RETIRED_ON.isoformat()})."
        )
    return text


def _region(extras: Mapping[str, Any], host_region: str | None, origin: str) -> str:
    named = extra(extras, "region")
    region = str(named).strip().lower() if named else (host_region or DEFAULT_REGION)
    if region not in REGION_APP_HOSTS:
        raise CensusConfigurationError(
            f"{origin} names region {region!r}; Census has {' and '.join(sorted(REGION_APP_HOSTS))}. "
            "For another host set base_url instead."
        )
    if host_region is not None and region != host_region:
        raise CensusConfigurationError(
            f"{origin} names region {region!r} but its host is Census's {host_region!r} app host; "
            "clear one of the two (the host field is what provider 2.1 used)."
        )
    return region


def _region_of_app_host(host: str) -> str | None:
    """The region whose Census app host this is (``app-eu.getcensus.com``, with or without a scheme)."""
    hostname = urlsplit(host if "://" in host else f"https://{host}").hostname
    for region, app in REGION_APP_HOSTS.items():
        if urlsplit(app).hostname == hostname:
            return region
    return None


def extra(extras: Mapping[str, Any], name: str) -> Any:
    """An extra by its plain name or the prefixed name older Airflow forms stored."""
    value = extras.get(name) or extras.get(f"extra__{CONNECTION_TYPE}__{name}")
    return value.strip() if isinstance(value, str) else value


def checked_base_url(
    url: str, origin: str, api_version: str | None = None, *, allow_http: bool = False
) -> tuple[str, str]:
    """A base URL that is safe to send the token to (https, or http on this machine), and its API version.

    Plain http to another host is refused unless ``allow_http`` (the connection's extra
    ``allow_insecure_http``: a 2.1 connection through an http proxy), and then warned about
    each time the connection is read, since the token crosses the network readable.
    A URL without a path gets ``/api/<version>``; one that ends in ``/api/v1`` or ``/api/v2``
    names its version, which must agree with ``api_version`` when that is set.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CensusConfigurationError(
            f"{origin} has base_url {url!r}, which is not an http(s) URL; use e.g. {region_base_url('us', 'v2')}"
        )
    if parts.username or parts.password:
        raise CensusConfigurationError(
            f"{origin} has credentials inside base_url; remove them and put the token in the password field."
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        _plain_http(parts.hostname, origin, allow_http)
    path = parts.path.rstrip("/")
    path_version = next((v for v in API_VERSIONS if path.endswith(f"/api/{v}")), None)
    if path_version and api_version and path_version != api_version:
        raise CensusConfigurationError(
            f"{origin} has base_url ending in /api/{path_version} but api_version {api_version}; "
            "make them agree (or leave the path out of base_url)."
        )
    version = api_version or path_version or DEFAULT_API_VERSION
    return f"{parts.scheme}://{parts.netloc}{path or f'/api/{version}'}", version


def _plain_http(hostname: str, origin: str, allowed: bool) -> None:
    """Refuse plain http off this machine, or, where the connection allows it, warn of the risk."""
    if not allowed:
        raise CensusConfigurationError(
            f"{origin} has a plain http base_url to {hostname!r}; the token would travel unencrypted. "
            "Use https (http is allowed only for loopback addresses such as the bundled emulator), or, for a "
            f"proxy you trust on a private network, set the connection's extra {INSECURE_HTTP_EXTRA} to true."
        )
    log.warning(
        "%s sends its Census API token in clear text over plain http to %r (%s is true): anyone on the "
        "network path can read the token and act in Census with it. Use https unless every hop is trusted.",
        origin,
        hostname,
        INSECURE_HTTP_EXTRA,
    )


def _flag(extras: Mapping[str, Any], name: str, origin: str) -> bool:
    """A true/false extra: a JSON boolean, or its text as Airflow 2's form stores it."""
    value = extra(extras, name)
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise CensusConfigurationError(f"{origin} has {name} {value!r}; use true or false.")


def is_loopback(hostname: str) -> bool:
    if hostname.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
