"""The lead admin's "Export selected leads (CSV)" over HTTP: a small selection is the
file at once, a large one an export job written by the worker, holding exactly the
selected leads the person sees, with the columns of every other export surface."""

from __future__ import annotations

import codecs
import csv
import io
import re

import pytest
from django.test import Client

from crm.models import Role, Team
from leads.export_jobs import export_job_run
from leads.exports import export_columns
from leads.models import ExportJob, ExportStatus, Lead, Stage
from tests.conftest import make_user
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/leads/lead/"


@pytest.fixture(autouse=True)
def _exports(settings, tmp_path):
    settings.EXPORT_DIR = tmp_path / "exports"
    settings.EXPORT_INLINE_MAX = 2


@pytest.fixture
def leads(rep, other_rep):
    """Three North leads, hottest first, and one of another team's rep."""
    south = Team.objects.create(name="South")
    seller = make_user("south_rep", Role.REP, team=south)
    return {
        "ann": LeadFactory(owner=rep, email="ann@north.example", score=30),
        "ben": LeadFactory(owner=other_rep, email="ben@north.example", score=20),
        "cid": LeadFactory(owner=rep, email="cid@north.example", score=10, stage=Stage.MQL),
        "zed": LeadFactory(owner=seller, email="zed@south.example", score=90),
    }


def staff_client(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def export_action(client: Client, selected, *, query: str = "", select_across=False):
    data = {"action": "export_csv", "_selected_action": [lead.pk for lead in selected], "index": 0}
    if select_across:
        data["select_across"] = "1"
    return client.post(CHANGELIST + (f"?{query}" if query else ""), data)


def csv_body(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response
    body = b"".join(response.streaming_content)
    assert body.startswith(codecs.BOM_UTF8)
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def job_file(client: Client, job: ExportJob) -> list[dict[str, str]]:
    response = client.get(f"/leads/exports/{job.pk}/download/")
    assert response["Content-Disposition"].startswith('attachment; filename="leads-')
    return csv_body(response)


def test_a_small_selection_is_the_file_at_once_with_every_export_column(manager, leads):
    response = export_action(staff_client(manager), [leads["ann"], leads["ben"]])

    rows = csv_body(response)
    assert [row["email"] for row in rows] == ["ann@north.example", "ben@north.example"]
    assert list(rows[0]) == [column.name for column in export_columns()]
    assert not ExportJob.objects.exists()


def test_a_large_selection_becomes_a_job_linked_from_the_changelist(
    manager, leads, django_capture_on_commit_callbacks
):
    client = staff_client(manager)
    ticked = [leads["cid"], leads["ann"], leads["zed"], leads["ben"]]

    with django_capture_on_commit_callbacks(execute=True):
        response = export_action(client, ticked)
    job = ExportJob.objects.get()
    page = client.get(response["Location"]).content.decode()

    assert response.status_code == 302
    assert (job.requested_by, job.source, job.file_format) == (manager, "admin", "csv")
    assert job.columns == [column.name for column in export_columns()]
    assert re.search(rf'<a href="/leads/exports/{job.pk}/">export {job.pk}</a>', page)
    job.refresh_from_db()
    assert job.status == ExportStatus.DONE
    rows = job_file(client, job)
    # The ticked leads the manager sees, in the changelist's order; the South one is not
    assert [row["email"] for row in rows] == [
        "ann@north.example",
        "ben@north.example",
        "cid@north.example",
    ]
    assert list(rows[0]) == job.columns


def test_select_all_with_filters_exports_every_matching_lead_seen(
    manager, leads, django_capture_on_commit_callbacks
):
    for number in range(3):
        LeadFactory(owner=manager, email=f"m{number}@north.example", stage=Stage.MQL)
    LeadFactory(owner=None, email="pool@north.example", stage=Stage.SQL)
    client = staff_client(manager)

    with django_capture_on_commit_callbacks(execute=True):
        export_action(client, [leads["cid"]], query="stage=mql", select_across=True)
    job = ExportJob.objects.get()

    assert job.query == "stage=mql"
    emails = sorted(row["email"] for row in job_file(client, job))
    assert emails == sorted(
        Lead.objects.filter(stage=Stage.MQL)
        .exclude(pk=leads["zed"].pk)
        .values_list("email", flat=True)
    )
    assert len(emails) == 4


def test_a_lead_that_left_the_view_before_the_run_is_not_in_the_file(
    manager, leads, other_rep, django_capture_on_commit_callbacks
):
    client = staff_client(manager)
    export_action(client, [leads["ann"], leads["ben"], leads["cid"]])  # queued, not run
    job = ExportJob.objects.get()
    other_rep.team = None
    other_rep.save(update_fields=["team"])  # Ben's owner leaves the manager's team

    export_job_run(job_id=job.pk)

    emails = [row["email"] for row in job_file(client, job)]
    assert emails == ["ann@north.example", "cid@north.example"]


def test_a_rep_gets_neither_file_nor_job(rep, leads):
    response = export_action(staff_client(rep), [leads["ann"], leads["cid"], leads["ben"]])

    assert response.status_code == 200
    assert "Content-Disposition" not in response
    assert not ExportJob.objects.exists()


def test_an_outsider_gets_neither_file_nor_job(outsider, leads):
    response = export_action(
        staff_client(outsider), [leads["ann"], leads["cid"], leads["ben"]], select_across=True
    )

    assert response.status_code == 403
    assert "Content-Disposition" not in response
    assert not ExportJob.objects.exists()


def test_someone_else_cannot_follow_the_admins_job(
    marketer, manager, leads, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        export_action(staff_client(marketer), list(leads.values()), select_across=True)
    job = ExportJob.objects.get()

    other = staff_client(manager)

    assert job.source == "admin"
    assert other.get(f"/leads/exports/{job.pk}/").status_code == 404
    assert other.get(f"/leads/exports/{job.pk}/download/").status_code == 404
    assert len(job_file(staff_client(marketer), job)) == 4
