"""End to end: Segment's official Python client sending to a running Hotlist."""

from __future__ import annotations

import pytest
from segment import analytics
from segment.analytics.request import APIError

from leads.models import Activity, ActivityType, Lead, TrackingKey


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
