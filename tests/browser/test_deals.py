"""Deals in a real browser (Debian's Chromium): a rep creates a deal on a lead and wins
it, and works the deal board (totals, weighted totals, rotting, drag and keyboard moves,
won and lost). Each test saves its screenshot to docs/screenshots/ for the README."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from crm.models import Role, Team, User
from leads.deals import deal_create, deal_pipeline_ensure
from leads.models import Deal, DealStatus, Lead, Stage
from tests.browser.conftest import log_in
from tests.factories import LeadFactory

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def rita(db) -> User:
    """A rep of a team, who signs in with the demo password."""
    team = Team.objects.create(name="Team North")
    user = User.objects.create_user("rita", password="hotlist", first_name="Rita", team=team)
    user.groups.add(Group.objects.get(name=Role.REP.label))
    return user


@pytest.fixture
def stages(db):
    return deal_pipeline_ensure()


def drag(page, source: str, target: str) -> None:
    """Drag as a person does: press on the card, move in steps, release over the column."""
    start = page.locator(source).bounding_box()
    end = page.locator(target).bounding_box()
    page.mouse.move(start["x"] + 10, start["y"] + 10)
    page.mouse.down()
    page.mouse.move(start["x"] + 40, start["y"] + 15, steps=5)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + 40, steps=10)
    page.mouse.up()


def column(page, stage) -> str:
    return f"section.column[data-stage='{stage.pk}']"


def test_rep_creates_a_deal_on_an_opportunity_and_wins_it(page, rita, stages):
    lead = LeadFactory(owner=rita, stage=Stage.OPPORTUNITY, first_name="Olga", last_name="Opp")
    log_in(page, "rita")
    page.goto(f"/leads/{lead.pk}/")
    deals = page.locator("#deals")

    # The lead is an opportunity without a deal: the form is offered open
    assert deals.get_by_text("is an opportunity without an open deal").is_visible()

    # A deal named with blanks alone is refused in place (the browser's own check lets
    # blanks through), and nothing is stored
    form = deals.get_by_role("form", name="Create a deal")
    form.get_by_label("Deal").fill("   ")
    form.get_by_role("button", name="Create deal").click()
    deals.get_by_text("Name the deal.").wait_for()
    assert not Deal.objects.exists()

    # The rep fills it in and creates it, in place
    form = deals.get_by_role("form", name="Create a deal")
    form.get_by_label("Deal").fill("Fleet pilot")
    form.get_by_label("Amount").fill("12000")
    form.get_by_label("Stage").select_option(label="Proposal")
    form.get_by_label("Expected close").fill("2030-06-30")
    form.get_by_role("button", name="Create deal").click()
    deals.get_by_text("Deal “Fleet pilot” created.").wait_for()
    assert deals.get_by_text("Proposal · 50 %").is_visible()
    deal = Deal.objects.get()
    assert (deal.name, deal.amount, deal.stage, deal.expected_close) == (
        "Fleet pilot",
        Decimal(12000),
        stages[1],
        dt.date(2030, 6, 30),
    )

    # Winning it makes the lead a customer: the card, the header and the stage card say so
    deals.get_by_role("button", name="Won: Fleet pilot").click()
    deals.get_by_text("Deal “Fleet pilot” won: Olga Opp is a customer.").wait_for()
    page.locator("#stage h2", has_text="Stage: Customer").wait_for()
    assert page.locator("#lead-header .pill", has_text="Customer").is_visible()
    assert Deal.objects.get().status == DealStatus.WON
    assert Lead.objects.get(pk=lead.pk).stage == Stage.CUSTOMER
    deals.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "lead-deals.png", full_page=False)


@pytest.fixture
def board(rita, stages):
    """Rita's open deals: two in Qualification (one idle for 40 days), one in Proposal."""
    qualification, proposal, _ = stages

    def deal(first: str, name: str, amount: int, stage, idle: int = 0) -> Deal:
        lead = LeadFactory(owner=rita, stage=Stage.OPPORTUNITY, first_name=first, last_name="Lee")
        made = deal_create(lead=lead, by=rita, name=name, amount=Decimal(amount), stage=stage)
        since = timezone.now() - dt.timedelta(days=idle)
        Deal.objects.filter(pk=made.pk).update(stage_changed_at=since)
        return made

    return {
        "fleet": deal("Ada", "Fleet rollout", 10000, qualification),
        "stale": deal("Ben", "Depot sensors", 2000, qualification, idle=40),
        "renewal": deal("Cleo", "Renewal", 5000, proposal),
    }


