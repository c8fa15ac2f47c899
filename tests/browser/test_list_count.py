"""The leads list's exact count, when there are too many to count with the page, comes
in as the page loads, in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from crm.models import User
from leads.models import Lead
from tests.browser.conftest import log_in
from workspace import filters

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_long_list_shows_its_exact_count_once_loaded(page, demo_world, monkeypatch):
    # Given more leads in the manager's view than the page counts with itself
    monkeypatch.setattr(filters, "COUNT_INLINE_MAX", 10)
    manager = User.objects.get(username="manager")
    seen = Lead.objects.visible_to(manager).count()
    assert seen > 10
    log_in(page, "manager")

    # When the list opens, the exact count replaces "more than" without a reload,
    # and the select-all offer names it
    page.goto("/leads/")
    expect(page.locator("#lead-count")).to_have_text(f"{seen:,} leads")
    expect(page.locator("#select-all-count")).to_have_text(f"{seen:,} leads")
