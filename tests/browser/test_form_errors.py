"""Form errors answered in place, with DEBUG on as well as off: an htmx form that gets a
400 back shows its errors inside the page, which keeps its navigation and styles.

With DEBUG on (how a newcomer first runs the app) django-htmx's own debug script used
to replace the whole document with any 400 response, leaving a bare, unstyled form.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def styled(page) -> bool:
    """The page still has the app's stylesheet applied and its main navigation."""
    background = page.evaluate(
        "getComputedStyle(document.querySelector('.topbar')).backgroundColor"
    )
    return page.get_by_role("navigation", name="Main").is_visible() and background not in (
        "",
        "rgba(0, 0, 0, 0)",
    )


def test_a_bulk_action_without_leads_answers_in_place(page, demo_world):
    log_in(page, "rep1")
    page.goto("/leads/")
    assert styled(page)

    page.locator("#bulk-form").get_by_label("Action").select_option(index=1)
    page.locator("#bulk-form").get_by_role("button", name="Apply").click()

    error = page.locator("#bulk-form [role=alert]").first
    error.wait_for()
    assert "lead" in error.inner_text().casefold()
    assert styled(page)
    assert page.locator(".lead-table tbody tr").count() > 0


def test_a_bad_filter_range_answers_in_place(page, demo_world):
    log_in(page, "manager")
    page.goto("/leads/?score_min=90&score_max=10")

    assert styled(page)
    assert page.get_by_role("alert").first.is_visible()
