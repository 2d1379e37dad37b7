"""V2 on Census's EU host, whose existence is contested: a failure a missing host would cause names the US host.

The wording is a pure function of the settings and the kind of failure, tested with settings
that name the EU host and are never connected. Through the hook, a connection that names the
EU region in front of the emulator (a proxy's ``base_url`` with ``region: eu``) gets the same
words on both transports, and no request ever goes anywhere but where the connection points.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from typing import Any

import pytest
import requests
from urllib3.connection import HTTPSConnection
from urllib3.exceptions import MaxRetryError, NameResolutionError
from urllib3.exceptions import SSLError as Urllib3SSLError

from airflow_provider_census.api import endpoints as ep
from airflow_provider_census.api.errors import (
    CensusAuthenticationError,
    CensusError,
    CensusNotFoundError,
    CensusTransportError,
)
from airflow_provider_census.api.retry import ONE_TRY
from airflow_provider_census.api.settings import ClientSettings, region_base_url
from airflow_provider_census.api.transport_failures import transport_error
from airflow_provider_census.api.wire import HostFailure, wrong_host_hint
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.hooks.connection import named_region
from airflow_provider_census.testing import CensusEmulator

EU_V2 = region_base_url("eu", "v2")
US_V2 = "https://app.getcensus.com/api/v2"
PAT = "a-personal-access-token-that-looks-fine"
FAILURES: tuple[HostFailure, ...] = ("unreachable", "not_found", "unauthorized")


def eu_settings(**changes: Any) -> ClientSettings:
    values: dict[str, Any] = {
        "base_url": EU_V2,
        "token": PAT,
        "api_version": "v2",
        "region": "eu",
        "token_origin": "Airflow connection 'census_eu'",
    }
    return ClientSettings(**{**values, **changes})


# -- the words, from settings alone ------------------------------------------------------------


@pytest.mark.parametrize("failure", FAILURES)
def test_v2_on_the_eu_host_names_the_us_host_and_both_ways_to_choose_it(failure: HostFailure) -> None:
    hint = wrong_host_hint(eu_settings(), failure)
    assert US_V2 in hint
    assert "Airflow connection 'census_eu' talks API v2 in Census's EU region" in hint
    assert "set the connection's extra region to us" in hint
    assert f"base_url to {US_V2}" in hint
    assert "the token is sent only to the host the connection names" in hint
    assert PAT not in hint


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize(
    "changes",
    [
        {"region": "us", "base_url": US_V2},
        {"api_version": "v1", "base_url": region_base_url("eu", "v1")},
        {"region": None, "base_url": "https://census-proxy.example.com/api/v2"},
    ],
    ids=["v2-us", "v1-eu", "v2-no-region"],
)
def test_no_hint_where_the_host_is_not_in_doubt(failure: HostFailure, changes: dict[str, Any]) -> None:
    assert wrong_host_hint(eu_settings(**changes), failure) == ""


def test_a_refused_v1_key_is_the_tokens_fault_not_the_hosts() -> None:
    settings = eu_settings(token="secret-token:a-workspace-key")
    assert wrong_host_hint(settings, "unauthorized") == ""
    assert wrong_host_hint(settings, "not_found") != ""


def failed_resolution(host: str) -> requests.ConnectionError:
    """What requests raises for a name that does not resolve (built here: no lookup is made)."""
    reason = NameResolutionError(host, HTTPSConnection(host), socket.gaierror(-2, "Name or service not known"))
    return requests.ConnectionError(MaxRetryError(None, "/api/v2/syncs/1", reason))  # type: ignore[arg-type]


def certificate_for_another_name(host: str) -> requests.exceptions.SSLError:
    """What requests raises when the certificate names another host (built here: no handshake is made)."""
    mismatch = ssl.SSLCertVerificationError(1, f"certificate verify failed: Hostname mismatch, not valid for {host!r}")
    reason = Urllib3SSLError(mismatch)
    return requests.exceptions.SSLError(MaxRetryError(None, "/api/v2/syncs/1", reason))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cause", "reached_census", "hinted"),
    [
        (failed_resolution("app-eu.getcensus.com"), False, True),
        (requests.ConnectionError("Connection refused"), False, True),
        (certificate_for_another_name("app-eu.getcensus.com"), True, True),
        (requests.ReadTimeout("read timed out"), True, False),
    ],
    ids=["dns", "refused", "tls-name", "read-timeout"],
)
def test_a_transport_failure_like_a_wrong_hosts_names_the_other_host(
    cause: BaseException, reached_census: bool, hinted: bool
) -> None:
    settings = eu_settings()
    error = transport_error(settings, ep.GET_SYNC.bind(settings, sync_id=1), cause, reached_census=reached_census)
    assert (US_V2 in str(error)) is hinted, str(error)
    assert error.reached_census is reached_census


# -- which region a connection names ---------------------------------------------------------


@pytest.mark.parametrize(
    ("extras", "host", "region"),
    [
        ({"region": "eu"}, None, "eu"),
        ({}, "app-eu.getcensus.com", "eu"),
        ({"base_url": EU_V2}, None, "eu"),
        ({"base_url": "https://census-proxy.example.com", "region": "eu"}, None, "eu"),
        ({"base_url": "https://census-proxy.example.com"}, None, None),
        ({"base_url": US_V2, "region": "eu"}, None, "us"),
        ({}, None, "us"),
    ],
    ids=["region", "21-host", "eu-base-url", "proxy-for-eu", "proxy", "us-base-url-wins", "default"],
)
def test_the_region_a_connection_names(extras: dict[str, str], host: str | None, region: str | None) -> None:
    base_url = extras.get("base_url") or region_base_url(extras.get("region") or ("eu" if host else "us"), "v2")
    assert named_region(extras, host, base_url, "Airflow connection 'c'") == region


# -- through the hook, on both transports ------------------------------------------------------


def connect(monkeypatch: pytest.MonkeyPatch, base_url: str, token: str, region: str) -> None:
    extra = {"api_version": "v2", "base_url": base_url, "region": region}
    conn = {"conn_type": "census", "password": token, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_CENSUS_DEFAULT", json.dumps(conn))


def failure_of(call: str) -> CensusError:
    """The error of one call on ``census_default``, made once, through the blocking or the asyncio client."""
    hook = CensusHook(retry_policy=ONE_TRY)
    with pytest.raises(CensusError) as info:
        if call == "sync":
            hook.get_sync(987654)
        else:
            asyncio.run(_aget_sync(hook))
    return info.value


async def _aget_sync(hook: CensusHook) -> None:
    try:
        await hook.arun(ep.GET_SYNC, sync_id=987654)
    finally:
        await hook.aclose()


@pytest.fixture
def sent_urls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL the blocking client sends: proof that no request goes to a host the connection did not name."""
    urls: list[str] = []
    original = requests.Session.request

    def spy(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        urls.append(url)
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    return urls


@pytest.mark.parametrize("call", ["sync", "async"])
@pytest.mark.parametrize(
    ("token", "error_class", "region", "hinted"),
    [
        (None, CensusNotFoundError, "eu", True),
        (PAT, CensusAuthenticationError, "eu", True),
        ("secret-token:a-workspace-key", CensusAuthenticationError, "eu", False),
        (None, CensusNotFoundError, "us", False),
        (PAT, CensusAuthenticationError, "us", False),
    ],
    ids=["404-eu", "401-eu", "401-v1-key-eu", "404-us", "401-us"],
)
def test_a_404_or_401_on_v2_in_the_eu_region_names_the_us_host(
    census_emulator: CensusEmulator,
    monkeypatch: pytest.MonkeyPatch,
    sent_urls: list[str],
    call: str,
    token: str | None,
    error_class: type[CensusError],
    region: str,
    hinted: bool,
) -> None:
    base_url = census_emulator.api_base_url("v2")
    connect(monkeypatch, base_url, token or census_emulator.token_for("v2"), region)
    error = failure_of(call)
    assert type(error) is error_class
    assert (US_V2 in str(error)) is hinted, str(error)
    assert PAT not in str(error)
    assert all(url.startswith(base_url) for url in sent_urls), sent_urls
    assert len(census_emulator.requests_for("GET", "/syncs/987654")) == 1, "tried once, at the connection's host"


@pytest.mark.parametrize("call", ["sync", "async"])
@pytest.mark.parametrize(("region", "hinted"), [("eu", True), ("us", False)])
def test_nothing_listening_on_v2_in_the_eu_region_names_the_us_host(
    monkeypatch: pytest.MonkeyPatch, sent_urls: list[str], call: str, region: str, hinted: bool
) -> None:
    with socket.socket() as probe:  # a port on 127.0.0.1 with nothing listening: bound, read, released
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/api/v2"
    connect(monkeypatch, base_url, PAT, region)
    error = failure_of(call)
    assert isinstance(error, CensusTransportError)
    assert "could not connect" in str(error)
    assert (US_V2 in str(error)) is hinted, str(error)
    assert all(url.startswith(base_url) for url in sent_urls), sent_urls
