"""From an Airflow connection to client settings: regions, base URLs, the token, the form."""

from __future__ import annotations

import json
from datetime import date
from importlib.metadata import entry_points
from typing import Any

import pytest

from airflow_provider_census.api.errors import CensusConfigurationError
from airflow_provider_census.get_provider_info import get_provider_info
from airflow_provider_census.hooks.census import CensusHook
from airflow_provider_census.testing import CensusEmulator

TOKEN = "secret-token:canary-77d1"
HTTP_WARNING_LOGGER = "airflow_provider_census.hooks.connection"


def use_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = "census_default", **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "census", **fields}))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "https://app.getcensus.com/api/v1"),
        ({"region": "eu"}, "https://app-eu.getcensus.com/api/v1"),
        ({"region": " EU "}, "https://app-eu.getcensus.com/api/v1"),
        ({"extra__census__region": "eu"}, "https://app-eu.getcensus.com/api/v1"),
        ({"base_url": "https://census-proxy.example.com/api/v1/"}, "https://census-proxy.example.com/api/v1"),
        ({"base_url": "https://census-proxy.example.com"}, "https://census-proxy.example.com/api/v1"),
        ({"base_url": "http://127.0.0.1:8765/api/v1"}, "http://127.0.0.1:8765/api/v1"),
        ({"base_url": "http://localhost:8765/api/v1"}, "http://localhost:8765/api/v1"),
        ({"base_url": "http://[::1]:8765/api/v1"}, "http://[::1]:8765/api/v1"),
        ({"region": "eu", "base_url": "https://p.example.com/api/v1"}, "https://p.example.com/api/v1"),
    ],
)
def test_base_url_from_region_or_url(monkeypatch: pytest.MonkeyPatch, extra: dict[str, str], expected: str) -> None:
    use_connection(monkeypatch, password=TOKEN, extra=extra)
    assert CensusHook().settings.base_url == expected


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        ({"extra": {}}, ["'census_default' has no API token", "password field"]),
        ({"password": "   ", "extra": {}}, ["has no API token"]),
        ({"password": TOKEN, "extra": {"region": "ap"}}, ["region 'ap'", "eu and us", "base_url"]),
        (
            {"password": TOKEN, "extra": {"base_url": "http://census.example.com/api/v1"}},
            ["unencrypted", "https", "set the connection's extra allow_insecure_http to true"],
        ),
        ({"password": TOKEN, "extra": {"base_url": "http://10.0.0.5/api/v1"}}, ["unencrypted"]),
        ({"password": TOKEN, "host": "http://proxy.corp:8080"}, ["plain http base_url to 'proxy.corp'"]),
        (
            {"password": TOKEN, "host": "http://proxy.corp:8080", "extra": {"allow_insecure_http": "false"}},
            ["unencrypted", "allow_insecure_http"],
        ),
        (
            {"password": TOKEN, "host": "http://proxy.corp:8080", "extra": {"allow_insecure_http": "maybe"}},
            ["allow_insecure_http 'maybe'; use true or false"],
        ),
        ({"password": TOKEN, "extra": {"base_url": "ftp://x/api"}}, ["not an http(s) URL"]),
        ({"password": TOKEN, "extra": {"base_url": "https://bearer:abc@x.example.com/api/v1"}}, ["credentials"]),
    ],
)
def test_bad_connections_fail_with_what_to_fix(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], fragments: list[str]
) -> None:
    use_connection(monkeypatch, **fields)
    with pytest.raises(CensusConfigurationError) as info:
        _ = CensusHook().settings
    for fragment in fragments:
        assert fragment in str(info.value)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # Connections made for provider 2.1: the host field, with or without a scheme; no api_version.
        ({"host": "app.getcensus.com"}, ("https://app.getcensus.com/api/v1", "v1")),
        ({"host": "app-eu.getcensus.com"}, ("https://app-eu.getcensus.com/api/v1", "v1")),
        ({"host": "https://app-eu.getcensus.com"}, ("https://app-eu.getcensus.com/api/v1", "v1")),
        ({"host": "https://app-eu.getcensus.com/"}, ("https://app-eu.getcensus.com/api/v1", "v1")),
        ({"host": "census-proxy.example.com"}, ("https://census-proxy.example.com/api/v1", "v1")),
        # Connections that choose the version.
        ({"extra": {"api_version": "v2"}}, ("https://app.getcensus.com/api/v2", "v2")),
        ({"extra": {"api_version": "V2", "region": "eu"}}, ("https://app-eu.getcensus.com/api/v2", "v2")),
        ({"extra": {"api_version": "2"}}, ("https://app.getcensus.com/api/v2", "v2")),
        (
            {"host": "app-eu.getcensus.com", "extra": {"api_version": "v2"}},
            ("https://app-eu.getcensus.com/api/v2", "v2"),
        ),
        ({"extra": {"api_version": "v1"}}, ("https://app.getcensus.com/api/v1", "v1")),
        ({"extra": {"base_url": "http://127.0.0.1:9/api/v2"}}, ("http://127.0.0.1:9/api/v2", "v2")),
        ({"extra": {"base_url": "https://p.example.com", "api_version": "v2"}}, ("https://p.example.com/api/v2", "v2")),
    ],
)
def test_version_and_region_from_any_connection_shape(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], expected: tuple[str, str]
) -> None:
    use_connection(monkeypatch, password=TOKEN, **fields)
    settings = CensusHook().settings
    assert (settings.base_url, settings.api_version) == expected


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        ({"extra": {"api_version": "v3"}}, ["api_version 'v3'", "v2", "v1"]),
        ({"extra": {"api_version": "v2", "base_url": "https://p.example.com/api/v1"}}, ["/api/v1", "api_version v2"]),
        ({"host": "app-eu.getcensus.com", "extra": {"region": "us"}}, ["region 'us'", "'eu'", "clear one"]),
        ({"extra": {"api_version": "v2", "group_id": 12}}, ["group_id must be a Fivetran group id"]),
    ],
)
def test_contradicting_connections_fail_with_what_to_fix(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], fragments: list[str]
) -> None:
    use_connection(monkeypatch, password=TOKEN, **fields)
    with pytest.raises((CensusConfigurationError, ValueError)) as info:
        _ = CensusHook().settings
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_token_names_the_kind_the_version_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(monkeypatch, extra={"api_version": "v2"})
    with pytest.raises(CensusConfigurationError, match="Activations personal access token"):
        _ = CensusHook().settings


