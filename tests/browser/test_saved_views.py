"""A saved view of the leads list in a real browser: choose columns, save the view,
reopen it, export it, and act on every lead it matches across pages."""

from __future__ import annotations

import codecs
import csv
import io
import re

import pytest

from crm.models import User
from leads.models import Lead
from tests.browser.conftest import SCREENSHOTS, log_in
from workspace.models import SavedView

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def headings(page) -> list[str]:
    return [text.strip() for text in page.locator(".lead-table thead th").all_inner_texts()]


def test_manager_saves_a_view_with_chosen_columns_reopens_and_exports_it(page, demo_world):
    manager = User.objects.get(username="manager")
    warm = Lead.objects.visible_to(manager).filter(band="warm")
    expected = set(warm.values_list("email", flat=True))
    assert len(expected) > 0
    log_in(page, "manager")
    page.goto("/leads/")

    # Given the warm leads, with the phone and the next task shown and no stage column
    page.get_by_label("Band").select_option("warm")
    page.wait_for_url(re.compile(r"band=warm"))
    page.locator(".column-chooser summary").click()
    page.get_by_label("Phone").check()
    page.wait_for_function(
        "document.querySelector('.lead-table thead').textContent.includes('Phone')"
    )
    page.get_by_label("Next task").check()
    page.wait_for_function(
        "document.querySelector('.lead-table thead').textContent.includes('Next task')"
    )
    page.locator(".column-chooser").get_by_label("Stage", exact=True).uncheck()
    page.wait_for_url(re.compile(r"cols=phone"))
    page.wait_for_function(
        "![...document.querySelectorAll('.lead-table thead th')]"
        ".some(th => th.textContent.trim() === 'Stage')"
    )

    # When they save the list as a shared view
    page.get_by_label("Save this list as").fill("Warm callers")
    page.get_by_label("Share with my team").check()
    page.get_by_role("button", name="Save view").click()

    # Then the list shows the view by name, with its columns
    page.wait_for_url(re.compile(r"view=\d+"))
    assert "Saved the view “Warm callers”." in page.content()
    view = SavedView.objects.get(owner=manager)
    assert (view.name, view.shared) == ("Warm callers", True)
    assert "band=warm" in view.query
    assert "phone" in view.columns
    assert "stage" not in view.columns

    # When they come back to the plain list and pick the view from the menu
    page.goto("/leads/")
    page.locator(".views-menu summary").click()
    page.get_by_role("link", name="Warm callers").click()
    page.wait_for_url(re.compile(rf"view={view.pk}"))
    shown = headings(page)
    assert "Phone" in shown
    assert "Next task" in shown
    assert "Stage" not in shown
    assert page.get_by_label("Band").input_value() == "warm"
    page.locator(".views-menu summary").click()
    page.locator(".column-chooser summary").click()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SCREENSHOTS / "saved-view.png", full_page=False)

    # And export it: the file holds the view's columns and leads
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    body = open(download.value.path(), "rb").read()  # noqa: SIM115
    assert body.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert rows[0][:5] == ["id", "first_name", "last_name", "email", "company"]
    assert "phone" in rows[0]
    assert "next_task" in rows[0]
    assert "stage" not in rows[0]
    assert {row[3] for row in rows[1:]} == expected


def test_manager_selects_every_lead_across_pages_for_a_bulk_action(page, demo_world):
    manager = User.objects.get(username="manager")
    matching = Lead.objects.visible_to(manager).filter(band="cold")
    total = matching.count()
    assert total > 25  # more than a page
    log_in(page, "manager")
    page.goto("/leads/?band=cold")

    # The bar asks for the action first; the owner field shows only for "Assign to…"
    owner = page.locator("#bulk-form .field-owner")
    stage = page.locator("#bulk-form .field-stage")
    offer = page.get_by_label(re.compile(r"Select all [\d,]+ leads matching these filters"))
    assert owner.is_hidden()
    assert offer.is_hidden()
    page.locator("#bulk-form").get_by_label("Action").select_option("assign")
    assert owner.is_visible()
    assert stage.is_hidden()

    # Checking the page's box offers every matching lead, on every page
    page.get_by_label("Select every lead on this page").check()
    assert offer.is_visible()
    offer.check()
    page.locator("#bulk-form").get_by_label("Assign to").select_option(label=f"Me ({manager})")
    page.get_by_role("button", name="Apply").click()

    message = page.locator(".message").first
    message.wait_for()
    assert f"All {total:,} leads matching the filters" in message.inner_text()
    assert Lead.objects.filter(pk__in=matching.values("pk"), owner=manager).count() == total
