"""Headless Chromium for system tests of Airflow's UI, driven by Selenium.

Debian's ``chromium`` and ``chromium-driver`` are used (installed with apt-get when missing and
we are root, as on CI, the way postgres.py installs PostgreSQL): nothing is downloaded by
Selenium or by the browser. Every step can leave a screenshot and the page's HTML in one
folder, which the test prints when it fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tests.system.postgres import INSTALL_LOCK

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PACKAGES = ("chromium", "chromium-driver")
WAIT_SECONDS = 60.0
# Root needs --no-sandbox; the rest keeps a headless browser from doing anything but the page.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--window-size=1400,1000",
)


def browser_paths() -> tuple[Path, Path]:
    """Chromium and its chromedriver, installing Debian's packages first if needed."""
    if not _installed() and os.geteuid() == 0:
        _install()
    if not _installed():
        raise RuntimeError(
            f"{CHROMIUM} or {CHROMEDRIVER} not found; install Debian's `chromium` and `chromium-driver` "
            "packages (the tests do it themselves when run as root)"
        )
    return CHROMIUM, CHROMEDRIVER


def _installed() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def _install() -> None:
    """apt-get install, one test process at a time (the lock postgres.py takes for the same reason)."""
    with open(INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed():
            return
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=300", *PACKAGES],
        ):
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"`{' '.join(command)}` failed ({done.returncode}):\n{done.stderr[-3000:]}")


class Browser:
    """One headless Chromium on ``base_url``; screenshots and HTML go to ``artifacts``."""

    def __init__(self, base_url: str, artifacts: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        chromium, chromedriver = browser_paths()
        self.base_url = base_url.rstrip("/")
        self.artifacts = artifacts
        artifacts.mkdir(parents=True, exist_ok=True)
        self._profile = tempfile.mkdtemp(prefix="census-chromium-")
        self._shots = 0
        options = webdriver.ChromeOptions()
        options.binary_location = str(chromium)
        for arg in (*CHROMIUM_ARGS, f"--user-data-dir={self._profile}"):
            options.add_argument(arg)
        # The performance log carries the DevTools network events: what the UI sent and got back.
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        service = Service(str(chromedriver), log_output=str(artifacts / "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self._pending: dict[str, dict[str, Any]] = {}
        self._responses: list[dict[str, Any]] = []

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.driver.quit()
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- pages and elements ---------------------------------------------------------------

    def open(self, path: str) -> None:
        self.driver.get(f"{self.base_url}{path}")

    def wait(self, what: str, check: Callable[[], T | None], timeout: float = WAIT_SECONDS) -> T:
        """Call ``check`` until it returns something other than None or False (elements may go
        stale or be missing while the page renders); fail naming ``what`` and the page's text."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(NoSuchElementException, StaleElementReferenceException):
                result = check()
                if result is not None and result is not False:
                    return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting in the browser for {what}\n"
                    f"at {self.driver.current_url}, the page shows:\n{self.text()[-3000:]}"
                )
            time.sleep(0.2)

    def find(self, xpath: str, what: str | None = None, timeout: float = WAIT_SECONDS) -> Any:
        """The first element at ``xpath`` that is displayed."""
        from selenium.webdriver.common.by import By

        def displayed() -> Any:
            shown = [element for element in self.driver.find_elements(By.XPATH, xpath) if element.is_displayed()]
            return shown[0] if shown else None

        return self.wait(what or xpath, displayed, timeout)

    def find_all(self, xpath: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.XPATH, xpath))

    def click(self, xpath: str, what: str | None = None) -> None:
        element = self.find(xpath, what)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        try:
            return str(self.driver.find_element(By.TAG_NAME, "body").text)
        except Exception as exc:  # the explanation must not hide the failure it explains
            return f"(page text unreadable: {exc})"

    # -- what the page sent and got back ---------------------------------------------------

    def responses(self, url_part: str) -> list[dict[str, Any]]:
        """Every finished request to a URL containing ``url_part`` since the browser started:
        method, request body, status and response body, read from the DevTools network events."""
        requests = self._pending
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent" and url_part in params["request"]["url"]:
                request = params["request"]
                requests[params["requestId"]] = {
                    "method": request["method"],
                    "url": request["url"],
                    "body": request.get("postData"),
                }
            elif message["method"] == "Network.loadingFinished" and params["requestId"] in requests:
                seen = requests.pop(params["requestId"])
                with contextlib.suppress(Exception):
                    body = self.driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": params["requestId"]})
                    seen["response"] = body.get("body")
                self._responses.append(seen)
            elif message["method"] == "Network.responseReceived" and params["requestId"] in requests:
                requests[params["requestId"]]["status"] = params["response"]["status"]
        return [seen for seen in self._responses if url_part in seen["url"]]

    # -- evidence -----------------------------------------------------------------------

    def snapshot(self, name: str) -> None:
        """A numbered screenshot and the page's HTML under :attr:`artifacts`."""
        self._shots += 1
        stem = self.artifacts / f"{self._shots:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}"
        with contextlib.suppress(Exception):
            self.driver.save_screenshot(str(stem.with_suffix(".png")))
        with contextlib.suppress(Exception):
            stem.with_suffix(".html").write_text(self.driver.page_source)

    @contextlib.contextmanager
    def kept_on_failure(self) -> Iterator[Browser]:
        """On any failure inside: a last screenshot and HTML, and the folder printed (pytest shows it)."""
        try:
            yield self
        except BaseException:
            self.snapshot("at-failure")
            print(f"browser screenshots and page HTML: {self.artifacts}")
            raise
