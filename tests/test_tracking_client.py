"""End to end: Segment's and RudderStack's official Python clients sending to a running
Hotlist."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import rudderstack.analytics
import segment.analytics
from segment import analytics
from segment.analytics.request import APIError

from leads.models import Activity, ActivityType, Lead, PendingEvent, TrackingKey

LIBRARIES = {"segment": segment.analytics.Client, "rudderstack": rudderstack.analytics.Client}


@pytest.fixture
def segment_client(live_server, default_events):
    """``segment.analytics`` pointed at the live server, sending each call as it is made."""
    _, secret = TrackingKey.objects.issue(name="Back end")
    errors: list[Exception] = []
    analytics.default_client = None
    analytics.write_key = secret
    analytics.host = live_server.url
    analytics.sync_mode = True
    analytics.send = True
    analytics.on_error = lambda error, batch: errors.append(error)
    yield errors
    analytics.default_client = None
    analytics.on_error = None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_official_client_identifies_tracks_and_pages(segment_client):
    # When a back end using Segment's library sends to Hotlist instead of Segment
    analytics.identify("u-1", {"email": "ada@fleet.example", "firstName": "Ada"})
    analytics.track("u-1", "Demo Requested", {"plan": "fleet"})
    analytics.page("u-1", "Docs", "Pricing", {"url": "https://fleet.example/pricing"})
    analytics.flush()

    # Then every call was accepted and the lead has its activities
    assert segment_client == []
    lead = Lead.objects.get()
    assert (lead.email, lead.first_name) == ("ada@fleet.example", "Ada")
    stored = set(Activity.objects.filter(lead=lead).values_list("type", "url"))
    assert stored == {
        (ActivityType.DEMO_REQUEST, ""),
        (ActivityType.PAGE_VIEW, "https://fleet.example/pricing"),
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_official_client_sees_a_bad_key_refused(segment_client):
    # Given a client with a key Hotlist does not know
    analytics.write_key = "hlw_wrong"

    # When it sends a call, synchronously
    with pytest.raises(APIError) as refused:
        analytics.identify("u-1", {"email": "ada@fleet.example"})

    # Then the client reports Hotlist's 401 with its code and message; nothing is stored
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")
    assert not Lead.objects.exists()


@pytest.fixture(params=sorted(LIBRARIES))
def batching_client(request, live_server, default_events) -> Iterator[tuple[Any, list]]:
    """An official client (each library in turn) queueing calls and sending them in
    batches, as back ends use it; with the errors it reports."""
    _, secret = TrackingKey.objects.issue(name="Back end")
    errors: list[Exception] = []
    client = LIBRARIES[request.param](
        secret,
        host=live_server.url,
        on_error=lambda error, batch: errors.append(error),
        max_retries=1,
        upload_interval=1,
        gzip=True,
    )
    yield client, errors
    client.shutdown()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_each_official_client_makes_the_lead_its_events_reach(batching_client):
    client, errors = batching_client

    # When a back end identifies a user, then tracks and pages them
    client.identify("u-1", {"email": "ada@fleet.example", "firstName": "Ada", "title": "CTO"})
    client.track("u-1", "Demo Requested", {"plan": "fleet"})
    client.page("u-1", "Docs", "Pricing", {"url": "https://fleet.example/pricing"})
    client.flush()

    # Then the lead is made from the traits (RudderStack sends them in context.traits)
    # and the events are its activities, none left pending
    assert errors == []
    lead = Lead.objects.get()
    assert (lead.email, lead.first_name, lead.job_title) == ("ada@fleet.example", "Ada", "CTO")
    stored = set(Activity.objects.filter(lead=lead).values_list("type", "url"))
    assert stored == {
        (ActivityType.DEMO_REQUEST, ""),
        (ActivityType.PAGE_VIEW, "https://fleet.example/pricing"),
    }
    assert not PendingEvent.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_each_official_client_keeps_the_valid_events_of_a_batch_with_a_bad_one(
    batching_client,
):
    client, errors = batching_client
    client.identify("u-1", {"email": "ada@fleet.example"})

    # When 19 valid events and one whose properties hold an infinite number go in one batch
    for n in range(20):
        price = math.inf if n == 7 else n
        client.track("u-1", "Quote Requested", {"n": n, "price": price})
    client.flush()

    # Then the client saw no error and Hotlist stored the 19 valid events
    assert errors == []
    stored = Activity.objects.values_list("properties__n", flat=True)
    assert sorted(stored) == [n for n in range(20) if n != 7]
