"""A scoring model's page follows its rescore in a real browser: the bar of a queued
job moves to done without a reload once a worker has run it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from scoring.models import RescoreJob, ScoringModel
from scoring.rescore_jobs import rescore_job_run
from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_rescore_bar_moves_to_done_without_a_reload(page, demo_world):
    # Given a rescore of the live model queued, not run yet (no worker took it)
    model = ScoringModel.objects.active().get(is_default=True)
    job = RescoreJob.objects.create(model=model, reason="Rules changed")
    log_in(page, "marketer")
    page.goto(f"/admin/scoring/scoringmodel/{model.pk}/change/")
    row = page.locator(f'[data-rescore-job="{job.pk}"]')
    expect(row).to_contain_text("queued")

    # When a worker runs it while the page stays open
    rescore_job_run(job_id=job.pk, in_process=True)

    # Then the page shows it done, every lead counted, with no reload
    expect(row).to_contain_text(re.compile(r"([\d,]+) / \1 leads · done"), timeout=10_000)
    expect(row.locator("progress")).to_have_attribute("value", "100")
