"""The reports in a real browser (Debian's Chromium): each report opens, the range
changes, a chart's text alternative reads out its values, and the CSV downloads.

Screenshots go to docs/screenshots/reports-*.png for the README.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import pytest
from django.utils import timezone

from reports.pages.catalogue import REPORTS
from tests.browser.conftest import log_in

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_marketer_reads_every_report_changes_the_range_and_downloads_the_csv(page, demo_world):
    log_in(page, "marketer")
    page.get_by_role("link", name="Reports").first.click()
    page.wait_for_url(re.compile(r"/reports/$"))
    assert page.locator(".key-figures dt").first.inner_text() == "Leads"
    page.screenshot(path=SCREENSHOTS / "reports-index.png", full_page=True)

    for slug, report in REPORTS.items():
        # When they open the report from the report navigation
        page.locator(".report-nav").get_by_role("link", name=report.title).click()
        page.wait_for_url(re.compile(rf"/reports/{slug}/"))
        assert page.get_by_role("heading", level=1).inner_text() == report.title

        # Then each chart names itself and reads its values out in its description
        chart = page.locator("figure.chart svg").first
        if chart.count():
            title = chart.locator("title").first.text_content()
            desc = chart.locator("desc").first.text_content()
            assert title
            assert desc.endswith(".")
            labelled = chart.get_attribute("aria-labelledby").split()
            assert len(labelled) == 2
        page.screenshot(path=SCREENSHOTS / f"reports-{slug}.png", full_page=True)

        # And the first table downloads as CSV with the rows the page shows
        section = page.locator("section.report-table:has(a.csv-link)").first
        if section.count():
            link = section.locator("a.csv-link")
            with page.expect_download() as info:
                link.click()
            download = info.value
            assert download.suggested_filename.startswith(f"hotlist-{slug}-")
            rows = list(csv.reader(io.StringIO(Path(download.path()).read_text())))
            shown = section.locator("tbody tr").count()
            assert len(rows) == shown + 1


def test_manager_narrows_the_funnel_to_a_range(page, demo_world):
    log_in(page, "manager")
    page.goto("/reports/funnel/")
    before = page.locator("#chart-funnel-desc").text_content()
    assert before.startswith("Leads: ")

    # When they set the range to the last week
    today = timezone.localdate()
    page.get_by_label("From", exact=True).fill((today - dt.timedelta(days=7)).isoformat())
    page.get_by_label("To", exact=True).fill(today.isoformat())
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"date_from="))

    # Then the funnel's text alternative tells the smaller counts
    after = page.locator("#chart-funnel-desc").text_content()
    leads = lambda text: int(re.match(r"Leads: ([\d,]+)", text).group(1).replace(",", ""))  # noqa: E731
    assert leads(after) < leads(before)

    # And a reversed range is refused with a message on the field
    page.get_by_label("From", exact=True).fill(today.isoformat())
    page.get_by_label("To", exact=True).fill((today - dt.timedelta(days=7)).isoformat())
    page.get_by_role("button", name="Show").click()
    expect_error = page.get_by_text("Make this on or after the start of the range.")
    expect_error.wait_for()
    assert expect_error.is_visible()