def test_group_id_comes_from_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(monkeypatch, password=TOKEN, extra={"api_version": "v2", "group_id": " projected_sickle "})
    assert CensusHook().settings.group_id == "projected_sickle"


class RecordingLog:
    """Stands in for the hook's logger, which Airflow 3 routes past pytest's log capture."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str, *args: Any) -> None:
        self.warnings.append(message % args)


@pytest.mark.parametrize(
    "allowed",
    [{"allow_insecure_http": True}, {"allow_insecure_http": " True "}, {"extra__census__allow_insecure_http": "true"}],
    ids=["json", "text", "airflow-2-form"],
)
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"host": "http://proxy.corp:8080"}, "http://proxy.corp:8080/api/v1"),
        ({"extra": {"api_version": "v2", "base_url": "http://10.0.0.5/api/v2"}}, "http://10.0.0.5/api/v2"),
    ],
    ids=["21-host", "base-url"],
)
def test_plain_http_off_this_machine_is_allowed_when_asked_and_warned_about(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    allowed: dict[str, Any],
    fields: dict[str, Any],
    expected: str,
) -> None:
    """Provider 2.1 sent its token to any host: a 2.1 connection through an http proxy works with one extra."""
    use_connection(monkeypatch, password=TOKEN, **{**fields, "extra": {**fields.get("extra", {}), **allowed}})
    with caplog.at_level("WARNING", logger=HTTP_WARNING_LOGGER):
        assert CensusHook().settings.base_url == expected
    (warning,) = insecure_http_warnings(caplog)
    assert "'census_default' sends its Census API token in clear text over plain http" in warning
    assert "allow_insecure_http" in warning
    assert TOKEN not in warning


def test_https_and_loopback_need_no_flag_and_log_no_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for base_url in ("https://census-proxy.example.com/api/v1", "http://127.0.0.1:9/api/v1"):
        use_connection(monkeypatch, password=TOKEN, extra={"base_url": base_url, "allow_insecure_http": True})
        with caplog.at_level("WARNING", logger=HTTP_WARNING_LOGGER):
            assert CensusHook().settings.base_url == base_url
    assert insecure_http_warnings(caplog) == []


def insecure_http_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == HTTP_WARNING_LOGGER]


def recorded_warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    log = RecordingLog()
    monkeypatch.setattr(CensusHook, "log", property(lambda _hook: log))
    return log.warnings


def test_a_v1_connection_logs_one_deprecation_warning_with_the_date_and_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_connection(monkeypatch, password=TOKEN, host="app.getcensus.com")
    warnings = recorded_warnings(monkeypatch)
    hook = CensusHook()
    _ = hook.settings
    hook._warn_if_v1(hook.settings)
    assert len(warnings) == 1, warnings
    for fragment in ("2027-01-15", "personal access token", "api_version to v2", "census_default"):
        assert fragment in warnings[0]


def test_after_the_retirement_date_the_warning_says_v1_was_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_census.api import settings as api_settings

    monkeypatch.setattr(api_settings, "today", lambda: date(2027, 1, 15))
    use_connection(monkeypatch, password=TOKEN)
    warnings = recorded_warnings(monkeypatch)
    _ = CensusHook().settings
    assert warnings and "was switched off" in warnings[0]


def test_a_v2_connection_logs_no_deprecation_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(monkeypatch, password=TOKEN, extra={"api_version": "v2"})
    warnings = recorded_warnings(monkeypatch)
    _ = CensusHook().settings
    assert warnings == []


def test_settings_name_the_connection_for_auth_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    use_connection(monkeypatch, "census_eu", password=TOKEN, extra={"region": "eu"})
    settings = CensusHook("census_eu").settings
    assert settings.token == TOKEN
    assert "census_eu" in settings.token_origin


def test_provider_is_registered_through_its_entry_point() -> None:
    (entry,) = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_census")
    ]
    info = entry.load()()
    assert info["package-name"] == "airflow-provider-census"
    for key in ("name", "description", "versions", "integrations", "hooks", "connection-types"):
        assert info[key], key


def test_connection_form_agrees_with_provider_info() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == CensusHook.conn_type == "census"
    assert conn_type["hook-class-name"] == f"{CensusHook.__module__}.{CensusHook.__name__}"
    assert conn_type["hook-name"] == CensusHook.hook_name
    behaviour = conn_type["ui-field-behaviour"]
    assert CensusHook.get_ui_field_behaviour() == {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }
    assert set(conn_type["conn-fields"]) == {
        "api_version",
        "region",
        "group_id",
        "base_url",
        "allow_insecure_http",
        "max_requests_per_second",
        "request_budget",
    }
    assert conn_type["conn-fields"]["request_budget"]["schema"]["enum"] == ["learn", "off"]
    assert "unencrypted" in conn_type["conn-fields"]["allow_insecure_http"]["description"]
    assert conn_type["conn-fields"]["api_version"]["schema"]["enum"] == ["v2", "v1"]
    for needed in ("personal access token", "workspace API key", "2027-01-15"):
        assert needed in conn_type["conn-fields"]["api_version"]["description"]


def test_airflow_discovers_the_connection_type() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-census" in manager.providers
    hook_info = manager.hooks["census"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_provider_census.hooks.census.CensusHook"
    assert hook_info.connection_id_attribute_name == "census_conn_id"
    assert manager.field_behaviours["census"]["relabeling"] == {"password": "API token"}


def test_connection_form_shows_the_declared_fields_on_this_airflow() -> None:
    """Airflow 3.2+ builds the form from ``conn-fields``; Airflow 2 from the hook's widgets."""
    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets
    declared = get_provider_info()["connection-types"][0]["conn-fields"]
    for name, spec in declared.items():
        field = widgets[f"extra__census__{name}"].field
        label = field["schema"]["title"] if isinstance(field, dict) else field.args[0]
        description = field["description"] if isinstance(field, dict) else field.kwargs["description"]
        assert (label, description) == (spec["label"], spec["description"])


def test_a_task_on_v1_warns_once_however_many_hooks_its_wait_uses(
    census_conn: CensusEmulator, census_api_version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's hook, its first look and the trigger loop it runs in the worker: one warning in all."""
    from airflow_provider_census.operators.census import CensusTriggerSyncOperator
    from airflow_provider_census.testing import RunScript
    from tests.task_context import context_for

    warnings = recorded_warnings(monkeypatch)
    sync_id = census_conn.add_sync(RunScript(outcome="completed"))
    task = CensusTriggerSyncOperator(task_id="sync", sync_id=sync_id, poll_interval=0.02, deferrable=False)
    task.execute(context_for())
    expected = 1 if census_api_version == "v1" else 0
    assert len([w for w in warnings if "API v1" in w]) == expected, warnings
