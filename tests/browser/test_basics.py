"""What a person sees, in a real browser (Debian's Chromium driven by Playwright).

The pages are served by the live test server; each test saves a screenshot to
docs/screenshots/ for the README.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from crm.models import User
from leads.activities import activities_record
from leads.models import Activity, Lead
from tests.browser.conftest import SCREENSHOTS, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_rep_opens_the_hottest_lead_and_reads_why(page, demo_world):
    # Given the demo world and the hottest open lead rep1 owns
    lead = Lead.objects.filter(owner__username="rep1").open().hottest().first()

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

    sentence = page.locator(".field-sentence", has_text="+50 when a quote request")
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
