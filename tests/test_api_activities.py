"""Activities through the API: one at a time, in batches (all or none), idempotent, filtered."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads.models import Activity, Lead
from tests.api_client import error_of, ids, token_client
from tests.factories import ActivityFactory, LeadFactory, active_model, page_rule

ACTIVITIES = "/api/v1/activities/"
BULK = "/api/v1/activities/bulk/"


@pytest.fixture
def api(rep):
    return token_client(rep)


@pytest.fixture
def lead(rep):
    return LeadFactory(owner=rep)


def test_posted_activity_is_stored_and_scored(api, rep, lead, django_capture_on_commit_callbacks):
    page_rule(active_model(), 25, "/pricing")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            ACTIVITIES,
            {"lead": lead.pk, "type": "page_view", "url": "https://x.example/pricing"},
            format="json",
        )

    assert response.status_code == 201, response.content
    activity = Activity.objects.get(pk=response.json()["id"])
    assert (activity.lead, activity.created_by, activity.source) == (lead, rep, "api")
    lead.refresh_from_db()
    assert lead.score == 25
    assert lead.last_activity_at == activity.occurred_at


def test_repeated_idempotency_key_returns_the_first_activity(api, lead):
    payload = {"lead": lead.pk, "type": "call", "idempotency_key": "call-1"}

    first = api.post(ACTIVITIES, payload, format="json")
    again = api.post(ACTIVITIES, payload, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Activity.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "teleport"}, "type"),
        ({"type": "call", "properties": [1, 2]}, "properties"),
        ({"type": "call", "occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"type": "call", "occurred_at": "yesterday"}, "occurred_at"),
        ({"type": "call", "duration_seconds": -5}, "duration_seconds"),
    ],
)
def test_invalid_activity_is_a_field_error(api, lead, payload, field):
    response = api.post(ACTIVITIES, {"lead": lead.pk, **payload}, format="json")

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == [field]
    assert not Activity.objects.exists()


def test_activities_cannot_be_changed(api, lead):
    activity = ActivityFactory(lead=lead)

    response = api.patch(f"{ACTIVITIES}{activity.pk}/", {"type": "call"}, format="json")

    assert response.status_code == 405


def test_bulk_stores_every_item_in_order(api, rep, django_capture_on_commit_callbacks):
    page_rule(active_model(), 10, "/pricing")
    first, second = LeadFactory(owner=rep), LeadFactory(owner=None)
    items = [
        {"lead": first.pk, "type": "page_view", "url": "/pricing"},
        {"lead": second.pk, "type": "page_view", "url": "/pricing"},
        {"lead": first.pk, "type": "email_open"},
    ]

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(BULK, {"activities": items}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["created"], body["duplicates"], body["rejected"]) == (3, [], [])
    stored = [Activity.objects.get(pk=pk) for pk in body["ids"]]
    assert [(a.lead_id, a.type) for a in stored] == [(i["lead"], i["type"]) for i in items]
    assert Lead.objects.get(pk=second.pk).score == 10


def test_bulk_refuses_a_bad_item_alone_and_stores_its_neighbours(api, rep, other_rep):
    mine = LeadFactory(owner=rep)
    hidden = LeadFactory(owner=other_rep)
    items = [
        {"lead": mine.pk, "type": "call", "url": "/first"},
        {"lead": mine.pk, "type": "nonsense"},
        {"lead": hidden.pk, "type": "call"},
        {"lead": mine.pk, "type": "call", "url": "/last"},
    ]

    response = api.post(BULK, {"activities": items}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] == 2
    assert body["ids"][1:3] == [None, None]
    stored = [Activity.objects.get(pk=body["ids"][i]) for i in (0, 3)]
    assert [a.url for a in stored] == ["/first", "/last"]
    assert Activity.objects.count() == 2
    assert [r["index"] for r in body["rejected"]] == [1, 2]
    assert set(body["rejected"][0]["fields"]) == {"type"}
    assert body["rejected"][1]["fields"] == {
        "lead": [f"There is no lead {hidden.pk} that you can see."]
    }
    assert not Activity.objects.filter(lead=hidden).exists()


def test_bulk_whose_every_item_is_bad_is_a_400_naming_each(api, rep, other_rep):
    mine = LeadFactory(owner=rep)
    hidden = LeadFactory(owner=other_rep)
    items = [{"lead": mine.pk, "type": "nonsense"}, {"lead": hidden.pk, "type": "call"}]

    response = api.post(BULK, {"activities": items}, format="json")

    assert response.status_code == 400
    fields = error_of(response)["fields"]
    assert set(fields) == {"activities.0.type", "activities.1.lead"}
    assert not Activity.objects.exists()


def test_bulk_refuses_a_repeated_key_within_the_batch_and_keeps_the_first(api, lead):
    items = [
        {"lead": lead.pk, "type": "call", "idempotency_key": "k"},
        {"lead": lead.pk, "type": "nonsense"},
        {"lead": lead.pk, "type": "call", "idempotency_key": "k"},
    ]

    response = api.post(BULK, {"activities": items}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert [r["index"] for r in body["rejected"]] == [1, 2]
    assert "idempotency_key" in body["rejected"][1]["fields"]
    assert body["created"] == 1
    assert Activity.objects.get().idempotency_key == "k"


def test_bulk_with_refusals_replays_the_same_answer_under_its_idempotency_key(api, lead):
    items = [{"lead": lead.pk, "type": "call"}, {"lead": lead.pk, "type": "nonsense"}]
    headers = {"HTTP_IDEMPOTENCY_KEY": "bulk-with-a-refusal"}

    first = api.post(BULK, {"activities": items}, format="json", **headers)
    again = api.post(BULK, {"activities": items}, format="json", **headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert Activity.objects.count() == 1


def test_bulk_skips_items_stored_before(api, lead):
    earlier = api.post(
        ACTIVITIES, {"lead": lead.pk, "type": "call", "idempotency_key": "a"}, format="json"
    ).json()["id"]
    items = [
        {"lead": lead.pk, "type": "call", "idempotency_key": "a"},
        {"lead": lead.pk, "type": "call", "idempotency_key": "b"},
    ]

    response = api.post(BULK, {"activities": items}, format="json")

    assert response.status_code == 201
    assert response.json()["created"] == 1
    assert response.json()["duplicates"] == [0]
    assert response.json()["ids"][0] == earlier
    assert Activity.objects.count() == 2


def test_bulk_of_more_than_a_thousand_is_413(api, lead):
    items = [{"lead": lead.pk, "type": "call"}] * 1001

    response = api.post(BULK, {"activities": items}, format="json")

    assert response.status_code == 413
    assert "1000" in error_of(response)["message"]
    assert not Activity.objects.exists()


def test_bulk_of_a_thousand_is_accepted(api, lead):
    items = [{"lead": lead.pk, "type": "page_view"}] * 1000

    response = api.post(BULK, {"activities": items}, format="json")

    assert response.status_code == 201
    assert Activity.objects.count() == 1000


@pytest.mark.parametrize("body", [{}, {"activities": []}, {"activities": "x"}, ["x"]])
def test_bulk_needs_a_list_of_activities(api, body):
    response = api.post(BULK, body, format="json")

    assert response.status_code == 400
    error_of(response)


def test_activity_filters(api, rep):
    a, b = LeadFactory(owner=rep), LeadFactory(owner=rep)
    now = timezone.now()
    old = ActivityFactory(lead=a, type="call", occurred_at=now - dt.timedelta(days=10))
    new = ActivityFactory(lead=a, type="page_view", occurred_at=now - dt.timedelta(hours=1))
    other = ActivityFactory(lead=b, type="call", occurred_at=now - dt.timedelta(days=2))
    week_ago = (now - dt.timedelta(days=7)).isoformat()

    assert ids(api.get(ACTIVITIES, {"lead": a.pk})) == [new.pk, old.pk]
    assert ids(api.get(ACTIVITIES, {"type": "call"})) == [other.pk, old.pk]
    assert ids(api.get(ACTIVITIES, {"occurred_after": week_ago})) == [new.pk, other.pk]
    assert ids(api.get(ACTIVITIES, {"occurred_before": week_ago})) == [old.pk]
    assert ids(api.get(ACTIVITIES, {"ordering": "occurred_at"})) == [old.pk, other.pk, new.pk]


def test_activity_list_queries_do_not_grow_with_rows(api, lead, django_assert_max_num_queries):
    ActivityFactory.create_batch(2, lead=lead)
    with CaptureQueriesContext(connection) as few:
        api.get(ACTIVITIES)
    ActivityFactory.create_batch(30, lead=lead)

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = api.get(ACTIVITIES)

    assert len(response.json()["results"]) == 32
