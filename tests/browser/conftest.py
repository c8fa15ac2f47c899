"""Browser fixtures: Debian's Chromium driven by Playwright against the live test server.

Every browser test runs twice, with DEBUG off (as in production) and on (as a newcomer
first meets the app): the ``page`` fixture is parametrized over both. Tests save
screenshots to docs/screenshots/ for the README. Every test module here
sets ``pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from leads.models import Lead
from tests.conftest import IN_CI

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not shutil.which(CHROMIUM):
        if IN_CI:
            pytest.fail(f"Chromium is missing at {CHROMIUM} (CI=true)")
        pytest.skip(f"needs Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests
    # make meanwhile are still synchronous. Only for this module: nothing else inherits it.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def page(request, browser, live_server, settings):
    # The live server runs in a thread of this process: it serves with this setting.
    settings.DEBUG = request.param
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = {"width": 1280, "height": 900}
    context = browser.new_context(viewport=viewport, base_url=live_server.url)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def demo_world():
    call_command("seed_demo", leads=120, seed=7, stdout=open(os.devnull, "w"))  # noqa: SIM115
    return Lead.objects.hottest().first()


def log_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill("hotlist")
    page.get_by_role("button", name="Log in").click()
