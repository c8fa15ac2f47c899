"""The import page of the app, through HTTP: upload, map (suggested, saved per source
and reused), preview with per-cell errors, dry run, import, progress, error file, undo
and resume; who may do it; bad files and bad mappings answered with the form's errors
and nothing stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from imports.drafts import DRAFTS_KEPT, import_drafts_sweep
from imports.models import ImportJob, ImportMapping, ImportStatus
from leads.models import Company, CustomFieldDefinition, Lead
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

FILE = (
    "E-mail;First Name;Last Name;Phone;Lead Status\n"
    "ann@acme.example;ANN;LEE;+49 30 1234567;Hot prospect\n"
    "bo@acme.example;Bo;Diaz;N/A;New\n"
    "not-an-email;Cy;Wu;;New\n"
).encode("latin-1")


@pytest.fixture(autouse=True)
def uploads(tmp_path, settings):
    settings.IMPORT_DIR = tmp_path / "uploads"
    return settings.IMPORT_DIR


def upload(client, content: bytes = FILE, name: str = "expo.csv", kind: str = "leads"):
    return client.post(
        reverse("import-new"), {"file": SimpleUploadedFile(name, content), "kind": kind}
    )


def mapping_post(job: ImportJob, **overrides) -> dict[str, str]:
    """The mapping form as a person submits it: every column's choice as shown."""
    data = {f"column_{i}": job.mapping.get(header, "") for i, header in enumerate(job.headers)}
    data.update(
        match_key="email",
        time_zone="Europe/Berlin",
        day_first="on",
        create_new="on",
        update_existing="on",
        constant_0_field="campaign",
        constant_0_value="Expo 2026",
        value_maps="stage: Hot prospect = mql\nstage: New = new",
    )
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_reps_and_people_without_a_role_may_not_import(client, rep, outsider, marketer):
    job = ImportJob.objects.create(kind="leads", file_name="x.csv", created_by=marketer)
    for person in (rep, outsider):
        client.force_login(person)
        assert client.get(reverse("imports")).status_code == 403
        assert upload(client).status_code == 403
        assert client.get(reverse("import-detail", args=[job.pk])).status_code == 403
        assert client.post(reverse("import-undo", args=[job.pk])).status_code == 403
        assert 'href="/imports/"' not in client.get(reverse("home")).content.decode()
    client.force_login(marketer)
    assert 'href="/imports/"' in client.get(reverse("home")).content.decode()
    assert ImportJob.objects.count() == 1


def test_a_manager_sees_only_their_own_imports(client, manager, marketer):
    theirs = ImportJob.objects.create(kind="leads", file_name="m.csv", created_by=marketer)
    client.force_login(manager)

    assert client.get(reverse("import-detail", args=[theirs.pk])).status_code == 404
    assert client.get(reverse("import-errors", args=[theirs.pk])).status_code == 404
    assert "m.csv" not in client.get(reverse("imports")).content.decode()


