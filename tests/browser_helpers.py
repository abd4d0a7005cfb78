"""A real headless Chromium for the browser tests, driven by Selenium through Debian's chromedriver.

CI installs both (``.ci/run``: ``apt-get install chromium chromium-driver``) and sets
``HHRT_REQUIRE_BROWSER=1``, so there a missing browser fails the run instead of skipping it quietly; on a
developer machine without them the browser tests skip with the reason.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

REQUIRE_ENV = "HHRT_REQUIRE_BROWSER"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _missing_reason() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium (pip install -e '.[dev]')"
    if not any(shutil.which(name) for name in BROWSERS):
        return "needs a Chromium browser (Debian: apt-get install chromium chromium-driver)"
    if not shutil.which("chromedriver"):
        return "needs chromedriver (Debian: apt-get install chromium-driver)"
    return None


def start_chromium() -> Any:
    """A headless Chromium (1280x800) that records the page's console, or a skip (a failure in CI)."""
    reason = _missing_reason()
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but the browser tests cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(n) for n in BROWSERS if shutil.which(n))  # type: ignore[assignment]
    # --no-sandbox: CI runs as root, where Chromium refuses to start with its sandbox on.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,800", "--no-first-run", "--no-default-browser-check"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(20)
    return driver


def console_errors(driver: Any) -> list[str]:
    """The page's console messages at level SEVERE since the last call (Chromium clears the log on read):
    uncaught exceptions, console.error and failed loads."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
