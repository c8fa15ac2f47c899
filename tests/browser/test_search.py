"""The header's search in a real browser (Debian's Chromium): typing shows findings under
the box without a reload, a finding opens its page, Enter opens the whole findings page.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from crm.models import Role, Team
from tests.browser.conftest import SCREENSHOTS, log_in
from tests.conftest import make_user
from tests.factories import CompanyFactory, LeadFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world():
    team = Team.objects.create(name="North")
    rep = make_user("searcher", Role.REP, team=team)
    rep.set_password("hotlist")
    rep.save(update_fields=["password"])
    company = CompanyFactory(name="Wolfram Maschinenbau")
    katharina = LeadFactory(
        owner=rep,
        first_name="Katharina",
        last_name="Wolf",
        email="k.wolf@wolfram.example",
        phone="+49 30 1234567",
        company=company,
        score=72,
        band="hot",
    )
    LeadFactory(owner=rep, first_name="Katharina", last_name="Berg", phone="+49 89 7654321")
    LeadFactory(owner=rep, first_name="Peter", last_name="Wolf", phone="+44 20 7946 0958")
    return katharina


def search_box(page):
    return page.get_by_role("search").get_by_label("Search leads, companies and deals")


def test_rep_finds_a_lead_by_full_name_from_the_header_and_opens_it(page, world):
    # Given a rep on My day
    log_in(page, "searcher")
    page.goto("/")

    # When they type a full name, last name first, into the header's box
    search_box(page).press_sequentially("wolf katharina", delay=20)

    # Then the findings drop under the box, without a reload, and hold only her
    results = page.locator("#header-search-results")
    expect(results.get_by_role("link", name="Katharina Wolf")).to_be_visible()
    expect(results.get_by_role("link", name="Peter Wolf")).to_have_count(0)
    expect(results.get_by_role("link", name="Katharina Berg")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/$"))
    page.screenshot(path=str(SCREENSHOTS / "header-search.png"))

    # And a click opens her page
    results.get_by_role("link", name="Katharina Wolf").click()
    expect(page).to_have_url(re.compile(rf"/leads/{world.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Katharina Wolf")


def test_rep_finds_a_lead_by_phone_written_another_way(page, world):
    log_in(page, "searcher")
    page.goto("/leads/")

    # When the number is typed as it is said at home, not as it is stored
    search_box(page).press_sequentially("(030) 123-4567", delay=20)

    # Then the lead stored as "+49 30 1234567" is found
    results = page.locator("#header-search-results")
    expect(results.get_by_role("link", name="Katharina Wolf")).to_be_visible()
    expect(results.get_by_role("link", name="Katharina Berg")).to_have_count(0)


def test_enter_opens_the_whole_findings_page(page, world):
    log_in(page, "searcher")
    page.goto("/tasks/")

    search_box(page).fill("Wolfram")
    search_box(page).press("Enter")

    expect(page).to_have_url(re.compile(r"/search/\?q=Wolfram"))
    main = page.locator("main")
    expect(main.get_by_role("link", name="Katharina Wolf")).to_be_visible()
    expect(main.get_by_role("link", name="Wolfram Maschinenbau").first).to_be_visible()
