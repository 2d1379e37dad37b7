"""The Airflow UI in a real browser (headless Chromium) against the real deployment of the system
tests, with the emulator as Census: the connection form of type Census, its Test, and the
"Census sync run" link of a sync task, while it is deferred and once it has finished.

On the session's shared deployment (see conftest.py), its ``census_default`` on API V2 (the
form and the link do not depend on the version the cluster's own connection talks; the hook's
tests cover both). Screenshots and the page HTML of every step are kept in a folder the test
prints when it fails.

What Airflow 3.3.2's UI does with a connection's Test, as found here: the list's Test icon
posts the stored connection with ``port: 0`` for a connection without a port (every Census
connection: the form hides the port), the API server takes 0 for a changed port, refuses to
reuse the stored token for another endpoint and answers 400, and the UI shows only "Bad
Request". The test asserts exactly that, then tests the connection as a user can instead:
the REST API's test endpoint, on the stored connection and with a wrong token.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_census.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_provider_census.links.census import CensusSyncRunLink
from airflow_provider_census.testing import RunScript
from airflow_provider_census.version_compat import AIRFLOW_V_3_0_PLUS
from tests.system.browser import Browser
from tests.system.cluster import POST_DBT_DAG, STARTUP_TIMEOUT_SECONDS, SYNC_TASK, SYSTEM_TEST_LABEL, AirflowCluster

pytestmark = pytest.mark.system

API_VERSION = "v2"
UI_CONN_ID = "census_ui"
RUN_ID = "system_test_ui"
# The run stays working for this many polls (the trigger polls once a second) unless the test
# moves it on itself: long enough for any machine to show the deferred task in the browser.
WORKING_POLLS = 300
# Airflow 3.3.2's UI and API server, when the list's Test icon is pressed on a connection without a port.
STORED_ENDPOINT_REFUSAL = (
    "The host or port to test differs from the stored connection. Include the credentials to test in the request body."
)
STANDARD_FIELDS = ("Host", "Login", "Port", "Schema")


@pytest.fixture(params=[API_VERSION])
def census_api_version(request: pytest.FixtureRequest) -> str:
    """One API version for this module (see the module docstring), in place of both."""
    return str(request.param)


@pytest.fixture
def browser(cluster: AirflowCluster, tmp_path: Path) -> Iterator[Browser]:
    chromium = Browser(f"http://127.0.0.1:{cluster.api_port}", tmp_path / "browser")
    try:
        yield chromium
    finally:
        chromium.close()


def api(cluster: AirflowCluster, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One call to the API server's REST API, as a user's script would make it: status and JSON."""
    return cluster.rest(method, path, body)


# -- the connection form ------------------------------------------------------------------


def field_root(label: str) -> str:
    """XPath of the form field (label, input, help) whose label reads ``label``."""
    return f"//label[normalize-space(.)='{label}']/ancestor::*[@data-part='root'][1]"


def check_add_form_airflow_3(browser: Browser, emulator_url: str, token: str) -> None:
    """Open "Add Connection", choose Census, check every field and its help, and save a connection."""
    browser.open("/connections")
    browser.click("//button[contains(., 'Add Connection')]", "the Add Connection button")
    browser.find("//*[@role='dialog']//input[@name='connection_id']").send_keys(UI_CONN_ID)
    chooser = browser.find("//*[@role='dialog']//input[@role='combobox']", "the connection type chooser")
    chooser.click()
    chooser.send_keys("Census")
    browser.click("//*[@role='option'][normalize-space(.)='Census']", "Census among the connection types")
    token_field = browser.find(field_root("API token") + "//input[@name='password']", "the API token field")
    assert token_field.get_attribute("type") == "password"
    assert token_field.get_attribute("placeholder") == UI_FIELD_BEHAVIOUR["placeholders"]["password"]
    token_field.send_keys(token)  # now: the Standard Fields section closes when Extra Fields opens
    browser.click("//button[normalize-space(.)='Extra Fields']", "the Extra Fields section")
    browser.find(field_root(CONN_FIELDS["base_url"]["label"]), "the extra fields")
    browser.snapshot("add-connection-census")
    for name, spec in CONN_FIELDS.items():
        root = field_root(spec["label"])
        browser.find(root, f"the {name} field, labelled {spec['label']!r}")
        help_text = browser.find(f"{root}//*[@data-part='helper-text']", f"the help of {spec['label']!r}")
        assert help_text.text == spec["description"], (name, help_text.text)
    # Host, login, port and schema are hidden: Census has none of them.
    shown = [label.text.strip() for label in browser.find_all("//*[@role='dialog']//label") if label.is_displayed()]
    assert not set(STANDARD_FIELDS) & set(shown), shown
    # API version and region are choices, with their defaults chosen.
    for name in ("api_version", "region"):
        browser.find(field_root(CONN_FIELDS[name]["label"]) + "//input[@role='combobox']", f"the {name} choice")
        value = browser.find_all(f"//input[@name='element_{name}']")[0].get_attribute("value")
        assert value == CONN_FIELDS[name]["schema"]["default"], (name, value)
    browser.click(field_root(CONN_FIELDS["region"]["label"]) + "//input[@role='combobox']", "the region choice")
    options = browser.wait(
        "the region choices", lambda: [o.text for o in browser.find_all("//*[@role='option']") if o.is_displayed()]
    )
    assert options == CONN_FIELDS["region"]["schema"]["enum"], options
    browser.click("//*[@role='option'][normalize-space(.)='us']", "the region us")
    # The base URL's example is in its help: Airflow 3.3 drops placeholders of extra fields.
    assert "e.g. https://" in CONN_FIELDS["base_url"]["description"]

    browser.find("//input[@id='element_base_url']").send_keys(emulator_url)
    browser.click("//*[@role='dialog']//button[contains(., 'Save')]", "Save")
    browser.find(f"//tr[contains(., '{UI_CONN_ID}')]", f"{UI_CONN_ID} in the connection list")
    browser.snapshot("connection-saved")


