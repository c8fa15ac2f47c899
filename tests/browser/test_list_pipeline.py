"""The leads list, the pipeline and tasks in a real browser (Debian's Chromium).

Each test saves the screenshot of its page to docs/screenshots/ for the README.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.utils import timezone

from crm.models import User
from leads.models import Lead, Task
from tests.browser.conftest import log_in

# The README shows these from the project's docs/screenshots/.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def row_names(page) -> list[str]:
    return page.locator(".lead-table tbody th[scope=row] a").all_inner_texts()


def first_row_is_not(page, name: str) -> None:
    page.wait_for_function(
        "name => document.querySelector('.lead-table tbody th a')?.textContent !== name", arg=name
    )


def drag(page, source: str, target: str) -> None:
    """Drag as a person does: press on the card, move in steps, release over the column."""
    start = page.locator(source).bounding_box()
    end = page.locator(target).bounding_box()
    page.mouse.move(start["x"] + 10, start["y"] + start["height"] - 10)
    page.mouse.down()
    page.mouse.move(start["x"] + 40, start["y"] + start["height"] - 5, steps=5)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + 60, steps=10)
    page.mouse.up()


def test_manager_filters_and_pages_the_list_in_place(page, demo_world):
    # Given the demo world seen by the manager, more than a page of leads
    log_in(page, "manager")
    page.goto("/leads/")
    first_page = row_names(page)
    assert len(first_page) == 25

    # When they page forward, the table is swapped and the URL carries the cursor
    page.get_by_role("link", name="Next →").click()
    page.wait_for_url(re.compile(r"cursor="))
    first_row_is_not(page, first_page[0])
    second_page = row_names(page)
    assert len(second_page) == 25
    assert second_page != first_page

    # And back again
    page.get_by_role("link", name="← Previous").click()
    first_row_is_not(page, second_page[0])
    assert row_names(page) == first_page

    # When they pick a band, the table narrows without a reload and the URL keeps the filter
    page.get_by_label("Band").select_option("cold")
    page.wait_for_url(re.compile(r"band=cold"))
    page.wait_for_function(
        "[...document.querySelectorAll('.lead-table .band')].every(b => b.title === 'Cold')"
    )
    assert "cursor" not in page.url
    page.get_by_label("Band").select_option("")
    page.wait_for_url(re.compile(r"band=&|band=$"))
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SCREENSHOTS / "leads-list.png", full_page=False)

    # And the bookmarked URL opens the same filtered view
    page.goto("/leads/?band=hot&sort=name")
    assert page.get_by_label("Band").input_value() == "hot"
    assert page.get_by_label("Sort by").input_value() == "name"


def test_the_list_reads_well_on_a_phone(browser, live_server, demo_world):
    context = browser.new_context(
        viewport={"width": 375, "height": 812}, base_url=live_server.url, is_mobile=True
    )
    page = context.new_page()
    try:
        log_in(page, "rep1")
        page.goto("/leads/")
        page.locator(".lead-table tbody tr").first.wait_for()

        overflow = page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=SCREENSHOTS / "leads-list-phone.png", full_page=True)

        assert overflow <= 375
        assert page.get_by_role("link", name="Pipeline").is_visible()
        assert page.locator("main").get_by_label("Search").is_visible()
    finally:
        context.close()


@pytest.fixture
def rep1_cards(demo_world):
    """Three leads of rep1 at the top of their columns."""
    rep1 = User.objects.get(username="rep1")
    make = lambda name, stage, **more: Lead.objects.create(  # noqa: E731
        email=f"{name.lower()}@board.example",
        first_name=name,
        last_name="Board",
        owner=rep1,
        stage=stage,
        score=10_000,
        **more,
    )
    return {
        "drag": make("Dora", "mql"),
        "keys": make("Kira", "sql"),
        "stuck": make("Cyrus", "customer"),
    }


def test_rep_moves_pipeline_cards_by_drag_and_by_keyboard(page, rep1_cards):
    log_in(page, "rep1")
    page.goto("/pipeline/")
    dora, kira, cyrus = rep1_cards["drag"], rep1_cards["keys"], rep1_cards["stuck"]

    # Dragging Dora's card from MQL to SQL moves her
    drag(page, f"#card-{dora.pk}", "section.column[data-stage=sql]")
    page.locator(f"section.column[data-stage=sql] #card-{dora.pk}").wait_for()
    assert page.get_by_text("Dora Board moved to SQL.").is_visible()
    assert Lead.objects.get(pk=dora.pk).stage == "sql"

    # Kira moves with the keyboard alone: open "Move to…", pick a stage, press Enter
    summary = page.locator(f"#card-{kira.pk} summary")
    summary.focus()
    page.keyboard.press("Enter")
    select = page.get_by_label("Stage for Kira Board")
    select.focus()
    select.select_option("opportunity")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.locator(f"section.column[data-stage=opportunity] #card-{kira.pk}").wait_for()
    assert Lead.objects.get(pk=kira.pk).stage == "opportunity"

    # A refused move says why and the card stays where it was
    drag(page, f"#card-{cyrus.pk}", "section.column[data-stage=mql]")
    page.get_by_text("Cyrus Board stays in Customer").wait_for()
    assert page.locator(f"section.column[data-stage=customer] #card-{cyrus.pk}").is_visible()
    assert Lead.objects.get(pk=cyrus.pk).stage == "customer"
    page.screenshot(path=SCREENSHOTS / "pipeline.png", full_page=False)


def test_rep_completes_and_snoozes_tasks(page, demo_world):
    rep1 = User.objects.get(username="rep1")
    now = timezone.now()
    call = Task.objects.create(
        assignee=rep1, title="Call Ada about pricing", due_at=now - dt.timedelta(hours=2)
    )
    Task.objects.create(
        assignee=rep1, title="Send the case study", due_at=now + dt.timedelta(hours=3)
    )

    log_in(page, "rep1")
    page.goto("/tasks/")
    page.get_by_role("heading", name=re.compile("Overdue")).wait_for()
    page.screenshot(path=SCREENSHOTS / "tasks.png", full_page=False)

    page.get_by_role("button", name="Done: Call Ada about pricing").click()
    page.get_by_text("Done: Call Ada about pricing.").wait_for()
    assert Task.objects.get(pk=call.pk).done_at is not None
    assert page.locator(f"#task-{call.pk}").count() == 0