def test_upload_map_preview_dry_run_import_error_file_and_undo(
    client, marketer, django_capture_on_commit_callbacks
):
    client.force_login(marketer)

    response = upload(client)
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("import-map", args=[job.pk])
    assert job.status == ImportStatus.DRAFT
    assert (job.encoding, job.delimiter) == ("cp1252", ";") or job.delimiter == ";"
    # The suggestions from the headers are what the form shows first.
    page = client.get(response.url).content.decode()
    assert '<option value="email" selected>' in page
    assert '<option value="phone" selected>' in page

    response = client.post(
        reverse("import-map", args=[job.pk]),
        mapping_post(job, column_4="stage", save_as="Expo badge scans"),
    )
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.mapping["Lead Status"] == "stage"
    assert job.constants == {"campaign": "Expo 2026"}
    assert job.value_maps == {"stage": {"Hot prospect": "mql", "New": "new"}}
    assert job.time_zone == "Europe/Berlin"
    assert ImportMapping.objects.get(name="Expo badge scans").mapping == job.mapping

    preview = client.get(reverse("import-detail", args=[job.pk]))
    text = preview.content.decode()
    assert preview.status_code == 200
    assert "1 of the first 3 rows would fail" in text
    assert "Ann" in text
    assert "+49301234567" in text
    assert "Expo 2026" in text
    assert 'class="cell-error"' in text
    assert not Lead.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("import-start", args=[job.pk]), {"dry_run": "1"})
    job.refresh_from_db()
    assert response.url == reverse("import-detail", args=[job.pk])
    assert (job.status, job.dry_run, job.created, job.failed) == ("done", True, 2, 1)
    assert not Lead.objects.exists()
    done = client.get(reverse("import-detail", args=[job.pk])).content.decode()
    assert "Import for real" in done
    assert "every 1s" not in done

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("import-start", args=[job.pk]))
    real = ImportJob.objects.exclude(pk=job.pk).get()
    assert response.url == reverse("import-detail", args=[real.pk])
    assert (real.status, real.dry_run, real.created, real.failed) == ("done", False, 2, 1)
    assert real.file.name == job.file.name
    ann = Lead.objects.get(email="ann@acme.example")
    assert (ann.first_name, ann.stage, ann.campaign) == ("Ann", "mql", "Expo 2026")
    assert Lead.objects.get(email="bo@acme.example").phone == ""

    errors = client.get(reverse("import-errors", args=[real.pk]))
    lines = b"".join(errors.streaming_content).decode().splitlines()
    assert lines[0] == "E-mail,First Name,Last Name,Phone,Lead Status,Row,Error"
    assert lines[1].startswith("not-an-email,Cy,Wu,,New,4,E-mail:")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("import-undo", args=[real.pk]))
    real.refresh_from_db()
    assert real.status == ImportStatus.UNDONE
    assert not Lead.objects.exists()
    page = client.get(reverse("import-detail", args=[real.pk])).content.decode()
    # The two leads and the company the import made for their mail domain.
    assert not Company.objects.exists()
    assert "3 records removed, 0 restored" in page


def test_a_running_import_page_polls_its_progress_until_it_is_finished(client, marketer):
    job = ImportJob.objects.create(
        kind="leads",
        file_name="big.csv",
        created_by=marketer,
        status=ImportStatus.RUNNING,
        total_rows=1000,
        rows_done=250,
        started_at=timezone.now() - timedelta(seconds=10),
        progress_at=timezone.now(),
    )
    client.force_login(marketer)

    partial = client.get(reverse("import-progress", args=[job.pk])).content.decode()

    assert 'hx-trigger="every 1s"' in partial
    assert "250 of 1000 rows (25%)" in partial
    assert "25 rows/s" in partial
    assert "0:00:30 left" in partial
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.DONE, rows_done=1000)
    assert (
        "hx-trigger" not in client.get(reverse("import-progress", args=[job.pk])).content.decode()
    )


