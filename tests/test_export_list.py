"""The page of past exports (/leads/exports/): each job's status, rows, when it was asked
for and until when its file is kept, its download while the file exists, a failed one's
reason; whose jobs each role sees, the same as the REST API's list."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.shortcuts import resolve_url
from django.test import Client
from django.utils import timezone

from leads.export_jobs import export_job_create, export_job_run, export_jobs_expire
from leads.models import ExportJob, ExportStatus
from tests.api_client import token_client
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _exports(settings, tmp_path):
    settings.EXPORT_DIR = tmp_path / "exports"
    settings.EXPORT_KEEP_HOURS = 48


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def a_job(user, *, query="") -> ExportJob:
    return export_job_create(
        by=user, source="workspace", query=query, columns=["id", "email"], file_format="csv"
    )


def row_of(page: str, job: ExportJob) -> str:
    found = re.search(rf'<tr id="export-{job.pk}">(.*?)</tr>', page, re.S)
    assert found, f"export {job.pk} is not listed"
    return found.group(1)


def listed(page: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="export-(\d+)">', page)]


def test_the_page_shows_each_export_with_its_status_rows_dates_and_file(manager, rep):
    LeadFactory.create_batch(3, owner=rep)
    expired = a_job(manager, query="sort=name")
    export_job_run(job_id=expired.pk)
    export_jobs_expire(now=timezone.now() + dt.timedelta(hours=49))
    failed = a_job(manager, query="score_min=abc")  # filters no longer valid at run time
    export_job_run(job_id=failed.pk)
    done = a_job(manager)
    export_job_run(job_id=done.pk)
    waiting = a_job(manager, query="band=hot")

    response = signed_in(manager).get("/leads/exports/")
    page = response.content.decode()

    assert response.status_code == 200
    assert listed(page) == [waiting.pk, done.pk, failed.pk, expired.pk]
    done.refresh_from_db()
    ready = row_of(page, done)
    assert "Ready" in ready
    assert "3 of 3" in ready
    assert f'href="/leads/exports/{done.pk}/download/"' in ready
    assert f'datetime="{timezone.localtime(done.expires_at).isoformat()}' in ready
    assert f'datetime="{timezone.localtime(done.created_at).isoformat()}' in ready
    refused = row_of(page, failed)
    assert "Failed" in refused
    assert "Nothing was exported: correct the filters first." in refused
    assert "/download/" not in refused
    gone = row_of(page, expired)
    assert "Expired" in gone
    assert "/download/" not in gone
    queued = row_of(page, waiting)
    assert "48 hours once written" in queued
    assert "/download/" not in queued
    assert "kept 48 hours after it is written" in page


def test_the_download_link_leads_to_the_file(manager, rep):
    LeadFactory(owner=rep, email="ann@north.example")
    job = a_job(manager)
    export_job_run(job_id=job.pk)
    client = signed_in(manager)

    link = re.search(
        r'href="(/leads/exports/\d+/download/)"', client.get("/leads/exports/").content.decode()
    )
    file = client.get(link.group(1))

    assert file.status_code == 200
    assert b"ann@north.example" in b"".join(file.streaming_content)


@pytest.mark.parametrize(
    ("persona", "sees"),
    [
        ("manager", ["manager"]),
        ("marketer", ["marketer"]),
        ("admin_user", ["admin_user", "marketer", "manager"]),
    ],
)
def test_each_sees_their_own_exports_and_admins_all_as_the_api_lists_them(
    request, manager, marketer, admin_user, persona, sees
):
    owners = {"manager": manager, "marketer": marketer, "admin_user": admin_user}
    jobs = {name: a_job(user, query=f"q={name}") for name, user in owners.items()}
    user = owners[persona]

    page = signed_in(user).get("/leads/exports/").content.decode()
    api = token_client(user).get("/api/v1/export-jobs/").json()

    expected = [jobs[name].pk for name in sees]
    assert listed(page) == expected
    assert [job["id"] for job in api["results"]] == expected
    # Who asked is shown only beside other people's exports
    assert ('<th scope="col">By</th>' in page) == (persona == "admin_user")


@pytest.mark.parametrize("persona", ["rep", "outsider"])
def test_people_who_do_not_export_are_refused_the_page(request, manager, persona):
    job = a_job(manager)
    user = request.getfixturevalue(persona)

    response = signed_in(user).get("/leads/exports/")

    assert response.status_code == 403
    assert f"export-{job.pk}".encode() not in response.content


def test_signed_out_the_page_asks_to_sign_in(manager, settings):
    response = Client().get("/leads/exports/")

    assert response.status_code == 302
    login = resolve_url(settings.LOGIN_URL)
    assert response["Location"].startswith(f"{login}?next=/leads/exports/")


def test_an_empty_page_says_where_exports_come_from(manager):
    page = signed_in(manager).get("/leads/exports/").content.decode()

    assert "No exports yet" in page
    assert listed(page) == []


def test_the_lists_export_control_and_a_jobs_page_link_to_the_exports(manager, rep):
    LeadFactory(owner=rep)
    job = a_job(manager)
    client = signed_in(manager)

    assert 'href="/leads/exports/">Past exports</a>' in client.get("/leads/").content.decode()
    assert (
        'href="/leads/exports/">← Exports</a>'
        in client.get(f"/leads/exports/{job.pk}/").content.decode()
    )


def test_a_rep_is_not_offered_the_exports(rep):
    LeadFactory(owner=rep)

    assert "/leads/exports/" not in signed_in(rep).get("/leads/").content.decode()


def test_an_admin_export_job_page_links_back_to_the_admins_filtered_list(manager, rep, settings):
    job = ExportJob.objects.create(
        requested_by=manager,
        source="admin",
        query="stage=mql&_selected_action=1&_selected_action=2",
        file_format="csv",
        columns=["id"],
        status=ExportStatus.EXPIRED,
    )

    page = signed_in(manager).get(f"/leads/exports/{job.pk}/").content.decode()

    assert 'href="/admin/leads/lead/?stage=mql">' in page
