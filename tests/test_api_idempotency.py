"""``Idempotency-Key`` on the API's creates: a retried POST creates once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from crm.models import IdempotentRequest
from crm.tasks import purge_idempotent_requests
from leads.models import Activity, Company, Deal, Lead, Note, Task
from tests.api_client import error_of, token_client
from tests.factories import LeadFactory
from tests.test_concurrency_pg import race


@pytest.fixture
def api(rep):
    return token_client(rep)


@pytest.fixture
def lead(rep):
    return LeadFactory(owner=rep)


def post(api, path, body, key="key-1"):
    return api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_repeated_key_replays_the_first_answer_and_creates_once(api):
    body = {"email": "ada@example.com", "first_name": "Ada"}
    first = post(api, "/api/v1/leads/", body)

    again = post(api, "/api/v1/leads/", body)

    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Lead.objects.count() == 1
    assert IdempotentRequest.objects.count() == 1


def test_same_body_in_another_key_order_is_a_repeat(api):
    post(api, "/api/v1/companies/", {"name": "Acme", "domain": "acme.example"})

    again = post(api, "/api/v1/companies/", {"domain": "acme.example", "name": "Acme"})

    assert again["Idempotent-Replayed"] == "true"
    assert Company.objects.count() == 1


def test_same_key_with_another_body_answers_409_and_creates_nothing(api):
    post(api, "/api/v1/leads/", {"email": "ada@example.com"})

    response = post(api, "/api/v1/leads/", {"email": "grace@example.com"})

    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_key_reused"
    assert list(Lead.objects.values_list("email", flat=True)) == ["ada@example.com"]


def test_same_key_on_another_path_answers_409(api, lead):
    post(api, "/api/v1/notes/", {"lead": lead.pk, "body": "Called"})

    response = post(api, "/api/v1/tasks/", {"lead": lead.pk, "body": "Called"})

    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_key_reused"
    assert not Task.objects.exists()


def test_keys_belong_to_their_user(api, other_rep):
    post(api, "/api/v1/leads/", {"email": "ada@example.com"})

    response = post(token_client(other_rep), "/api/v1/leads/", {"email": "grace@example.com"})

    assert response.status_code == 201
    assert Lead.objects.count() == 2


def test_failed_request_is_not_stored_and_may_be_retried(api):
    refused = post(api, "/api/v1/leads/", {"email": "not an email"})

    retried = post(api, "/api/v1/leads/", {"email": "ada@example.com"})

    assert refused.status_code == 400
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert Lead.objects.count() == 1


@pytest.mark.parametrize(
    ("path", "model", "body"),
    [
        ("/api/v1/activities/", Activity, lambda lead: {"lead": lead, "type": "call"}),
        (
            "/api/v1/activities/bulk/",
            Activity,
            lambda lead: {"activities": [{"lead": lead, "type": "call"}] * 2},
        ),
        ("/api/v1/deals/", Deal, lambda lead: {"lead": lead, "name": "Pilot", "amount": "9.50"}),
        (
            "/api/v1/tasks/",
            Task,
            lambda lead: {"lead": lead, "title": "Call back", "due_at": "2030-01-01T09:00:00Z"},
        ),
        ("/api/v1/notes/", Note, lambda lead: {"lead": lead, "body": "Met at the fair"}),
    ],
)
def test_every_create_honours_the_key(api, lead, path, model, body):
    first = post(api, path, body(lead.pk))
    created = model.objects.count()

    again = post(api, path, body(lead.pk))

    assert first.status_code == 201, first.content
    assert (again.status_code, again["Idempotent-Replayed"]) == (201, "true")
    assert again.json() == first.json()
    assert model.objects.count() == created > 0


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve"])
def test_malformed_key_answers_400(api, key):
    response = post(api, "/api/v1/leads/", {"email": "ada@example.com"}, key=key)

    assert response.status_code == 400
    assert "Idempotency-Key" in error_of(response)["fields"]
    assert not Lead.objects.exists()


def test_key_being_processed_answers_409(api, rep):
    # A row without an answer is what a request in flight holds.
    IdempotentRequest.objects.create(
        user=rep, key="key-1", request_line="POST /api/v1/leads/", body_hash="x"
    )

    response = post(api, "/api/v1/leads/", {"email": "ada@example.com"})

    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_key_in_use"
    assert not Lead.objects.exists()


def test_purge_forgets_keys_older_than_a_day(api, rep):
    post(api, "/api/v1/leads/", {"email": "ada@example.com"}, key="old")
    post(api, "/api/v1/leads/", {"email": "grace@example.com"}, key="new")
    IdempotentRequest.objects.filter(key="old").update(
        created_at=timezone.now() - dt.timedelta(hours=25)
    )

    assert purge_idempotent_requests.delay().get() == 1

    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["new"]


def test_the_header_is_documented_on_creates(admin_user):
    schema = token_client(admin_user).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    creates = [
        ("/api/v1/leads/", "post"),
        ("/api/v1/companies/", "post"),
        ("/api/v1/activities/", "post"),
        ("/api/v1/activities/bulk/", "post"),
        ("/api/v1/deals/", "post"),
        ("/api/v1/tasks/", "post"),
        ("/api/v1/notes/", "post"),
    ]
    for path, method in creates:
        operation = schema["paths"][path][method]
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert "Idempotency-Key" in headers, path
        assert "409" in operation["responses"], path


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_once(rep):
    body = {"email": "ada@example.com"}
    clients = [token_client(rep), token_client(rep)]

    outcomes = race(*(lambda c=c: post(c, "/api/v1/leads/", body) for c in clients))

    assert [o.status_code for o in outcomes] == [201, 201], outcomes
    assert sorted(o.get("Idempotent-Replayed", "") for o in outcomes) == ["", "true"]
    assert outcomes[0].json()["id"] == outcomes[1].json()["id"]
    assert Lead.objects.count() == 1