def test_the_next_file_from_a_source_is_mapped_as_saved(client, marketer):
    client.force_login(marketer)
    upload(client)
    first = ImportJob.objects.get()
    client.post(
        reverse("import-map", args=[first.pk]),
        mapping_post(first, column_4="stage", save_as="Expo badge scans"),
    )

    response = upload(client, name="expo-day-2.csv")
    second = ImportJob.objects.latest("pk")
    followed = client.get(response.url).content.decode()

    assert second.mapping["Lead Status"] == "stage"
    assert second.constants == {"campaign": "Expo 2026"}
    assert second.time_zone == "Europe/Berlin"
    assert "Mapped as “Expo badge scans”, saved before." in followed
    assert '<option value="stage" selected>' in followed


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"column_1": "email"}, "is mapped from “E-mail” already"),
        ({"column_0": ""}, "Map a column to email."),
        ({"value_maps": "stage Hot = mql"}, "write FIELD: file value = stored value"),
        ({"value_maps": "shoe: 42 = 9"}, "“shoe” is not a field of this import"),
        ({"constant_0_value": ""}, "Give the value every row gets."),
        ({"constant_0_field": "stage", "constant_0_value": "nonsense"}, "constant for stage"),
    ],
)
def test_a_mapping_that_does_not_fit_is_shown_again_with_its_errors(
    client, marketer, overrides, message
):
    client.force_login(marketer)
    upload(client)
    job = ImportJob.objects.get()
    before = dict(job.mapping)

    response = client.post(reverse("import-map", args=[job.pk]), mapping_post(job, **overrides))

    assert response.status_code == 400
    assert message in response.content.decode()
    job.refresh_from_db()
    assert (job.mapping, job.status) == (before, ImportStatus.DRAFT)


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"\x00\x01\x02PK\x03\x04garbage" * 50, "scan.csv", "not"),
        (b"", "empty.csv", "empty"),
        (b"PK\x03\x04 not really a workbook", "book.xlsx", "XLSX"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_and_nothing_stored(
    client, marketer, uploads, content, name, message
):
    client.force_login(marketer)

    response = upload(client, content=content, name=name)

    assert response.status_code == 400
    assert message.casefold() in response.content.decode().casefold()
    assert not ImportJob.objects.exists()
    assert not [path for path in uploads.rglob("*") if path.is_file()]


def test_a_queued_import_cannot_be_remapped_or_started_twice(client, marketer):
    client.force_login(marketer)
    upload(client)
    job = ImportJob.objects.get()
    client.post(reverse("import-start", args=[job.pk]))  # queued; its run not yet begun

    remap = client.get(reverse("import-map", args=[job.pk]))
    again = client.post(reverse("import-start", args=[job.pk]), {"dry_run": "1"}, follow=True)

    assert remap.status_code == 302
    assert "was started already" in again.content.decode()
    job.refresh_from_db()
    assert (job.status, job.dry_run, ImportJob.objects.count()) == ("queued", False, 1)


def test_a_failed_import_resumes_after_its_last_stored_rows(
    client, marketer, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    upload(client)
    job = ImportJob.objects.get()
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.FAILED, last_row=2, rows_done=1, error="The database went away."
    )
    page = client.get(reverse("import-detail", args=[job.pk])).content.decode()
    assert "Resume from row 3" in page

    client.post(reverse("import-resume", args=[job.pk]))

    job.refresh_from_db()
    assert job.status == ImportStatus.DONE
    # Row 2 (Ann) counted as stored before the failure: only Bo is written now.
    assert list(Lead.objects.values_list("email", flat=True)) == ["bo@acme.example"]


def test_drafts_nobody_started_are_swept_with_their_file(client, marketer, uploads):
    client.force_login(marketer)
    upload(client)
    job = ImportJob.objects.get()
    path = job.file.path
    ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - DRAFTS_KEPT)

    purged, _ = import_drafts_sweep(now=timezone.now() + timedelta(minutes=1))

    assert purged == 1
    assert not ImportJob.objects.exists()
    assert not (uploads / path).exists()


def test_an_undo_whose_message_was_lost_is_queued_again(marketer):
    other = make_user("marketer2", Role.MARKETER)
    job = ImportJob.objects.create(
        kind="leads",
        file_name="x.csv",
        created_by=other,
        status=ImportStatus.DONE,
        undo_requested_at=timezone.now() - timedelta(minutes=10),
    )

    import_drafts_sweep()

    job.refresh_from_db()
    assert job.status == ImportStatus.UNDONE


def test_words_a_pick_list_column_does_not_know_are_mapped_from_the_preview(
    client, marketer, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    upload(
        client,
        content=(
            b"Email;Status;Branche\n"
            b"a@x.example;Hot prospect;Software\n"
            b"b@x.example;Hot prospect;Maschinenbau\n"
            b"c@x.example;Kalt;Select\n"
            b"d@x.example;MQL;Software\n"
        ),
    )
    job = ImportJob.objects.get()
    client.post(
        reverse("import-map", args=[job.pk]),
        mapping_post(job, column_1="stage", column_2="industry", value_maps=""),
    )

    page = client.get(reverse("import-detail", args=[job.pk])).content.decode()

    assert "Values to map" in page
    assert "Status → Stage" in page
    assert "Branche → Company industry" in page
    # The commonest first, with how many rows hold it; known words and placeholders not.
    hot = page.index(">Hot prospect<")
    assert hot < page.index(">Kalt<")
    words = _form_words(page)
    assert sorted(words.values()) == ["Hot prospect", "Kalt", "Maschinenbau"]

    chosen = {}
    for key, word in words.items():
        target, index = key.removeprefix("word-").rsplit("-", 1)
        choice = {"Hot prospect": "mql", "Kalt": "__empty__"}.get(word, "")
        chosen[key] = word
        chosen[f"value-{target}-{index}"] = choice
    response = client.post(reverse("import-values", args=[job.pk]), chosen)

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.value_maps == {"stage": {"Hot prospect": "mql", "Kalt": ""}}
    page = client.get(reverse("import-detail", args=[job.pk])).content.decode()
    assert ">Hot prospect<" not in page
    assert ">Maschinenbau<" in page
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("import-start", args=[job.pk]))
    job.refresh_from_db()
    assert (job.created, job.failed) == (3, 1)  # Maschinenbau was left to fail
    assert Lead.objects.get(email="c@x.example").stage == "new"