def test_rep_works_the_deal_board(page, rita, stages, board):
    qualification, proposal, negotiation = stages
    fleet, stale, renewal = board["fleet"], board["stale"], board["renewal"]
    log_in(page, "rita")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Deals").click()
    page.wait_for_url(re.compile(r"/deals/$"))

    # Each column counts its deals, totals them and weighs them by the stage's probability
    first = page.locator(column(page, qualification))
    assert first.locator(".count").inner_text() == "2"
    assert first.locator(".deal-totals dd").all_inner_texts() == ["12,000 EUR", "2,400 EUR"]
    assert page.locator(column(page, proposal)).locator(".deal-totals dd").all_inner_texts() == [
        "5,000 EUR",
        "2,500 EUR",
    ]
    # The deal idle past the stage's 30 days is flagged
    assert first.get_by_text("1 rotting").is_visible()
    assert page.locator(f"#deal-{stale.pk} .rot-flag").inner_text() == (
        "Rotting: 40 days in this stage"
    )
    page.screenshot(path=SCREENSHOTS / "deals-board.png", full_page=False)

    # Dragging the fleet deal to Negotiation moves it, and the totals follow
    drag(page, f"#deal-{fleet.pk}", column(page, negotiation))
    page.locator(f"{column(page, negotiation)} #deal-{fleet.pk}").wait_for()
    last = page.locator(column(page, negotiation))
    assert last.locator(".deal-totals dd").all_inner_texts() == ["10,000 EUR", "7,500 EUR"]
    assert Deal.objects.get(pk=fleet.pk).stage == negotiation

    # The renewal moves with the keyboard alone: open "Move to…", pick a stage, press Enter
    page.locator(f"#deal-{renewal.pk} details.move summary").focus()
    page.keyboard.press("Enter")
    select = page.get_by_label("Stage for Renewal")
    select.focus()
    select.select_option(label="Negotiation")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.locator(f"{column(page, negotiation)} #deal-{renewal.pk}").wait_for()
    assert Deal.objects.get(pk=renewal.pk).stage == negotiation

    # Won on the board: the card leaves, the lead is a customer
    page.get_by_role("button", name="Won: Depot sensors").click()
    page.get_by_text("Deal “Depot sensors” won: Ben Lee is a customer.").wait_for()
    assert page.locator(f"#deal-{stale.pk}").count() == 0
    assert Lead.objects.get(pk=stale.lead_id).stage == Stage.CUSTOMER

    # Lost on the board, with a reason from the pick-list
    card = page.locator(f"#deal-{renewal.pk}")
    card.locator("details.deal-lose summary").click()
    card.get_by_label("Why was it lost?").select_option("Chose a competitor")
    card.get_by_role("button", name="Mark lost").click()
    page.get_by_text("Deal “Renewal” lost: Chose a competitor.").wait_for()
    assert Deal.objects.get(pk=renewal.pk).lost_reason == "Chose a competitor"
    assert page.locator(column(page, negotiation)).locator(".count").inner_text() == "1"

    # The owner filter narrows the board in place and keeps itself in the address
    page.get_by_label("Owner").select_option("me")
    page.wait_for_url(re.compile(r"owner=me"))
    page.locator(f"{column(page, negotiation)} #deal-{fleet.pk}").wait_for()
