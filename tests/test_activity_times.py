"""One rule for when an activity happened, whichever way it comes in: from 2000 to its
receipt, a sender's clock up to five minutes ahead taken as the time of receipt."""

from __future__ import annotations

import datetime as dt
import importlib
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from leads.activity_times import CLOCK_SKEW, ActivityTimeError, activity_time
from leads.models import Activity, Lead, PendingEvent, TrackingKey
from scoring.tasks import sweep_unscored
from tests.api_client import error_of, token_client
from tests.factories import LeadFactory, active_model, page_rule
from tests.tracking_client import send

PRICING = "https://fleet.example/pricing"
RECEIVED = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("at", "stored"),
    [
        (dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2000, 1, 1, tzinfo=dt.UTC)),
        (RECEIVED - dt.timedelta(days=3), RECEIVED - dt.timedelta(days=3)),
        (RECEIVED, RECEIVED),
        (RECEIVED + dt.timedelta(minutes=3), RECEIVED),
        (RECEIVED + CLOCK_SKEW, RECEIVED),
    ],
)
def test_times_from_2000_to_a_little_ahead_are_taken_ahead_ones_as_received(at, stored):
    assert activity_time(at, received_at=RECEIVED) == stored


@pytest.mark.parametrize(
    "at",
    [
        dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=15))),
        RECEIVED + CLOCK_SKEW + dt.timedelta(seconds=1),
        dt.datetime(9999, 12, 31, tzinfo=dt.timezone(-dt.timedelta(hours=15))),
    ],
)
def test_times_before_2000_or_further_ahead_are_refused(at):
    with pytest.raises(ActivityTimeError):
        activity_time(at, received_at=RECEIVED)


# --- Scoring an activity dated a little ahead --------------------------------------------


def _rest(lead: Lead, at: dt.datetime) -> None:
    body = {"lead": lead.pk, "type": "page_view", "url": PRICING, "occurred_at": at.isoformat()}
    response = token_client(lead.owner).post("/api/v1/activities/", body, format="json")
    assert response.status_code == 201, response.content


def _bulk(lead: Lead, at: dt.datetime) -> None:
    item = {"lead": lead.pk, "type": "page_view", "url": PRICING, "occurred_at": at.isoformat()}
    response = token_client(lead.owner).post(
        "/api/v1/activities/bulk/", {"activities": [item]}, format="json"
    )
    assert response.status_code == 201, response.content


def _tracking(lead: Lead, at: dt.datetime) -> None:
    key = TrackingKey.objects.issue(name="Website")[1]
    client = Client()
    send(client, "identify", {"userId": "u-1", "traits": {"email": lead.email}}, key=key)
    body = {"userId": "u-1", "properties": {"url": PRICING}, "timestamp": at.isoformat()}
    assert send(client, "page", body, key=key).json() == {"success": True}


@pytest.mark.parametrize("surface", [_rest, _bulk, _tracking], ids=["rest", "bulk", "tracking"])
def test_an_activity_dated_a_little_ahead_earns_its_points_and_verify_stays_clean(
    rep, default_events, django_capture_on_commit_callbacks, monkeypatch, surface
):
    # Given a model giving 25 points for a pricing page view, and a rep's lead
    page_rule(active_model(), 25, "/pricing")
    lead = LeadFactory(owner=rep, email="ada@fleet.example")

    # When a view is reported by a sender whose clock runs three minutes ahead
    sent = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        surface(lead, sent + dt.timedelta(minutes=3))

    # Then it is stored as happening when it was received, and scored with its points
    activity = Activity.objects.get()
    assert sent <= activity.occurred_at <= activity.received_at
    lead.refresh_from_db()
    assert lead.score == 25
    # And once the time the sender claimed has come, the stored scores still check out
    later = timezone.now() + dt.timedelta(minutes=10)
    monkeypatch.setattr(timezone, "now", lambda: later)
    out = StringIO()
    call_command("scoring_verify", stdout=out)
    assert "Every stored score matches" in out.getvalue()


def test_a_kept_event_dated_after_its_receipt_is_replayed_as_received(client, default_events):
    # Given an event kept for an unknown sender before future times were refused
    received = timezone.now() - dt.timedelta(hours=1)
    PendingEvent.objects.create(
        anonymous_id="anon-1",
        type="page",
        message={"type": "page", "anonymousId": "anon-1", "properties": {"url": PRICING}},
        occurred_at=dt.datetime(9999, 1, 1, tzinfo=dt.UTC),
        received_at=received,
    )
    key = TrackingKey.objects.issue(name="Website")[1]

    # When the sender identifies
    body = {"anonymousId": "anon-1", "traits": {"email": "ada@fleet.example"}}
    send(client, "identify", body, key=key)

    # Then the event is the lead's, dated when it was received
    assert Activity.objects.get().occurred_at == received


@pytest.mark.parametrize("when", ["1999-12-31T23:59", "2999-01-01T00:00"])
def test_a_touch_logged_outside_the_rule_is_a_form_error(client, rep, when):
    lead = LeadFactory(owner=rep)
    client.force_login(rep)

    response = client.post(
        f"/leads/{lead.pk}/touches/",
        {"touch-type": "call", "touch-occurred_at": when},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 400
    assert b"A touch cannot be logged" in response.content
    assert not Activity.objects.exists()


def test_the_api_refuses_a_time_further_ahead_naming_the_field(rep):
    lead = LeadFactory(owner=rep)
    at = timezone.now() + CLOCK_SKEW + dt.timedelta(minutes=1)

    response = token_client(rep).post(
        "/api/v1/activities/",
        {"lead": lead.pk, "type": "call", "occurred_at": at.isoformat()},
        format="json",
    )

    assert response.status_code == 400
    assert error_of(response)["fields"]["occurred_at"] == [
        "The activity cannot have happened in the future."
    ]


def test_an_activity_stored_ahead_of_its_receipt_is_dated_as_received_and_scored(
    rep, default_events, django_capture_on_commit_callbacks, monkeypatch
):
    # Given an activity stored before the rule, dated a day after its receipt and marked
    # scored without its points (scoring passed over a time still to come)
    page_rule(active_model(), 25, "/pricing")
    lead = LeadFactory(owner=rep, email="ada@fleet.example")
    received = timezone.now()
    Activity.objects.create(
        lead=lead,
        type="page_view",
        url=PRICING,
        occurred_at=received + dt.timedelta(days=1),
        scored_at=received,
    )
    Activity.objects.update(received_at=received)
    monkeypatch.setattr(timezone, "now", lambda: received + dt.timedelta(days=2))
    out = StringIO()
    with pytest.raises(CommandError, match="difference"):
        call_command("scoring_verify", stdout=out)

    # When the migration runs and beat's sweeper queues what is unscored
    migration = importlib.import_module("leads.migrations.0015_activity_times_at_most_receipt")
    migration.date_as_received(apps, None)
    with django_capture_on_commit_callbacks(execute=True):
        sweep_unscored()

    # Then the activity is dated as received, has its points, and the scores check out
    activity = Activity.objects.get()
    assert activity.occurred_at == received
    lead.refresh_from_db()
    assert lead.score > 0
    out = StringIO()
    call_command("scoring_verify", stdout=out)
    assert "Every stored score matches" in out.getvalue()