def check_test_button_airflow_3(browser: Browser) -> dict[str, Any]:
    """Press the list's Test icon on the saved connection; what the UI sent, got back and showed."""
    button = browser.find(f"//tr[contains(., '{UI_CONN_ID}')]//button[@aria-label='Test Connection']")
    assert button.is_enabled(), "Test is disabled: [core] test_connection must be Enabled for this test"
    button.click()
    toast = browser.find(
        "//*[contains(., 'Test Connection Failed') or contains(., 'Connected to Census')]"
        "[@role='status' or @role='alert']",
        "the Test outcome",
    )
    browser.snapshot("test-connection-outcome")
    (sent,) = browser.wait("the Test request to end", lambda: browser.responses("/api/v2/connections/test"))
    return {"toast": toast.text, **sent}


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 3's UI; Airflow 2's form has its own test below")
def test_airflow_3_ui_connection_form_test_and_sync_run_link(cluster: AirflowCluster, browser: Browser) -> None:
    emulator = cluster.emulator
    sync_id = emulator.add_sync(
        RunScript(outcome="completed", queued_polls=0, working_polls=WORKING_POLLS), label=SYSTEM_TEST_LABEL
    )
    assert cluster.env["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
    cluster.trigger_dag(POST_DBT_DAG, RUN_ID)  # through the REST API

    with browser.kept_on_failure():
        # While the DAG run starts: the form, then Test.
        check_add_form_airflow_3(browser, emulator.api_base_url(API_VERSION), emulator.token_for(API_VERSION))
        status, stored = api(cluster, "GET", f"/connections/{UI_CONN_ID}")
        assert status == 200 and stored["conn_type"] == "census", stored
        assert json.loads(stored["extra"])["api_version"] == API_VERSION, stored
        assert json.loads(stored["extra"])["base_url"] == emulator.api_base_url(API_VERSION), stored
        assert stored["port"] is None, stored

        outcome = check_test_button_airflow_3(browser)
        sent = json.loads(outcome["body"])
        # Airflow 3.3.2's UI: port 0 for the missing port, so the API server refuses, and the toast says only that.
        explain = f"the UI's Test did something else than Airflow 3.3.2 was found to do: {outcome}"
        assert (sent["connection_id"], sent["port"], sent["password"]) == (UI_CONN_ID, 0, "***"), explain
        assert outcome["status"] == 400, explain
        assert json.loads(outcome["response"]) == {"detail": STORED_ENDPOINT_REFUSAL}, explain
        assert outcome["toast"].splitlines() == ["Test Connection Failed", "Bad Request"], explain

        # What a user can do instead: the REST API's test endpoint, on the stored connection
        # (its token, endpoint and API version, as saved by the form)...
        status, result = api(cluster, "POST", "/connections/test", {"connection_id": UI_CONN_ID, "conn_type": "census"})
        assert status == 200 and result["status"] is True, result
        assert result["message"].startswith(f"Connected to Census API v2 at {emulator.api_base_url(API_VERSION)}. "), (
            result
        )
        # ...and with a wrong token, which must fail saying so.
        body = {"connection_id": UI_CONN_ID, "conn_type": "census", "password": "not-a-census-token"}
        status, result = api(cluster, "POST", "/connections/test", body)
        assert status == 200 and result["status"] is False, result
        for needed in ("401", "personal access token", "password"):
            assert needed in result["message"], result

        # The sync task, deferred while its run is working in Census: its link is there already.
        def deferred_and_working() -> dict[str, Any] | None:
            if cluster.task_states(POST_DBT_DAG, RUN_ID).get((SYNC_TASK, 0)) != "deferred":
                return None
            runs = emulator.runs_of(sync_id)
            return runs[0] if runs and runs[0]["status"] == "working" else None

        run = cluster.wait("the sync task to be deferred while its run works", deferred_and_working)
        census_app = emulator.api_base_url(API_VERSION).removesuffix(f"/api/{API_VERSION}")
        expected_link = f"{census_app}/syncs/{sync_id}/history?sync_run_id={run['id']}"
        task_page = f"/dags/{POST_DBT_DAG}/runs/{RUN_ID}/tasks/{SYNC_TASK}/mapped/0"
        assert task_link(browser, task_page, "deferred") == expected_link
        assert cluster.task_states(POST_DBT_DAG, RUN_ID)[(SYNC_TASK, 0)] == "deferred", cluster.explain()

        # Census finishes the run (the test polls it on, as the trigger does); the finished task keeps the link.
        while emulator.run(int(run["id"]))["status"] == "working":
            emulator.workspace.poll_run(int(run["id"]))
        final = cluster.wait_for_dag_run_end(POST_DBT_DAG, RUN_ID, timeout=STARTUP_TIMEOUT_SECONDS)
        assert final == "success", cluster.explain()
        assert task_link(browser, task_page, "success") == expected_link
        assert len(emulator.requests_for("POST", f"/syncs/{sync_id}/trigger")) == 1


def task_link(browser: Browser, task_page: str, state: str) -> str:
    """Open the task instance's page as a user would, go to Details, and read the Census link there."""
    browser.open(task_page)
    browser.find(f"//*[normalize-space(.)='{state.capitalize()}']", f"the task shown as {state}")
    browser.click("//button[normalize-space(.)='Details'] | //a[normalize-space(.)='Details']", "the Details tab")
    link = browser.find(f"//a[normalize-space(.)='{CensusSyncRunLink.name}']", f"the {CensusSyncRunLink.name!r} link")
    browser.snapshot(f"task-{state}-link")
    assert link.get_attribute("target") == "_blank"
    return str(link.get_attribute("href"))


# -- Airflow 2.11: the same form, and its Test button, which works there ------------------


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="Airflow 2's web UI; Airflow 3's has its own test above")
def test_airflow_2_ui_connection_form_and_its_test_button(cluster: AirflowCluster, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    emulator = cluster.emulator
    assert cluster.env["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
    port = cluster.web_port
    assert port is not None, "the shared deployment starts Airflow 2's web server"

    def webserver_is_up() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    cluster.wait("the web server to answer", webserver_is_up)
    browser = Browser(f"http://127.0.0.1:{port}", tmp_path / "browser")
    try:
        with browser.kept_on_failure():
            browser.open("/connection/add")
            browser.click("//span[@aria-labelledby='select2-conn_type-container']", "the connection type chooser")
            search = browser.find("//input[contains(@class, 'select2-search__field')]", "the type search box")
            search.send_keys("Census")
            search.send_keys(Keys.ENTER)
            conn_type = browser.find_all("//select[@id='conn_type']")[0]
            browser.wait("Census to be chosen", lambda: conn_type.get_attribute("value") == "census")
            token = browser.find("//label[@for='password'][normalize-space(.)='API token']/../..//input", "API token")
            assert token.get_attribute("type") == "password"
            assert token.get_attribute("placeholder") == UI_FIELD_BEHAVIOUR["placeholders"]["password"]
            for name, spec in CONN_FIELDS.items():
                field = f"extra__census__{name}"
                browser.find(f"//label[@for='{field}'][normalize-space(.)='{spec['label']}']", f"the {name} label")
                help_text = browser.find(f"//input[@id='{field}']/following-sibling::span[@class='help-block']")
                assert help_text.text == spec["description"], (name, help_text.text)
                shown = browser.find(f"//input[@id='{field}']")
                if "boolean" in spec["schema"]["type"]:
                    assert shown.get_attribute("type") == "checkbox", name
                else:
                    assert shown.get_attribute("placeholder") == UI_FIELD_BEHAVIOUR["placeholders"][name], name
            for hidden in ("host", "login", "port", "schema"):
                shown_labels = [
                    label for label in browser.find_all(f"//label[@for='{hidden}']") if label.is_displayed()
                ]
                assert not shown_labels, f"the {hidden} field is shown; Census has none"
            browser.snapshot("add-connection-census")

            browser.find("//input[@id='conn_id']").send_keys(UI_CONN_ID)
            token.send_keys(emulator.token_for(API_VERSION))
            browser.find("//input[@id='extra__census__base_url']").send_keys(emulator.api_base_url(API_VERSION))
            browser.click("//button[@id='test-connection']", "the Test button")
            connected = f"Connected to Census API v2 at {emulator.api_base_url(API_VERSION)}"
            browser.find(
                f"//*[contains(@class, 'alert')][starts-with(normalize-space(.), '{connected}. ')]", "Test succeeding"
            )
            browser.snapshot("test-succeeded")

            token.clear()
            token.send_keys("not-a-census-token")
            browser.click("//button[@id='test-connection']", "the Test button")
            refused = browser.find("//*[contains(@class, 'alert')][contains(., 'did not accept the API token')]")
            browser.snapshot("test-failed")
            for needed in ("401", "personal access token", "password"):
                assert needed in refused.text, refused.text
    finally:
        browser.close()
