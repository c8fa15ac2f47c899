"""The surfaces of imports: ``manage.py import_leads`` (summary, exit status, undo,
error file) and the admin's read-only job list with its error file, each asking the
same permission rule."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from imports.models import ImportJob, ImportMapping, ImportStatus
from leads.models import Lead

pytestmark = pytest.mark.django_db

FILE = (
    "Email Address;First Name;Last Name;Mobile;Lead Source\n"
    "ann@acme.example;ANN;LEE;+49 30 1234567;Event\n"
    "bo@acme.example;Bo;Diaz;+49 30 7654321;Select\n"
    "broken;Cy;;;\n"
)


@pytest.fixture(autouse=True)
def uploads(tmp_path, settings):
    settings.IMPORT_DIR = tmp_path / "uploads"


@pytest.fixture
def leads_file(tmp_path):
    path = tmp_path / "event.csv"
    path.write_text(FILE, encoding="utf-8")
    return path


def command(*args) -> str:
    out = io.StringIO()
    call_command("import_leads", *[str(a) for a in args], stdout=out)
    return out.getvalue()


def test_the_command_imports_with_suggested_columns_and_prints_the_counts(leads_file, tmp_path):
    errors = tmp_path / "errors.csv"

    output = command(leads_file, "--kind", "leads", "--errors", errors)

    job = ImportJob.objects.get()
    assert "Email Address → email" in output
    assert "Mobile → phone" in output
    assert output.splitlines()[-1] == (
        f"Import {job.pk} done: 2 created, 0 updated, 0 unchanged, 0 skipped, 1 failed"
    )
    ann = Lead.objects.get(email="ann@acme.example")
    assert (ann.first_name, ann.last_name, ann.source) == ("Ann", "Lee", "event")
    assert Lead.objects.get(email="bo@acme.example").source == "import"
    assert errors.read_text().splitlines()[1].startswith("broken,Cy,,,,4,")


def test_the_command_imports_a_history_twice_and_the_second_time_finds_it_stored(
    leads_file, tmp_path
):
    # Given the leads, then their history with a repeated event and an unknown person
    command(leads_file)
    history = tmp_path / "history.csv"
    history.write_text(
        "Email,Activity Type,Date\n"
        "ANN@acme.example,Page View,2024-03-01T10:00:00Z\n"
        "ann@acme.example,Email open,05.03.2024 09:30\n"
        "ann@acme.example,Email open,05.03.2024 09:30\n"
        "bo@acme.example,Demo request,2024-02-10 08:00\n"
        "nobody@acme.example,Call,2024-02-11 08:00\n",
        encoding="utf-8",
    )

    # When the history is imported, and then again
    first = command(history, "--kind", "activities").splitlines()[-1]
    again = command(history, "--kind", "activities").splitlines()[-1]

    # Then the events are stored once, the repeat and the unknown person counted, and
    # each lead's first and last activity times cover its events
    assert first.endswith("done: 3 created, 0 updated, 1 unchanged, 0 skipped, 1 failed")
    assert again.endswith("done: 0 created, 0 updated, 4 unchanged, 0 skipped, 1 failed")
    ann = Lead.objects.get(email="ann@acme.example")
    assert ann.activities.count() == 2
    assert (ann.first_activity_at.isoformat(), ann.last_activity_at.isoformat()) == (
        "2024-03-01T10:00:00+00:00",
        "2024-03-05T09:30:00+00:00",
    )
    bo = Lead.objects.get(email="bo@acme.example")
    assert bo.first_activity_at == bo.last_activity_at == bo.activities.get().occurred_at


def test_the_command_maps_columns_and_takes_constants_and_a_dry_run(leads_file):
    output = command(
        leads_file,
        "--map",
        "Email Address=email,Last Name=last_name",
        "--const",
        "source=partner,campaign=Q3 list",
        "--dry-run",
    )

    assert "2 created" in output
    assert "(dry run: nothing stored)" in output
    assert not Lead.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--map", "Mail=email"], "The file has no column “Mail”"),
        (["--map", "Email Address=shoe_size"], "not a field of a leads import"),
        (["--kind", "deals", "--map", "Email Address=email"], "Map a column to name"),
    ],
)
def test_a_bad_mapping_exits_with_the_reason_and_stores_nothing(leads_file, args, message):
    with pytest.raises(CommandError, match=message):
        command(leads_file, *args)
    assert not ImportJob.objects.exists()


def test_a_bad_file_exits_with_the_reason(tmp_path):
    path = tmp_path / "photo.csv"
    path.write_bytes(bytes(range(256)) * 4)

    with pytest.raises(CommandError, match="not a CSV or XLSX"):
        command(path)
    with pytest.raises(CommandError, match="No file"):
        command(tmp_path / "missing.csv")
    assert not ImportJob.objects.exists()


def test_the_command_undoes_an_import_and_reports_what_it_left(leads_file):
    command(leads_file)
    job = ImportJob.objects.get()
    Lead.objects.filter(email="bo@acme.example").update(job_title="Buyer")

    output = command("--undo", job.pk)

    assert "1 left as they changed since" in output
    assert "first_name" not in output  # the edit since was the title, not a field it wrote
    assert list(Lead.objects.values_list("email", flat=True)) == ["bo@acme.example"]
    job.refresh_from_db()
    assert job.status == ImportStatus.UNDONE


def test_a_rep_cannot_import_through_the_command(leads_file, rep):
    with pytest.raises(CommandError, match="managers, marketers and admins"):
        command(leads_file, "--user", rep.username)
    assert not ImportJob.objects.exists()
    assert not Lead.objects.exists()


def test_the_admin_lists_jobs_with_progress_and_serves_the_error_file(client, marketer, leads_file):
    command(leads_file)
    job = ImportJob.objects.get()
    client.force_login(marketer)

    listing = client.get(reverse("admin:imports_importjob_changelist"))
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "3 / 3 rows (100%)" in page
    assert reverse("admin:imports_importjob_errors", args=[job.pk]) in page

    errors = client.get(reverse("admin:imports_importjob_errors", args=[job.pk]))
    assert errors.status_code == 200
    assert errors["Content-Type"] == "text/csv"
    body = b"".join(errors.streaming_content).decode()
    assert body.splitlines()[0] == "Email Address,First Name,Last Name,Mobile,Lead Source,Row,Error"
    assert "“broken” is not an email address" in body

    # The admin never changes a job: no add, no edit, no delete
    change = client.post(reverse("admin:imports_importjob_change", args=[job.pk]), {})
    assert change.status_code == 403
    assert client.get(reverse("admin:imports_importjob_add")).status_code == 403


def test_reps_see_no_imports_in_the_admin(client, rep, marketer, leads_file):
    command(leads_file)
    job = ImportJob.objects.get()
    rep.is_staff = True
    rep.save(update_fields=["is_staff"])
    client.force_login(rep)

    assert client.get(reverse("admin:imports_importjob_changelist")).status_code == 403
    assert client.get(reverse("admin:imports_importjob_errors", args=[job.pk])).status_code == 403


def test_a_manager_sees_only_their_own_imports_in_the_admin(client, manager, leads_file):
    command(leads_file)  # run by nobody in particular
    manager.is_staff = True
    manager.save(update_fields=["is_staff"])
    client.force_login(manager)

    listing = client.get(reverse("admin:imports_importjob_changelist"))

    assert listing.status_code == 200
    assert "0 import jobs" in listing.content.decode()


def test_the_admin_undoes_the_selected_imports_and_names_those_it_cannot(
    client, marketer, leads_file, django_capture_on_commit_callbacks
):
    command(leads_file)
    command(leads_file, "--dry-run")
    done, dry = ImportJob.objects.order_by("pk")
    client.force_login(marketer)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:imports_importjob_changelist"),
            {"action": "undo_imports", "_selected_action": [done.pk, dry.pk]},
            follow=True,
        )

    page = response.content.decode()
    assert f"Undo queued for import {done.pk}" in page
    assert f"Import {dry.pk}: A dry run stored nothing, so there is nothing to undo." in page
    done.refresh_from_db()
    assert done.status == ImportStatus.UNDONE
    assert not Lead.objects.exists()


def test_saved_mappings_are_kept_in_the_admin_for_those_who_import(client, marketer, rep):
    saved = ImportMapping.objects.create(
        name="Old CRM export", kind="leads", mapping={"Mail": "email"}, headers=["Mail"]
    )
    client.force_login(marketer)
    listing = client.get(reverse("admin:imports_importmapping_changelist"))
    assert listing.status_code == 200
    assert "Old CRM export" in listing.content.decode()
    assert client.get(reverse("admin:imports_importmapping_add")).status_code == 403

    client.force_login(rep)
    url = reverse("admin:imports_importmapping_change", args=[saved.pk])
    assert client.get(url).status_code in (302, 403)
    assert client.post(
        reverse("admin:imports_importmapping_delete", args=[saved.pk]), {"post": "yes"}
    ).status_code in (302, 403)
    assert ImportMapping.objects.filter(pk=saved.pk).exists()


def test_the_command_saves_a_mapping_for_a_source_and_maps_the_next_file_with_it(
    leads_file, tmp_path
):
    command(
        leads_file,
        "--map",
        "Email Address=email,Last Name=last_name,Lead Source=source",
        "--value-map",
        '{"source": {"Event": "event", "Select": "partner"}}',
        "--save-mapping",
        "Expo scans",
    )
    Lead.objects.all().delete()
    second = tmp_path / "expo-day-2.csv"
    second.write_text(
        "Email Address;Last Name;Lead Source;Badge\ncy@acme.example;Wu;Select;B-7\n",
        encoding="utf-8",
    )

    output = command(second, "--mapping", "Expo scans", "--const", "campaign=Day 2")

    mapped = output.splitlines()[0].partition("; ")[2].split(", ")
    assert sorted(mapped) == [
        "Email Address → email",
        "Last Name → last_name",
        "Lead Source → source",
    ]
    cy = Lead.objects.get()
    assert (cy.email, cy.last_name, cy.source, cy.campaign) == (
        "cy@acme.example",
        "Wu",
        "partner",
        "Day 2",
    )


def test_the_command_refuses_an_unknown_saved_mapping(leads_file):
    with pytest.raises(CommandError, match="No leads mapping is saved as “Nope”"):
        command(leads_file, "--mapping", "Nope")
    assert not ImportJob.objects.exists()


def test_imported_leads_are_held_out_of_the_hourly_nurture_sweep_unless_asked(leads_file):
    from nurturing.enrollment import sequences_enroll_matching
    from nurturing.models import AutoEnrollHold, Enrollment, Sequence, SequenceStatus, Step

    sequence = Sequence.objects.create(
        name="Welcome", status=SequenceStatus.ACTIVE, auto_enroll=True, sources=[]
    )
    Step.objects.create(sequence=sequence, position=1, subject="Hi", body_text="Hello")
    command(leads_file)

    assert sequences_enroll_matching() == 0
    assert not Enrollment.objects.exists()

    second = leads_file.with_name("partners.csv")
    second.write_text("Email Address;Last Name\ncy@partner.example;Wu\n", encoding="utf-8")
    command(second, "--nurture")

    assert sequences_enroll_matching() == 1
    assert Enrollment.objects.get().lead.email == "cy@partner.example"
    # Released from their hold (the admin deletes it), the first file's leads enter.
    AutoEnrollHold.objects.all().delete()
    assert sequences_enroll_matching() == 2
