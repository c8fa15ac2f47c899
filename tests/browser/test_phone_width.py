"""Pages at a phone's width (390 px): nothing wider than the screen, so nobody has to
scroll sideways to reach a button. Wide tables scroll inside their own box."""

from __future__ import annotations

import pytest

from leads.models import Lead
from nurturing.models import Sequence
from scoring.models import ScoringModel
from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def overflow(page) -> int:
    """How many pixels the page is wider than the screen."""
    return page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def test_the_admin_fits_a_phone(page, demo_world):
    page.set_viewport_size(PHONE)
    log_in(page, "admin")
    lead = Lead.objects.order_by("pk").first()
    model = ScoringModel.objects.order_by("pk").first()
    sequence = Sequence.objects.order_by("pk").first()
    paths = [
        f"/admin/scoring/scoringmodel/{model.pk}/preview/",
        f"/admin/nurturing/sequence/{sequence.pk}/change/",
        f"/admin/nurturing/sequence/{sequence.pk}/stats/",
        "/admin/scoring/scoreentry/",
        "/admin/scoring/changelog/",
        "/admin/nurturing/enrollment/",
        "/admin/",
        "/admin/leads/lead/",
        f"/admin/leads/lead/{lead.pk}/change/",
        "/admin/scoring/scoringmodel/",
        f"/admin/scoring/scoringmodel/{model.pk}/change/",
        "/admin/imports/importjob/",
        "/admin/leads/duplicatepair/",
    ]
    wide = {}
    for path in paths:
        page.goto(path)
        if overflow(page) > 1:
            wide[path] = overflow(page)
    assert wide == {}


def test_the_workspace_fits_a_phone(page, demo_world):
    page.set_viewport_size(PHONE)
    log_in(page, "manager")
    lead = Lead.objects.hottest().first()
    wide = {}
    for path in ("/", "/leads/", f"/leads/{lead.pk}/", "/tasks/", "/imports/", "/reports/"):
        page.goto(path)
        if overflow(page) > 1:
            wide[path] = overflow(page)
    assert wide == {}
