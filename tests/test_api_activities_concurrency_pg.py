"""Ingesting activities under PostgreSQL: concurrent REST and Segment batches, one
scoring request per transaction, statements that do not grow with a batch, the quick
check of plainly valid batches giving what the fields give, and a lean form post."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from api.activities import BulkActivitySerializer
from api.activity_batches import PlainBatch
from leads.activities import activities_record, activities_record_many
from leads.handoff_models import HandOff
from leads.models import Activity, Lead, Stage, TrackingKey, WebForm
from leads.stages import lead_move_to_stage
from tests.api_client import token_client
from tests.factories import LeadFactory, active_model, page_rule
from tests.test_concurrency_pg import race
from tests.tracking_client import send

pytestmark = pytest.mark.postgres

BULK = "/api/v1/activities/bulk/"


def post_bulk(user, items):
    return token_client(user).post(BULK, {"activities": items}, format="json")


@pytest.mark.django_db(transaction=True)
def test_two_batches_naming_the_same_leads_in_opposite_order_both_succeed(marketer):
    # Given many leads, and two batches naming each of them, one in the other's reverse order
    leads = [LeadFactory() for _ in range(150)]
    forward = [{"lead": lead.pk, "type": "page_view", "url": "/pricing"} for lead in leads]
    backward = [{"lead": lead.pk, "type": "email_open"} for lead in reversed(leads)]
    clients = [token_client(marketer), token_client(marketer)]

    # When both are posted at the same moment
    outcomes = race(
        lambda: clients[0].post(BULK, {"activities": forward}, format="json"),
        lambda: clients[1].post(BULK, {"activities": backward}, format="json"),
    )

    # Then both are stored whole, and every lead's activity span covers both
    assert [getattr(o, "status_code", o) for o in outcomes] == [201, 201]
    assert Activity.objects.count() == 300
    stored = Activity.objects.order_by().values_list("lead_id", flat=True)
    assert sorted(set(stored)) == sorted(lead.pk for lead in leads)
    assert not Lead.objects.filter(last_activity_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_batches_racing_with_the_same_key_store_it_once(marketer):
    # Given two batches carrying the same idempotency key, for leads named in opposite order
    a, b = LeadFactory(), LeadFactory()
    first = [{"lead": a.pk, "type": "call", "idempotency_key": "k"}, {"lead": b.pk, "type": "call"}]
    second = [
        {"lead": b.pk, "type": "call"},
        {"lead": a.pk, "type": "call", "idempotency_key": "k"},
    ]
    clients = [token_client(marketer), token_client(marketer)]

    # When both are posted at once
    outcomes = race(
        lambda: clients[0].post(BULK, {"activities": first}, format="json"),
        lambda: clients[1].post(BULK, {"activities": second}, format="json"),
    )

    # Then the key is stored once: one batch is stored whole, the other is either told it
    # repeats the stored key or asked to send again (409), never half stored
    codes = sorted(o.status_code for o in outcomes)
    assert codes in ([201, 201], [201, 409])
    assert Activity.objects.filter(idempotency_key="k").count() == 1
    assert Activity.objects.count() == (4 - 1 if codes == [201, 201] else 2)


@pytest.mark.django_db
def test_a_batch_for_many_leads_asks_for_one_drain_that_scores_them_all(
    marketer, django_capture_on_commit_callbacks
):
    # Given a rule and forty leads
    page_rule(active_model(), 10, "/pricing")
    leads = [LeadFactory() for _ in range(40)]
    items = [{"lead": lead.pk, "type": "page_view", "url": "/pricing"} for lead in leads]

    # When one batch names them all
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_bulk(marketer, items)

    # Then one request for scoring waits for the commit, and that one scores every lead
    assert response.status_code == 201, response.content
    assert len(callbacks) == 1
    assert Activity.objects.unscored().count() == 40
    callbacks[0]()
    assert not Activity.objects.unscored().exists()
    assert set(Lead.objects.values_list("score", flat=True)) == {10}


def record_then_fail(lead: Lead) -> None:
    with transaction.atomic():
        activities_record(lead=lead, activities=[Activity(type="page_view", url="/pricing")])
        raise RuntimeError


@pytest.mark.django_db
def test_scoring_is_not_asked_for_activities_rolled_back(db, django_capture_on_commit_callbacks):
    # Given a rule, and two leads
    page_rule(active_model(), 10, "/pricing")
    dropped, kept = LeadFactory(), LeadFactory()

    # When activities of the first are stored in a savepoint that rolls back, and the
    # second's afterwards in the same transaction
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        with pytest.raises(RuntimeError):
            record_then_fail(dropped)
        activities_record(lead=kept, activities=[Activity(type="page_view", url="/pricing")])

    # Then the one request left is the second's, and it scores what was kept
    assert len(callbacks) == 1
    callbacks[0]()
    assert Activity.objects.get().lead_id == kept.pk
    assert Lead.objects.get(pk=kept.pk).score == 10
    assert Lead.objects.get(pk=dropped.pk).score == 0


@pytest.mark.django_db
def test_a_batch_costs_the_same_queries_for_two_leads_or_forty(marketer):
    # Given two batches of page views, one naming 2 leads and one naming 40
    def batch(count):
        return [{"lead": LeadFactory().pk, "type": "page_view"} for _ in range(count)]

    small, large = batch(2), batch(40)
    few_client, many_client = token_client(marketer), token_client(marketer)

    # When each is posted
    with CaptureQueriesContext(connection) as few:
        assert few_client.post(BULK, {"activities": small}, format="json").status_code == 201
    with CaptureQueriesContext(connection) as many:
        assert many_client.post(BULK, {"activities": large}, format="json").status_code == 201

    # Then the larger batch runs no more statements than the smaller
    assert len(many) == len(few), [q["sql"][:70] for q in many.captured_queries]


@pytest.mark.django_db
def test_a_sales_touch_in_a_batch_is_the_first_touch_of_the_hand_off(rep):
    # Given a rep's lead just handed off to sales
    lead = LeadFactory(owner=rep, stage=Stage.MQL)
    lead_move_to_stage(lead_id=lead.pk, stage=Stage.SQL)
    handoff = HandOff.objects.get(lead=lead)
    called_at = timezone.now()

    # When the rep's batch holds a page view and the call they made
    response = post_bulk(
        rep,
        [
            {"lead": lead.pk, "type": "page_view"},
            {"lead": lead.pk, "type": "call", "occurred_at": called_at.isoformat()},
        ],
    )

    # Then the call is the hand-off's first touch
    assert response.status_code == 201, response.content
    handoff.refresh_from_db()
    assert handoff.first_touch_at == called_at


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_batch_leaves_the_next_one_asking_for_scoring(db):
    # Given a rule and a lead
    page_rule(active_model(), 10, "/pricing")
    lead = LeadFactory()

    # When a batch is rolled back at commit (its lead is missing), and the next one commits
    missing = Activity(lead_id=lead.pk + 1000, type="page_view", url="/pricing")
    with pytest.raises(IntegrityError):
        activities_record_many(activities=[missing])
    activities_record_many(activities=[Activity(lead_id=lead.pk, type="page_view", url="/pricing")])

    # Then the second batch was scored after its commit
    lead.refresh_from_db()
    assert lead.score == 10
    assert not Activity.objects.unscored().exists()


def validated_both_ways(user, body):
    """The items as the quick check gives them, and as the fields give them."""
    request = Request(APIRequestFactory().post("/"))
    request.user = user
    serializer = BulkActivitySerializer(data=body, context={"request": request})
    plain = PlainBatch(serializer.fields["activities"].child.fields).items(body, user=user)
    by_fields = super(BulkActivitySerializer, serializer).to_internal_value(body)["activities"]
    for item in by_fields:
        item["lead_id"] = item.pop("lead").pk
    return plain, by_fields


@pytest.mark.django_db
def test_a_plainly_valid_batch_gives_what_the_fields_give(marketer):
    # Given a batch with every field, padded texts, times in several zones, and defaults
    lead = LeadFactory()
    now = timezone.now().replace(microsecond=0)
    body = {
        "activities": [
            {"lead": lead.pk, "type": "page_view"},
            {
                "lead": lead.pk,
                "type": "email_click",
                "url": "  https://x.example/a  ",
                "duration_seconds": 0,
                "properties": {"nested": {"list": [1, "two", None]}, "ünï": "cödé"},
                "occurred_at": (now - dt.timedelta(hours=2)).isoformat(),
                "source": " crm ",
                "idempotency_key": "k-1",
            },
            {
                "lead": lead.pk,
                "type": "call",
                "url": "",
                "duration_seconds": None,
                "occurred_at": now.astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat(),
                "idempotency_key": "",
            },
            {"lead": lead.pk, "type": "meeting", "occurred_at": "2001-02-03T04:05:06.789Z"},
        ]
    }

    # When it is checked both ways
    plain, by_fields = validated_both_ways(marketer, body)

    # Then the quick check took it, and both give the same items
    assert plain is not None
    assert plain == by_fields
    assert [item["occurred_at"].tzinfo for item in plain[1:]] == [
        by_fields[1]["occurred_at"].tzinfo
    ] * 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    "item",
    [
        {"type": "page_view", "occurred_at": "2024-05-01T10:00:00"},
        {"type": "page_view", "duration_seconds": 5.0},
        {"type": "page_view", "lead_as_text": True},
    ],
    ids=["time-without-offset", "float-duration", "lead-as-text"],
)
def test_a_valid_batch_the_quick_check_leaves_alone_is_taken_by_the_fields(marketer, item):
    # Given a valid batch with a value the fields convert (a naive time, 5.0, "7")
    lead = LeadFactory()
    item = dict(item)
    lead_value = str(lead.pk) if item.pop("lead_as_text", False) else lead.pk
    body = {"activities": [{"lead": lead_value, **item}]}

    # When it is posted
    plain, _ = validated_both_ways(marketer, body)
    response = post_bulk(marketer, body["activities"])

    # Then the quick check declined it, and the fields stored it as before
    assert plain is None
    assert response.status_code == 201, response.content
    assert Activity.objects.get().lead_id == lead.pk


@pytest.mark.django_db(transaction=True)
def test_the_same_segment_batch_sent_twice_at_once_stores_each_event_once(default_events):
    # Given a known user, and a batch of their events with message ids
    _, key = TrackingKey.objects.issue(name="Website")
    identified = {"userId": "u-1", "traits": {"email": "ada@fleet.example"}}
    assert send(Client(), "identify", identified, key=key).status_code == 200
    calls = [
        {"type": "track" if n % 2 else "page", "userId": "u-1", "messageId": f"m-{n}"}
        | ({"event": "Signed Up"} if n % 2 else {})
        for n in range(30)
    ]

    # When a client's retry arrives while the first attempt is still being stored
    outcomes = race(*(lambda: send(Client(), "batch", {"batch": calls}, key=key) for _ in "ab"))

    # Then both succeed, each event is stored once, and one answer names all as repeats
    assert [o.status_code for o in outcomes] == [200, 200]
    assert Activity.objects.count() == 30
    repeats = sorted(len(o.json().get("duplicates", [])) for o in outcomes)
    assert repeats == [0, 30]


@pytest.mark.django_db
def test_a_new_visitors_form_post_writes_the_lead_once(db):
    # Given a web form
    form = WebForm.objects.create(name="Demo", field_mapping={"email": "email"})

    # When a new visitor posts it
    with CaptureQueriesContext(connection) as queries:
        response = Client().post(f"/f/{form.key}/", {"email": "ada@fleet.example"})

    # Then the lead is inserted with the submission as its first and last activity, and
    # its row is not written again
    assert response.status_code == 200, response.content
    lead, activity = Lead.objects.get(), Activity.objects.get()
    assert lead.first_activity_at == lead.last_activity_at == activity.occurred_at
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert not [sql for sql in writes if "leads_lead" in sql], writes


@pytest.mark.django_db(transaction=True)
def test_a_batch_is_stored_when_the_scoring_request_cannot_reach_redis(marketer, monkeypatch):
    # Given a cache (Redis, beside the broker) that cannot be reached
    import redis

    import scoring.outbox

    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379.")

    monkeypatch.setattr(scoring.outbox.cache, "add", unreachable)
    lead = LeadFactory()

    # When a batch is posted
    response = post_bulk(marketer, [{"lead": lead.pk, "type": "page_view"}])

    # Then it is answered and stored, and scoring is queued without the cache's marker
    assert response.status_code == 201, response.content
    assert Activity.objects.filter(lead=lead).count() == 1
    assert Activity.objects.unscored().count() == 0
