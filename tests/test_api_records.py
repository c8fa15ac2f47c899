"""Companies, deals, tasks and notes through the API."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads.deals import deal_save
from leads.models import Company, Deal, Note, Task
from tests.api_client import error_of, ids, token_client
from tests.factories import CompanyFactory, LeadFactory


@pytest.fixture
def api(rep):
    return token_client(rep)


@pytest.fixture
def lead(rep):
    return LeadFactory(owner=rep)


def test_company_create_update_and_duplicate_domain(api):
    created = api.post(
        "/api/v1/companies/",
        {"name": "Acme", "domain": " ACME.example ", "country": "de"},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert (created.json()["domain"], created.json()["country"]) == ("acme.example", "DE")

    changed = api.patch(
        f"/api/v1/companies/{created.json()['id']}/", {"employee_count": 50}, format="json"
    )
    duplicate = api.post(
        "/api/v1/companies/", {"name": "Other", "domain": "acme.EXAMPLE"}, format="json"
    )

    assert changed.json()["employee_count"] == 50
    assert duplicate.status_code == 400
    assert "domain" in error_of(duplicate)["fields"]
    assert Company.objects.count() == 1


def test_company_search_and_filter(api):
    acme = CompanyFactory(name="Acme", country="FR")
    CompanyFactory(name="Globex", country="DE")

    assert ids(api.get("/api/v1/companies/", {"search": "acm"})) == [acme.pk]
    assert ids(api.get("/api/v1/companies/", {"country": "FR"})) == [acme.pk]


def test_deal_closing_sets_the_close_date(api, lead):
    created = api.post(
        "/api/v1/deals/", {"lead": lead.pk, "name": "Pilot", "amount": "1200.50"}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["closed_at"] is None

    won = api.patch(f"/api/v1/deals/{created.json()['id']}/", {"status": "won"}, format="json")

    assert won.status_code == 200
    deal = Deal.objects.get()
    assert deal.status == "won"
    assert deal.closed_at is not None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"amount": "-1"}, "amount"),
        ({"currency": "euro"}, "currency"),
        ({"closed_at": "2024-01-01T00:00:00Z"}, "closed_at"),
        ({"status": "maybe"}, "status"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_deal_is_a_field_error(api, lead, payload, field):
    response = api.post(
        "/api/v1/deals/", {"lead": lead.pk, "name": "Pilot", **payload}, format="json"
    )

    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert not Deal.objects.exists()


def test_task_defaults_to_the_caller_and_filters(api, rep, lead):
    due = timezone.now() + dt.timedelta(days=1)
    created = api.post(
        "/api/v1/tasks/",
        {"lead": lead.pk, "title": "Call", "due_at": due.isoformat()},
        format="json",
    )
    assert created.status_code == 201, created.content
    task = Task.objects.get()
    assert task.assignee == rep
    own = Task.objects.create(assignee=rep, title="No lead", due_at=due, done_at=due)

    assert ids(api.get("/api/v1/tasks/", {"open": "true"})) == [task.pk]
    assert ids(api.get("/api/v1/tasks/", {"open": "false"})) == [own.pk]
    assert ids(api.get("/api/v1/tasks/", {"lead": lead.pk})) == [task.pk]


def test_task_without_a_lead_is_seen_by_its_assignee_only(rep, other_rep):
    task = Task.objects.create(assignee=other_rep, title="Private", due_at=timezone.now())

    assert token_client(rep).get(f"/api/v1/tasks/{task.pk}/").status_code == 404
    assert token_client(other_rep).get(f"/api/v1/tasks/{task.pk}/").status_code == 200


def test_note_is_written_by_the_caller_and_updated(api, rep, lead):
    created = api.post("/api/v1/notes/", {"lead": lead.pk, "body": "Likes golf"}, format="json")
    assert created.status_code == 201
    assert created.json()["author"] == rep.pk

    changed = api.patch(
        f"/api/v1/notes/{created.json()['id']}/", {"body": "Likes tennis"}, format="json"
    )

    assert changed.status_code == 200
    assert Note.objects.get().body == "Likes tennis"


def test_note_needs_a_body(api, lead):
    response = api.post("/api/v1/notes/", {"lead": lead.pk, "body": ""}, format="json")

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["body"]


@pytest.mark.parametrize("resource", ["deals", "tasks", "notes", "companies"])
def test_list_queries_do_not_grow_with_rows(
    api, rep, lead, resource, django_assert_max_num_queries
):
    def add(n: int) -> None:
        for i in range(n):
            if resource == "deals":
                deal_save(deal=Deal(lead=lead, name=f"D{i}"))
            elif resource == "tasks":
                Task.objects.create(lead=lead, assignee=rep, title="T", due_at=timezone.now())
            elif resource == "notes":
                Note.objects.create(lead=lead, author=rep, body="N")
            else:
                CompanyFactory()

    add(2)
    with CaptureQueriesContext(connection) as few:
        assert api.get(f"/api/v1/{resource}/").status_code == 200
    add(15)

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = api.get(f"/api/v1/{resource}/")

    assert len(response.json()["results"]) >= 17
