"""Importing a messy file as a marketer meets it, in a real browser: upload from the main
navigation, map the columns the suggester does not know, a constant and a value map,
the mapping saved for the source, the preview as it will be stored, a dry run that
stores nothing, the import for real with its progress polled until done, the error
file, the undo; and the next file of that source mapped as saved.

The file is what an old German trade-fair scanner exports: Latin-1, semicolons, a
placeholder, a bad address and a row for a lead that exists already.

The preview's screenshot goes to docs/screenshots/import-preview.png for the README.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from crm.models import User
from imports.drafts import import_job_map, import_mapping_save
from imports.models import ImportJob, ImportMapping, ImportStatus
from imports.services import import_job_create
from imports.tasks import import_run
from leads.models import Company, Lead
from tests.browser.conftest import SCREENSHOTS, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HEADER = "E-mail;Vorname;Nachname;Telefon;Firma;Status"
NEW_EMAILS = ("renee.lefevre@alpenwerke.example", "jo.baumann@alpenwerke.example")
CAMPAIGN = "Messe München 2026"
MAPPING_NAME = "Messe-Scanner"
# Renée and Jo created, the demo lead's phone updated, the bad address failed.
COUNTS = {"Created": 2, "Updated": 1, "Unchanged": 0, "Skipped": 0, "Failed": 1}


def scanner_file(existing: Lead) -> bytes:
    """Four rows: two new leads (one with an accented name, one with "N/A" for a phone),
    one bad address, and a new phone number for a lead stored already."""
    rows = [
        HEADER,
        "renee.lefevre@alpenwerke.example;Renée;Lefèvre;030 1234567;Alpenwerke;Heiß",
        "jo.baumann@alpenwerke.example;Jo;Baumann;N/A;Alpenwerke;",
        "kein-email;Udo;Kranz;0171 2345678;;Heiß",
        f"{existing.email};{existing.first_name};{existing.last_name};089 7654321;;",
    ]
    return ("\r\n".join(rows) + "\r\n").encode("latin-1")


@pytest.fixture
def existing(demo_world) -> Lead:
    """A demo lead whose name Latin-1 can write, with a phone the file changes."""
    for lead in Lead.objects.exclude(email="").exclude(phone="").order_by("pk"):
        try:
            f"{lead.email}{lead.first_name}{lead.last_name}".encode("latin-1")
        except UnicodeEncodeError:
            continue
        return lead
    raise AssertionError("the demo world has no lead with a Latin-1 name and a phone")


@pytest.fixture
def marketer_mapping(existing) -> ImportMapping:
    marketer = User.objects.get(username="marketer")
    first = import_job_create(
        file=io.BytesIO(scanner_file(existing)),
        file_name="messe-tag-1.csv",
        kind="leads",
        by=marketer,
        draft=True,
    )
    mapped = import_job_map(
        job=first,
        by=marketer,
        mapping={**first.mapping, "Telefon": "phone", "Firma": "company"},
        constants={"campaign": CAMPAIGN},
        value_maps={"stage": {"Heiß": "mql"}},
        phone_region="DE",
    )
    return import_mapping_save(job=mapped, name=MAPPING_NAME, by=marketer)


def upload(page, name: str, content: bytes) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Import").click()
    page.get_by_role("heading", name="Imports").wait_for()
    page.get_by_role("link", name="New import").click()
    page.get_by_label("File", exact=True).set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": content}]
    )
    page.get_by_role("button", name="Upload and map columns").click()
    page.get_by_role("heading", name=f"Map the columns of {name}").wait_for()


def column(page, header: str):
    return page.locator("table.mapping").get_by_label(header, exact=True)


def preview_rows(page) -> dict[str, dict[str, str]]:
    """The preview table as {row number: {column: cell text}}."""
    table = page.locator("table.import-preview")
    columns = table.locator("thead th").all_inner_texts()[1:]
    rows = {}
    for row in table.locator("tbody tr").all():
        number = row.locator("th").inner_text()
        cells = [cell.inner_text() for cell in row.locator("td").all()]
        rows[number] = dict(zip(columns, cells, strict=True))
    return rows


def counts(page) -> dict[str, int]:
    section = page.locator("#import-progress")
    names = section.locator(".import-counts dt").all_inner_texts()
    values = section.locator(".import-counts dd").all_inner_texts()
    return {name: int(value) for name, value in zip(names, values, strict=True)}


def snapshot(lead: Lead) -> tuple[str, str, str, str]:
    lead.refresh_from_db()
    return (lead.first_name, lead.last_name, lead.phone, lead.campaign)


def test_marketer_maps_previews_dry_runs_imports_downloads_errors_and_undoes(
    page, existing, monkeypatch
):
    before = snapshot(existing)
    leads_before = Lead.objects.count()

    # Given the marketer uploads the scanner's file from the main navigation
    log_in(page, "marketer")
    upload(page, "messe-tag-1.csv", scanner_file(existing))
    hint = page.locator("p.hint").first
    expect(hint).to_contain_text("6 columns")
    expect(hint).to_contain_text("delimiter “;”")

    # Then the headers the suggester knows are mapped, the others wait for a choice
    expect(column(page, "E-mail")).to_have_value("email")
    expect(column(page, "Vorname")).to_have_value("first_name")
    expect(column(page, "Nachname")).to_have_value("last_name")
    expect(column(page, "Status")).to_have_value("stage")
    expect(column(page, "Telefon")).to_have_value("")
    expect(column(page, "Firma")).to_have_value("")

    # When they map those, add the campaign for every row and a value for "Heiß",
    # say where the phone numbers are from and save the mapping for the source
    column(page, "Telefon").select_option(label="Phone")
    column(page, "Firma").select_option(label="Company name")
    page.get_by_label("Field 1", exact=True).select_option(label="Campaign")
    page.get_by_label("Value 1", exact=True).fill(CAMPAIGN)
    page.get_by_label("Value maps").fill("stage: Heiß = mql")
    page.get_by_label("Phone numbers without a country code are from").fill("DE")
    page.get_by_label("Create rows that match nothing").check()
    page.get_by_label("Update rows that match").check()
    page.get_by_label("Save this mapping for the source").fill(MAPPING_NAME)
    page.get_by_role("button", name="Preview").click()

    # Then the preview shows the rows as they will be stored
    page.get_by_role("status").get_by_text(f"Mapping saved as “{MAPPING_NAME}”.").wait_for()
    expect(page.locator("table.import-preview caption")).to_have_text(
        "1 of the first 4 rows would fail"
    )
    rows = preview_rows(page)
    assert rows["2"]["Email"] == NEW_EMAILS[0]
    assert (rows["2"]["First name"], rows["2"]["Last name"]) == ("Renée", "Lefèvre")
    assert rows["2"]["Phone"] == "+49301234567"
    assert rows["2"]["Stage"] == "MQL"
    assert rows["2"]["Campaign"] == CAMPAIGN
    assert rows["3"]["Phone"] == ""
    assert rows["5"]["Phone"] == "+49897654321"
    bad = page.locator("table.import-preview tbody tr.failed")
    expect(bad).to_have_count(1)
    expect(bad.locator("th")).to_have_text("4")
    expect(bad.locator("td.cell-error")).to_have_count(1)
    expect(bad.locator("td.cell-error").get_by_role("note")).to_have_text(
        "“kein-email” is not an email address."
    )
    saved = ImportMapping.objects.get(name=MAPPING_NAME)
    assert saved.mapping["Telefon"] == "phone"
    assert saved.constants == {"campaign": CAMPAIGN}
    if not settings.DEBUG:
        page.screenshot(path=SCREENSHOTS / "import-preview.png", full_page=True)

    # When they run it dry (it runs at once: Celery is eager in tests)
    page.get_by_role("button", name="Dry run (store nothing)").click()

    # Then the counts are those the import would give, and nothing is stored
    expect(page.locator("#progress-title")).to_have_text("Dry run: done")
    assert counts(page) == COUNTS
    expect(page.get_by_text("A dry run stores nothing")).to_be_visible()
    assert Lead.objects.count() == leads_before
    assert not Lead.objects.filter(email__in=NEW_EMAILS).exists()
    assert not Company.objects.filter(name="Alpenwerke").exists()
    assert snapshot(existing) == before

    # When they import for real, and the run waits on the bulk queue as a message does
    # until a worker takes it (eager Celery would run it inside the request)
    held: list[int] = []
    monkeypatch.setattr(import_run, "delay", held.append)
    page.get_by_role("button", name="Import for real").click()
    expect(page.locator("#progress-title")).to_have_text("Queued")
    progress = page.locator("#import-progress")
    expect(progress).to_have_attribute("hx-trigger", "every 1s")
    job = ImportJob.objects.get(pk=int(re.search(r"/imports/(\d+)/", page.url)[1]))
    assert (job.status, job.dry_run, held) == (ImportStatus.QUEUED, False, [job.pk])
    page.evaluate("window.notReloaded = true")

    # and a worker takes it
    import_run(held.pop())

    # Then the page's polling shows it done, without a reload, and stops polling
    expect(page.locator("#progress-title")).to_have_text("Done", timeout=10_000)
    assert page.evaluate("window.notReloaded") is True
    expect(progress).not_to_have_attribute("hx-trigger", re.compile(".*"))
    expect(progress.locator(".progress-text")).to_contain_text("4 of 4 rows (100%)")
    assert counts(page) == COUNTS
    renee = Lead.objects.get(email=NEW_EMAILS[0])
    assert (renee.first_name, renee.last_name, renee.phone) == ("Renée", "Lefèvre", "+49301234567")
    assert (renee.stage, renee.campaign, renee.company.name) == ("mql", CAMPAIGN, "Alpenwerke")
    assert Lead.objects.get(email=NEW_EMAILS[1]).phone == ""
    assert snapshot(existing) == (before[0], before[1], "+49897654321", CAMPAIGN)

    # When they download the failed row
    with page.expect_download() as info:
        progress.get_by_role("link", name=re.compile(r"Download the 1 failed row")).click()
    download = info.value

    # Then it holds the row as read from the file, its number and the reason
    assert download.suggested_filename == f"import-{job.pk}-errors.csv"
    lines = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert lines == [
        [*HEADER.split(";"), "Row", "Error"],
        [
            *("kein-email", "Udo", "Kranz", "0171 2345678", "", "Heiß", "4"),
            "E-mail: “kein-email” is not an email address.",
        ],
    ]

    # When they undo the import and confirm
    asked: list[str] = []

    def confirm(dialog) -> None:
        asked.append(f"{dialog.type}: {dialog.message}")
        dialog.accept()

    page.once("dialog", confirm)
    progress.get_by_role("button", name="Undo this import").click()

    # Then the leads it made are gone and the lead it changed is as it was
    expect(page.locator("#progress-title")).to_have_text("Undone")
    expect(page.get_by_role("status")).to_contain_text("Undo queued")
    assert asked == [
        "confirm: Undo this whole import? Records it created are removed and fields it "
        "changed restored."
    ]
    # (removed: the two leads, their company and Renée's move to MQL; restored: the lead)
    expect(page.locator("#import-progress")).to_contain_text(
        "Undone by Mia Marketer: 4 records removed, 1 restored."
    )
    assert not Lead.objects.filter(email__in=NEW_EMAILS).exists()
    assert not Company.objects.filter(name="Alpenwerke").exists()
    assert snapshot(existing) == before
    assert Lead.objects.count() == leads_before


def test_the_next_file_of_a_source_is_mapped_as_saved(page, existing, marketer_mapping):
    # Given the scanner's mapping was saved with the first day's file
    # When the marketer uploads the second day's file with the same columns
    log_in(page, "marketer")
    upload(page, "messe-tag-2.csv", scanner_file(existing))

    # Then the page says so and the form shows the saved choices
    expect(page.get_by_role("status")).to_have_text(f"Mapped as “{MAPPING_NAME}”, saved before.")
    expect(column(page, "Telefon")).to_have_value("phone")
    expect(column(page, "Firma")).to_have_value("company")
    expect(page.get_by_label("Field 1", exact=True)).to_have_value("campaign")
    expect(page.get_by_label("Value 1", exact=True)).to_have_value(CAMPAIGN)
    expect(page.get_by_label("Value maps")).to_have_value("stage: Heiß = mql")
    expect(page.get_by_label("Phone numbers without a country code are from")).to_have_value("DE")
    expect(page.get_by_label("Saved mappings for these columns")).to_have_value(
        str(marketer_mapping.pk)
    )

    # And the preview reads it as the first file was read
    page.get_by_role("button", name="Preview").click()
    rows = preview_rows(page)
    assert (rows["2"]["First name"], rows["2"]["Phone"]) == ("Renée", "+49301234567")
    job = ImportJob.objects.get(file_name="messe-tag-2.csv")
    assert (job.mapping, job.constants) == (marketer_mapping.mapping, marketer_mapping.constants)