def test_a_word_can_only_become_one_of_the_pick_lists_values(client, marketer):
    client.force_login(marketer)
    upload(client, content=b"Email;Status\na@x.example;Hot prospect\n")
    job = ImportJob.objects.get()
    client.post(
        reverse("import-map", args=[job.pk]),
        mapping_post(job, column_1="stage", value_maps="", constant_0_field=""),
    )

    response = client.post(
        reverse("import-values", args=[job.pk]),
        {"word-stage-1": "Hot prospect", "value-stage-1": "emperor"},
        follow=True,
    )

    assert "“emperor” is not a value of Stage." in response.content.decode()
    job.refresh_from_db()
    assert job.value_maps == {}


def _form_words(page: str) -> dict[str, str]:
    import re

    return dict(re.findall(r'<input type="hidden" name="(word-[^"]+)" value="([^"]*)">', page))


CUSTOM_FILE = (
    b"Email;Shoe size;Newsletter;Anniversary;Notes\n"
    b"a@x.example;42;yes;31.12.2020;Met at the fair\n"
    b"b@x.example;39;no;01.02.2021;\n"
)


def test_columns_become_new_custom_fields_typed_by_their_cells(
    client, marketer, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    upload(client, content=CUSTOM_FILE)
    job = ImportJob.objects.get()
    new = "__new_custom_field__"

    response = client.post(
        reverse("import-map", args=[job.pk]),
        mapping_post(job, column_1=new, column_2=new, column_3=new, column_4=new, value_maps=""),
    )

    assert response.status_code == 302
    fields = {d.label: (d.key, d.field_type) for d in CustomFieldDefinition.objects.all()}
    assert fields == {
        "Shoe size": ("shoe_size", "integer"),
        "Newsletter": ("newsletter", "boolean"),
        "Anniversary": ("anniversary", "date"),
        "Notes": ("notes", "text"),
    }
    job.refresh_from_db()
    assert job.mapping["Shoe size"] == "custom:shoe_size"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("import-start", args=[job.pk]))
    assert Lead.objects.get(email="a@x.example").custom_fields == {
        "shoe_size": 42,
        "newsletter": True,
        "anniversary": "2020-12-31",
        "notes": "Met at the fair",
    }


def test_a_mapping_that_fails_adds_no_custom_field(client, marketer):
    client.force_login(marketer)
    upload(client, content=CUSTOM_FILE)
    job = ImportJob.objects.get()

    response = client.post(
        reverse("import-map", args=[job.pk]),
        mapping_post(job, column_0="", column_1="__new_custom_field__", value_maps=""),
    )

    assert response.status_code == 400
    assert "Map a column to email." in response.content.decode()
    assert not CustomFieldDefinition.objects.exists()


def test_only_those_who_manage_custom_fields_are_offered_new_ones(client, manager, marketer):
    for person, offered in ((manager, False), (marketer, True)):
        client.force_login(person)
        upload(client, content=CUSTOM_FILE)
        job = ImportJob.objects.get(created_by=person)
        page = client.get(reverse("import-map", args=[job.pk])).content.decode()
        assert ("A new custom field" in page) is offered
    client.force_login(manager)
    job = ImportJob.objects.get(created_by=manager)

    response = client.post(
        reverse("import-map", args=[job.pk]),
        mapping_post(job, column_1="__new_custom_field__", value_maps=""),
    )

    assert response.status_code == 400
    assert "not one of the available choices" in response.content.decode()
    assert not CustomFieldDefinition.objects.exists()


def test_a_failed_import_that_stored_rows_can_be_undone(
    client, marketer, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    upload(client)
    job = ImportJob.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("import-start", args=[job.pk]))
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.FAILED, error="Disk full.")
    page = client.get(reverse("import-detail", args=[job.pk])).content.decode()
    assert "Undo this import" in page
    assert "Resume from row" in page

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("import-undo", args=[job.pk]))

    job.refresh_from_db()
    assert job.status == ImportStatus.UNDONE
    assert not Lead.objects.exists()
