"""Export jobs: a large export of leads written by a worker, followed and downloaded
through the leads list and the REST API; who may see and download it; the outbox, the
failure path, starting over and expiry."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import threading

import openpyxl
import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.utils import timezone

from crm.models import Role, Team
from leads import export_jobs
from leads.export_jobs import export_job_create, export_job_run, export_jobs_sweep
from leads.handoff_models import Notification
from leads.models import CustomFieldDefinition, ExportJob, ExportStatus
from leads.tasks import export_sweep
from tests.api_client import error_of, token_client
from tests.conftest import make_user
from tests.factories import LeadFactory
from tests.test_api_broker_down import broker_down  # noqa: F401  # a fixture

pytestmark = pytest.mark.django_db

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(autouse=True)
def _exports(settings, tmp_path):
    settings.EXPORT_DIR = tmp_path / "exports"
    settings.EXPORT_INLINE_MAX = 2


@pytest.fixture
def leads(rep, other_rep):
    return [
        LeadFactory(owner=rep, first_name="Ann", last_name="Able", score=30),
        LeadFactory(owner=other_rep, first_name="Ben", last_name="Baker", score=20),
        LeadFactory(owner=rep, first_name="Cid", last_name="Carter", score=10),
    ]


@pytest.fixture
def south_manager(db):
    south = Team.objects.create(name="South")
    boss = make_user("south_manager", Role.MANAGER, team=south)
    south.manager = boss
    south.save(update_fields=["manager"])
    return boss


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def workbook_rows(body: bytes) -> list[tuple]:
    sheet = openpyxl.load_workbook(io.BytesIO(body), read_only=True).worksheets[0]
    return list(sheet.iter_rows(values_only=True))


def downloaded(response) -> bytes:
    assert response.status_code == 200, response
    return b"".join(response.streaming_content)


def a_job(user, *, query="", file_format="csv", columns=("id", "last_name")) -> ExportJob:
    return export_job_create(
        by=user, source="workspace", query=query, columns=columns, file_format=file_format
    )


# --- The leads list ---------------------------------------------------------------------


def test_an_xlsx_export_of_up_to_the_limit_is_answered_at_once(manager, rep):
    LeadFactory.create_batch(2, owner=rep)  # HOTLIST_EXPORT_INLINE_MAX, exactly

    response = signed_in(manager).get("/leads/export.xlsx")

    assert response["Content-Type"] == XLSX_TYPE
    assert len(workbook_rows(downloaded(response))) == 3
    assert not ExportJob.objects.exists()


def test_a_large_xlsx_export_from_the_list_is_prepared_then_downloaded(
    manager, leads, django_capture_on_commit_callbacks
):
    client = signed_in(manager)

    offer = client.get("/leads/export.xlsx?sort=name&cols=phone")
    assert offer.status_code == 200
    assert b"Prepare the XLSX file" in offer.content
    assert not ExportJob.objects.exists()  # a GET asks for nothing
    with django_capture_on_commit_callbacks(execute=True):
        asked = client.post("/leads/exports/", {"format": "xlsx", "query": "sort=name&cols=phone"})
    job = ExportJob.objects.get()
    assert asked.status_code == 302
    assert asked["Location"] == f"/leads/exports/{job.pk}/"
    page = client.get(asked["Location"])
    assert b"ready" in page.content
    assert b"noscript" not in page.content  # finished: no more reloading
    file = client.get(f"/leads/exports/{job.pk}/download/")

    assert job.status == ExportStatus.DONE
    assert (job.requested_by, job.source, job.file_format) == (manager, "workspace", "xlsx")
    assert (job.total_rows, job.rows_written, job.percent) == (3, 3, 100)
    assert job.expires_at > timezone.now()
    assert file["Content-Type"] == XLSX_TYPE
    assert file["Content-Disposition"].startswith('attachment; filename="leads-')
    rows = workbook_rows(downloaded(file))
    assert "phone" in rows[0]
    assert "utm_source" not in rows[0]  # the list's chosen columns
    name = rows[0].index("last_name")
    assert [row[name] for row in rows[1:]] == ["Able", "Baker", "Carter"]  # sorted by name
    notice = Notification.objects.get(user=manager, kind="export")
    assert notice.title == "Your export is ready"
    assert notice.url == f"/leads/exports/{job.pk}/"


def test_with_htmx_the_list_swaps_in_a_panel_that_polls_until_the_file_is_ready(
    manager, leads, django_capture_on_commit_callbacks
):
    client = signed_in(manager)
    with django_capture_on_commit_callbacks(execute=False):  # not run yet: queued
        panel = client.post(
            "/leads/exports/", {"format": "csv", "query": "band=hot"}, HTTP_HX_REQUEST="true"
        )
    job = ExportJob.objects.get()
    assert panel.status_code == 200
    assert b'id="export-job"' in panel.content
    assert f'hx-get="/leads/exports/{job.pk}/"'.encode() in panel.content
    assert b"Waiting for a worker" in panel.content
    assert b"<html" not in panel.content

    export_job_run(job_id=job.pk)
    done = client.get(f"/leads/exports/{job.pk}/", HTTP_HX_REQUEST="true")

    assert b"hx-get" not in done.content  # stops polling
    assert f"/leads/exports/{job.pk}/download/".encode() in done.content


def test_without_javascript_the_job_page_reloads_itself_while_the_file_is_written(
    manager, leads, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job = a_job(manager)

    page = signed_in(manager).get(f"/leads/exports/{job.pk}/")

    assert page.status_code == 200
    assert b'<noscript><meta http-equiv="refresh" content="5"></noscript>' in page.content
    assert signed_in(manager).get(f"/leads/exports/{job.pk}/download/").status_code == 409


def test_the_list_offers_to_prepare_a_file_with_its_filters_and_columns(manager, leads):
    page = signed_in(manager).get("/leads/?band=hot&cols=phone")

    assert b'action="/leads/exports/"' in page.content
    assert b'name="query" value="band=hot&amp;cols=phone"' in page.content


def test_bad_export_requests_are_refused_and_store_nothing(manager, rep, leads):
    client = signed_in(manager)

    wrong_format = client.post("/leads/exports/", {"format": "pdf", "query": ""})
    bad_filter = client.post("/leads/exports/", {"format": "csv", "query": "score_min=abc"})
    by_rep = signed_in(rep).post("/leads/exports/", {"format": "csv", "query": ""})

    assert wrong_format.status_code == 400
    assert bad_filter.status_code == 302
    assert client.get(bad_filter["Location"]).status_code == 400  # the list, with its errors
    assert by_rep.status_code == 403
    assert not ExportJob.objects.exists()


def test_asking_twice_while_the_first_waits_gives_the_same_job(
    manager, leads, django_capture_on_commit_callbacks
):
    client = signed_in(manager)
    with django_capture_on_commit_callbacks(execute=False):
        client.post("/leads/exports/", {"format": "csv", "query": "band=hot"})
        client.post("/leads/exports/", {"format": "csv", "query": "band=hot"})
        client.post("/leads/exports/", {"format": "xlsx", "query": "band=hot"})

    assert ExportJob.objects.count() == 2


# --- Who sees and downloads a job ---------------------------------------------------------


def test_only_the_requester_and_admins_see_and_download_a_job(
    manager, rep, marketer, south_manager, admin_user, leads
):
    job = a_job(manager)
    export_job_run(job_id=job.pk)
    pages = (f"/leads/exports/{job.pk}/", f"/leads/exports/{job.pk}/download/")
    api = (f"/api/v1/export-jobs/{job.pk}/", f"/api/v1/export-jobs/{job.pk}/download/")

    for person in (south_manager, marketer):
        client, rest = signed_in(person), token_client(person)
        assert [client.get(page).status_code for page in pages] == [404, 404]
        assert [rest.get(path).status_code for path in api] == [404, 404]
        assert rest.get("/api/v1/export-jobs/").json()["results"] == []
    assert [signed_in(rep).get(page).status_code for page in pages] == [404, 404]
    assert [token_client(rep).get(path).status_code for path in api] == [403, 403]
    assert downloaded(signed_in(admin_user).get(pages[1])).startswith(codecs.BOM_UTF8)
    assert token_client(admin_user).get(api[0]).json()["id"] == job.pk
    assert signed_in(manager).get(pages[1]).status_code == 200


def test_a_job_runs_with_what_its_requester_sees_when_it_runs(
    manager, rep, leads, south_manager, django_capture_on_commit_callbacks
):
    LeadFactory(owner=make_user("south_rep", Role.REP, team=south_manager.team), last_name="Zed")
    with django_capture_on_commit_callbacks(execute=False):
        job = a_job(manager)
    LeadFactory(owner=rep, last_name="Later")  # added after the request: in the file

    export_job_run(job_id=job.pk)
    job.refresh_from_db()

    body = downloaded(signed_in(manager).get(f"/leads/exports/{job.pk}/download/"))
    names = [row["last_name"] for row in csv.DictReader(io.StringIO(body.decode("utf-8-sig")))]
    assert sorted(names) == ["Able", "Baker", "Carter", "Later"]  # South's Zed is not


def test_a_requester_who_may_no_longer_export_gets_no_file(
    manager, leads, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job = a_job(manager)
    manager.groups.set([Group.objects.get(name=Role.REP.label)])

    export_job_run(job_id=job.pk)
    job.refresh_from_db()

    assert job.status == ExportStatus.FAILED
    assert job.error == "Exporting leads is for managers, marketers and admins."
    assert not job.file_name
    assert not list(settings.EXPORT_DIR.glob("*"))


# --- The REST API ------------------------------------------------------------------------


def test_the_api_answers_a_large_xlsx_export_with_202_and_the_job(
    manager, leads, django_capture_on_commit_callbacks
):
    client = token_client(manager)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.get("/api/v1/leads/export/?format=xlsx&ordering=last_name&search=a")

    job = ExportJob.objects.get()
    assert answer.status_code == 202
    assert answer["Location"] == f"http://testserver/api/v1/export-jobs/{job.pk}/"
    assert answer.json()["status"] == "queued"  # as it was when answered
    followed = client.get(answer["Location"]).json()
    assert followed["status"] == "done"
    assert (followed["rows_written"], followed["total_rows"], followed["percent"]) == (3, 3, 100)
    assert followed["format"] == "xlsx"
    file = client.get(followed["links"]["download"])
    assert file["Content-Type"] == XLSX_TYPE
    rows = workbook_rows(downloaded(file))
    assert [row[rows[0].index("last_name")] for row in rows[1:]] == ["Able", "Baker", "Carter"]
    notice = Notification.objects.get(user=manager, kind="export")
    assert notice.url == f"/leads/exports/{job.pk}/"  # the app's page of any job of theirs
    assert b"ready" in signed_in(manager).get(notice.url).content


def test_the_api_answers_small_exports_at_once_and_posts_always_make_a_job(
    manager, rep, django_capture_on_commit_callbacks
):
    LeadFactory(owner=rep)
    client = token_client(manager)

    small = client.get("/api/v1/leads/export/?format=xlsx")
    with django_capture_on_commit_callbacks(execute=True):
        posted = client.post("/api/v1/leads/export/?format=csv&columns=id,email")

    assert small.status_code == 200
    assert small["Content-Type"] == XLSX_TYPE
    assert posted.status_code == 202
    job = ExportJob.objects.get()
    assert (job.source, job.columns) == ("api", ["id", "email"])
    body = downloaded(client.get(f"/api/v1/export-jobs/{job.pk}/download/"))
    assert body.decode("utf-8-sig").splitlines()[0] == "id,email"


def test_the_api_refuses_bad_exports_and_reps(manager, rep):
    bad = token_client(manager).post("/api/v1/leads/export/?columns=nope")
    refused = token_client(rep).post("/api/v1/leads/export/")

    assert bad.status_code == 400
    assert error_of(bad)["fields"]["columns"] == ["Unknown column: nope."]
    assert refused.status_code == 403
    assert not ExportJob.objects.exists()


# --- Failure, the outbox, starting over, expiry -------------------------------------------


def test_a_failing_export_is_recorded_told_and_leaves_no_file(
    manager, leads, settings, monkeypatch
):
    def broken(**kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_jobs, "csv_chunks", broken)
    job = a_job(manager)

    export_job_run(job_id=job.pk)
    job.refresh_from_db()

    assert job.status == ExportStatus.FAILED
    assert job.error == "The export stopped (OSError). Ask for it again."
    assert job.path is None
    assert not list(settings.EXPORT_DIR.glob("*"))
    assert Notification.objects.get(user=manager, kind="export").title == "Your export failed"
    page = signed_in(manager).get(f"/leads/exports/{job.pk}/")
    assert b"The export stopped (OSError)" in page.content


def test_a_custom_field_deleted_before_the_run_fails_the_job_by_name(manager, leads):
    CustomFieldDefinition.objects.create(key="fleet_size", label="Fleet size")
    job = a_job(manager, columns=["id", "custom.fleet_size"])
    CustomFieldDefinition.objects.all().delete()

    export_job_run(job_id=job.pk)
    job.refresh_from_db()

    assert (job.status, job.error) == (ExportStatus.FAILED, "Unknown column: custom.fleet_size.")


def test_a_request_made_while_redis_is_down_is_kept_and_sent_by_the_sweeper(
    manager,
    leads,
    broker_down,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        answer = signed_in(manager).post("/leads/exports/", {"format": "csv", "query": ""})
    job = ExportJob.objects.get()
    assert answer.status_code == 302
    assert job.status == ExportStatus.QUEUED

    broker_down()  # Redis is back
    export_jobs_sweep(now=timezone.now() + dt.timedelta(minutes=1))
    assert ExportJob.objects.get().status == ExportStatus.QUEUED  # not lost yet: waits
    export_sweep.apply(kwargs={})  # as beat: now, too soon
    export_jobs_sweep(now=timezone.now() + dt.timedelta(minutes=6))

    job.refresh_from_db()
    assert job.status == ExportStatus.DONE
    assert job.rows_written == 3


def test_a_run_whose_worker_died_starts_over_and_is_given_up_after_three(manager, leads):
    job = a_job(manager)
    long_ago = timezone.now() - dt.timedelta(hours=1)
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportStatus.RUNNING, started_at=long_ago, progress_at=long_ago, attempts=1
    )

    swept = export_jobs_sweep()
    job.refresh_from_db()

    assert swept["restarted"] == 1
    assert (job.status, job.attempts, job.rows_written) == (ExportStatus.DONE, 2, 3)

    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportStatus.RUNNING, started_at=long_ago, progress_at=long_ago, attempts=3
    )
    export_jobs_sweep()
    job.refresh_from_db()
    assert job.status == ExportStatus.FAILED
    assert job.error == "The export stopped 3 times. Ask for it again."


def test_files_past_their_keeping_time_are_deleted_and_the_job_kept(manager, leads):
    job = a_job(manager)
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    path = job.path
    assert path is not None
    assert path.exists()

    export_jobs_sweep(now=timezone.now() + dt.timedelta(hours=71))
    assert path.exists()
    export_sweep.apply()
    swept = export_jobs_sweep(now=timezone.now() + dt.timedelta(hours=73))
    job.refresh_from_db()

    assert swept["expired"] == 1
    assert not path.exists()
    assert (job.status, job.file_name) == (ExportStatus.EXPIRED, "")
    assert signed_in(manager).get(f"/leads/exports/{job.pk}/download/").status_code == 410
    gone = token_client(manager).get(f"/api/v1/export-jobs/{job.pk}/download/")
    assert (gone.status_code, error_of(gone)["code"]) == (410, "gone")
    assert b"Open the list" in signed_in(manager).get(f"/leads/exports/{job.pk}/").content


# --- Admin ---------------------------------------------------------------------------------


def test_the_admin_shows_jobs_read_only_to_their_requester_and_admins(
    manager, marketer, admin_user, leads
):
    job = a_job(manager)
    export_job_run(job_id=job.pk)
    mine = a_job(marketer, file_format="xlsx")
    staff = signed_in(marketer)

    listing = staff.get("/admin/leads/exportjob/")
    opened = staff.get(f"/admin/leads/exportjob/{job.pk}/change/")
    as_admin = signed_in(admin_user).get(f"/admin/leads/exportjob/{job.pk}/change/")

    assert listing.status_code == 200
    assert [row.pk for row in listing.context["cl"].result_list] == [mine.pk]
    assert opened.status_code == 302  # another's: "does not exist"
    assert as_admin.status_code == 200
    assert b'name="_save"' not in as_admin.content
    assert f"/leads/exports/{job.pk}/download/".encode() in as_admin.content
    assert signed_in(admin_user).post(f"/admin/leads/exportjob/{job.pk}/delete/").status_code == 403
    assert ExportJob.objects.filter(pk=job.pk).exists()


# --- Progress, as another process sees it -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_to_others_while_the_file_is_written(manager, rep, monkeypatch):
    for number in range(7):
        LeadFactory(owner=rep, last_name=f"Lead {number}")
    monkeypatch.setattr(export_jobs, "PROGRESS_ROWS", 2)
    seen: list[int] = []

    def watched(*, header, rows):
        for count, _row in enumerate(rows, start=1):
            if count == 5:
                seen.append(_read_elsewhere())
        yield b"written"

    monkeypatch.setattr(export_jobs, "csv_chunks", watched)
    job = a_job(manager)  # run at once: no transaction to wait for

    assert seen == [4]  # rows counted before the fifth, committed by then
    job.refresh_from_db()
    assert (job.status, job.rows_written) == (ExportStatus.DONE, 7)


def _read_elsewhere() -> int:
    """The job's count as another connection (another process) reads it."""
    found: list[int] = []

    def read() -> None:
        try:
            found.append(ExportJob.objects.values_list("rows_written", flat=True).get())
        finally:
            connection.close()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    return found[0]
