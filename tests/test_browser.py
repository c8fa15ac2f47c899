"""What a person sees, in a real browser (Debian's Chromium driven by Playwright).

The pages are served by the live test server; each test saves a screenshot to
docs/screenshots/ for the README.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from crm.models import User
from leads.models import Activity, Lead
from leads.services import activities_record
from tests.conftest import IN_CI

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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


@pytest.fixture
def page(browser, live_server):
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


def test_rep_opens_the_hottest_lead_and_reads_why(page, demo_world):
    # Given the demo world and a rep who owns or may take the hottest lead
    lead = Lead.objects.visible_to(User.objects.get(username="rep1")).hottest().first()

    # When the rep logs in and opens it from My day
    log_in(page, "rep1")
    page.get_by_role("heading", name="My day").wait_for()
    page.screenshot(path=SCREENSHOTS / "my-day.png", full_page=True)
    page.get_by_role("link", name=str(lead)).first.click()

    # Then the lead page says why the lead has its score, rule by rule
    heading = page.get_by_role("heading", name=f"Why {lead.score} in")
    heading.wait_for()
    assert page.get_by_text("Adds points").is_visible()
    page.screenshot(path=SCREENSHOTS / "lead-why.png", full_page=True)


def test_marketer_reads_the_rules_as_sentences_in_the_admin(page, demo_world):
    log_in(page, "marketer")
    page.goto("/admin/scoring/scoringmodel/")
    page.get_by_role("link", name="Standard B2B").click()

    sentence = page.locator(".readonly", has_text="+50 when a quote request")
    sentence.first.scroll_into_view_if_needed()
    assert sentence.first.is_visible()
    page.screenshot(path=SCREENSHOTS / "admin-scoring-model.png", full_page=False)


def test_a_lead_named_like_a_script_renders_as_text(page, demo_world):
    # Given a lead whose name is a script tag, owned by rep1
    lead = Lead.objects.create(
        email="xss@example.com",
        first_name="<script>alert(1)</script>",
        owner=User.objects.get(username="rep1"),
    )
    visit = Activity(type="page_view", url="/pricing", occurred_at=timezone.now())
    activities_record(lead=lead, activities=[visit])
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    # When the rep opens it
    log_in(page, "rep1")
    page.goto(f"/leads/{lead.pk}/")

    # Then the name shows as text and no script ran
    assert page.get_by_role("heading", name="<script>alert(1)</script>").is_visible()
    assert dialogs == []
