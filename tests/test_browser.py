"""The shared browser fixture itself: the browser tests of the web pages rely on it to see what a user's
browser sees, so it must run scripts and report console errors (or those tests could not fail on one)."""

from __future__ import annotations

from browser_helpers import console_errors


def test_chromium_runs_scripts_and_reports_console_errors(chromium):
    chromium.get(
        "data:text/html,<html><body><p id=x>before</p>"
        "<script>document.getElementById('x').textContent='after';console.error('boom')</script></body></html>"
    )
    assert chromium.find_element("id", "x").text == "after"
    errors = console_errors(chromium)
    assert any("boom" in e for e in errors), errors
    assert console_errors(chromium) == []  # read once: the next page's check starts clean
