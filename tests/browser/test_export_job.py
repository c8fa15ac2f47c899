"""A large export from the leads list in a real browser: "Prepare the file" swaps in a
progress panel that follows the job to its end without a reload, then downloads; past
exports are listed on a page of their own, reached from the list."""

from __future__ import annotations

import io
import re
from pathlib import Path

import openpyxl
import pytest
from playwright.sync_api import expect

from crm.models import User
from leads import export_jobs
from leads.export_jobs import export_job_create, export_job_run
from leads.models import ExportJob
from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_export_panel_follows_the_job_and_downloads_the_file(
    page, demo_world, settings, tmp_path, monkeypatch
):
    settings.EXPORT_DIR = tmp_path
    # No worker yet: the job waits, queued, as when the bulk queue is busy.
    monkeypatch.setattr(export_jobs, "export_job_request", lambda *, job_id: False)
    log_in(page, "manager")
    page.goto("/leads/?band=hot")
    shown = page.locator("#lead-count").inner_text()

    # When the manager asks for the XLSX file in the background
    page.locator(".export-prepare").get_by_role("button", name="XLSX file").click()

    # Then a panel says it waits, and polls
    panel = page.locator("#export-job")
    expect(panel).to_contain_text("queued")
    job = ExportJob.objects.get()
    assert (job.query, job.file_format) == ("band=hot", "xlsx")

    # When a worker writes it, the panel shows the download link without a reload
    export_job_run(job_id=job.pk)
    link = panel.get_by_role("link", name="Download leads-")
    expect(link).to_be_visible(timeout=10_000)
    expect(panel.locator("progress")).to_have_attribute("value", "100")
    with page.expect_download() as info:
        link.click()
    download = info.value

    # And the file holds the hot leads the list shows, under the header
    assert download.suggested_filename.endswith(".xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(Path(download.path()).read_bytes()))
    rows = workbook.worksheets[0].max_row - 1
    assert f"{rows} lead" in shown


def test_past_exports_are_reached_from_the_list_and_download_the_written_file(
    page, demo_world, settings, tmp_path
):
    settings.EXPORT_DIR = tmp_path
    manager = User.objects.get(username="manager")
    job = export_job_create(
        by=manager, source="workspace", query="band=hot", columns=["email"], file_format="csv"
    )
    export_job_run(job_id=job.pk)
    log_in(page, "manager")
    page.goto("/leads/")

    # When the manager follows "Past exports" from the list's export control
    page.get_by_role("link", name="Past exports").click()

    # Then the page lists the written export, and its link downloads the file
    expect(page).to_have_url(re.compile(r"/leads/exports/$"))
    row = page.locator(f"#export-{job.pk}")
    expect(row).to_contain_text("Ready")
    with page.expect_download() as info:
        row.get_by_role("link", name="Download").click()
    assert info.value.suggested_filename.endswith(".csv")
