"""A real browser for the web app's tests: Debian's Chromium driven by Playwright, never a
browser Playwright downloads. A machine without Chromium skips those tests, unless CI says it
must not (AGENTNET_REQUIRE_BROWSER=1, set by `.ci/run`, which installs the package).

`watch(page)` records what a person would never see but a broken page shows: console errors,
uncaught exceptions, and Content-Security-Policy violations (the page's own `securitypolicyviolation`
events, reported to the test through a binding, so none is lost when the page navigates)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "PageProblems", "chromium", "require_chromium", "watch"]

# Debian's package puts its launcher here; elsewhere, whatever `chromium` is on PATH.
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")

_REPORT_BINDING = "__agentnetReportCspViolation"
# Runs in every document before the page's own scripts (injected by the browser, so the page's
# CSP does not stop it); a violation is reported at once, not read back later.
_CSP_LISTENER = f"""
document.addEventListener("securitypolicyviolation", (e) => {{
  window.{_REPORT_BINDING}({{directive: e.effectiveDirective || e.violatedDirective, blocked: e.blockedURI,
    source: e.sourceFile, line: e.lineNumber, sample: e.sample, document: e.documentURI}});
}});
"""


def require_chromium() -> str:
    """The path of Chromium; skip without it, or fail when AGENTNET_REQUIRE_BROWSER=1."""
    if CHROMIUM is None or not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("AGENTNET_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (AGENTNET_REQUIRE_BROWSER=1) but /usr/bin/chromium is missing: "
                        "install Debian's package with `apt-get install chromium`")
        pytest.skip("Chromium is not installed (Debian: `apt-get install chromium`)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail("playwright is not installed: `pip install -e '.[test]'`")
    return CHROMIUM


@pytest.fixture
async def chromium() -> AsyncIterator[object]:
    """A headless Chromium (a `playwright.async_api.Browser`), closed after the test.

    Put it after the node fixtures in a test's parameters: fixtures end in reverse order, so the
    browser (and its open event streams) is gone before the nodes stop."""
    executable = require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium refuses to start its sandbox.
        browser = await playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class PageProblems:
    """What went wrong on a page while it was watched; empty when nothing did."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[dict] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.console_errors or self.page_errors or self.csp_violations)

    def __str__(self) -> str:
        return (f"console errors: {self.console_errors}\nuncaught exceptions: {self.page_errors}\n"
                f"CSP violations: {self.csp_violations}")


async def watch(page, problems: PageProblems | None = None) -> PageProblems:
    """Start recording `page`'s console errors, uncaught exceptions and CSP violations; call it
    before the page's first `goto`. Pass `problems` to gather several pages into one record."""
    problems = problems if problems is not None else PageProblems()

    def on_console(message) -> None:
        if message.type == "error":
            location = message.location or {}
            problems.console_errors.append(f"{message.text} ({location.get('url', '?')}:{location.get('lineNumber')})")

    def on_violation(violation: dict) -> None:
        problems.csp_violations.append(violation)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.page_errors.append(str(error)))
    await page.expose_function(_REPORT_BINDING, on_violation)
    await page.add_init_script(script=_CSP_LISTENER)
    return problems
