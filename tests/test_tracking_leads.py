"""What tracking calls do to leads: traits, identities, pending events, alias and group."""

from __future__ import annotations

import datetime as dt
import importlib
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from leads.models import (
    Activity,
    ActivityType,
    Company,
    IdentityKind,
    Lead,
    PendingEvent,
    Source,
    TrackedEvent,
    TrackingIdentity,
    TrackingKey,
)
from leads.tasks import purge_pending_events
from tests.factories import CompanyFactory, LeadFactory, active_model, page_rule
from tests.tracking_client import send

EMAIL = "ada@fleet.example"


@pytest.fixture
def write_key(default_events) -> str:
    _, secret = TrackingKey.objects.issue(name="Website")
    return secret


def test_identify_maps_traits_to_lead_fields(client, write_key):
    # When a user is identified with Segment's usual traits
    traits = {
        "email": " Ada@Fleet.Example ",
        "name": "Ada Lovelace",
        "phone": "+44 20 7946 0000",
        "title": "Head of Fleet",
        "company": {"name": "Fleet Co"},
        "address": {"country": "gb", "city": "London"},
    }
    campaign = {"name": "spring", "source": "google", "medium": "cpc"}
    body = {"userId": "u-1", "anonymousId": "a-1", "traits": traits}
    send(client, "identify", {**body, "context": {"campaign": campaign}}, key=write_key)

    # Then the lead carries them, with the campaign as its attribution
    lead = Lead.objects.get()
    assert (lead.email, lead.first_name, lead.last_name) == (EMAIL, "Ada", "Lovelace")
    assert (lead.phone, lead.job_title) == ("+44 20 7946 0000", "Head of Fleet")
    assert (lead.company.name, lead.country, lead.city) == ("Fleet Co", "GB", "London")
    assert (lead.source, lead.campaign, lead.utm_source) == (Source.PAID_SEARCH, "spring", "google")
    # And both of the sender's ids now point to it
    assert set(lead.tracking_identities.values_list("kind", "value")) == {
        (IdentityKind.USER_ID, "u-1"),
        (IdentityKind.ANONYMOUS_ID, "a-1"),
    }


def test_identify_updates_the_lead_with_that_email_and_later_calls_find_it_by_id(client, write_key):
    # Given a lead already in the CRM
    existing = LeadFactory(email=EMAIL, first_name="Augusta", job_title="CTO")

    # When the website identifies them, then sends with the user id alone
    send(
        client,
        "identify",
        {"userId": "u-1", "traits": {"email": "ADA@fleet.example", "first_name": "Ada"}},
        key=write_key,
    )
    send(client, "identify", {"userId": "u-1", "traits": {"lastName": "Lovelace"}}, key=write_key)

    # Then the same lead is updated: sent traits overwrite, others are kept
    lead = Lead.objects.get()
    assert lead.pk == existing.pk
    assert (lead.first_name, lead.last_name, lead.job_title) == ("Ada", "Lovelace", "CTO")


def test_anonymous_events_are_kept_then_attached_and_scored_after_identify(
    client, write_key, django_capture_on_commit_callbacks
):
    # Given a scoring model that scores pricing page views
    model = active_model()
    page_rule(model, 10, "/pricing")
    # And a visitor browsing before anyone knows who they are
    base = timezone.now() - dt.timedelta(hours=1)
    for minutes, path in ((5, "/pricing"), (1, "/blog"), (3, "/pricing/enterprise")):
        body = {
            "anonymousId": "anon-1",
            "properties": {"url": f"https://fleet.example{path}"},
            "timestamp": (base + dt.timedelta(minutes=minutes)).isoformat(),
        }
        send(client, "page", body, key=write_key)
    assert PendingEvent.objects.count() == 3
    assert not Lead.objects.exists()

    # When they sign up and the site identifies them on the same device
    with django_capture_on_commit_callbacks(execute=True):
        response = send(
            client,
            "identify",
            {"anonymousId": "anon-1", "userId": "u-1", "traits": {"email": EMAIL}},
            key=write_key,
        )

    # Then their page views are the lead's activities, in the order they happened
    assert response.status_code == 200
    lead = Lead.objects.get()
    activities = list(Activity.objects.filter(lead=lead).order_by("id"))
    assert [a.url.removeprefix("https://fleet.example") for a in activities] == [
        "/blog",
        "/pricing/enterprise",
        "/pricing",
    ]
    assert all(a.scored_at is not None for a in activities)
    # And they were scored: two pricing views, ten points each
    assert lead.score == 20
    assert not PendingEvent.objects.exists()


def test_alias_links_the_previous_id_to_the_user(client, write_key):
    # Given a known user and events from the id they had before signing in
    send(client, "identify", {"userId": "u-1", "traits": {"email": EMAIL}}, key=write_key)
    send(client, "track", {"userId": "old-7", "event": "Demo Requested"}, key=write_key)
    assert PendingEvent.objects.count() == 1

    # When the client aliases the old id to the user id
    response = send(client, "alias", {"previousId": "old-7", "userId": "u-1"}, key=write_key)

    # Then the old id points to the same lead and its kept event is the lead's
    assert response.status_code == 200
    lead = Lead.objects.get()
    linked = TrackingIdentity.objects.filter(value="old-7")
    assert {(i.kind, i.lead) for i in linked} == {
        (IdentityKind.USER_ID, lead),
        (IdentityKind.ANONYMOUS_ID, lead),
    }
    assert Activity.objects.get().type == ActivityType.DEMO_REQUEST
    # And later calls under the old id land on the lead too
    send(client, "page", {"anonymousId": "old-7"}, key=write_key)
    send(client, "page", {"userId": "old-7"}, key=write_key)
    assert Activity.objects.filter(lead=lead).count() == 3


def test_alias_before_any_identify_is_applied_once_the_user_is_known(client, write_key):
    send(client, "page", {"anonymousId": "a-9"}, key=write_key)
    send(client, "alias", {"previousId": "a-9", "userId": "u-9"}, key=write_key)

    send(client, "identify", {"userId": "u-9", "traits": {"email": EMAIL}}, key=write_key)

    lead = Lead.objects.get()
    assert {i.lead for i in TrackingIdentity.objects.filter(value="a-9")} == {lead}
    assert Activity.objects.get().lead == lead
    assert not PendingEvent.objects.exists()


def test_group_sets_the_leads_company_from_its_traits(client, write_key):
    # Given a known user and a company already in the CRM with that domain
    CompanyFactory(name="Old name", domain="fleet.example", industry="", employee_count=None)
    send(client, "identify", {"userId": "u-1", "traits": {"email": EMAIL}}, key=write_key)

    # When the site groups them into their account
    traits = {
        "name": "Fleet Co",
        "industry": "Logistics",
        "employees": 250,
        "website": "https://www.fleet.example/",
    }
    response = send(
        client, "group", {"userId": "u-1", "groupId": "acct-1", "traits": traits}, key=write_key
    )

    # Then the lead belongs to that company, updated from the traits
    assert response.status_code == 200
    company = Lead.objects.get().company
    assert Company.objects.count() == 1
    assert (company.name, company.domain) == ("Fleet Co", "fleet.example")
    assert (company.industry, company.employee_count) == ("logistics", 250)


def test_group_without_domain_finds_or_creates_the_company_by_name(client, write_key):
    send(client, "identify", {"userId": "u-1", "traits": {"email": EMAIL}}, key=write_key)

    send(client, "group", {"userId": "u-1", "groupId": "acct-1"}, key=write_key)

    assert Lead.objects.get().company.name == "acct-1"


def test_editing_the_event_mapping_in_the_admin_changes_what_track_stores(
    client, write_key, admin_user
):
    # Given the seeded mapping records "Demo Requested" as a demo request
    mapping = TrackedEvent.objects.get(name="Demo Requested")
    assert mapping.activity_type == ActivityType.DEMO_REQUEST
    send(client, "identify", {"userId": "u-1", "traits": {"email": EMAIL}}, key=write_key)
    track = {"userId": "u-1", "event": "demo requested"}

    # When a marketer maps it to a quote request in the admin, and later switches it off
    client.force_login(admin_user)
    url = reverse("admin:leads_trackedevent_change", args=[mapping.pk])
    changed = client.post(
        url, {"name": "Demo Requested", "activity_type": "quote_request", "is_active": "on"}
    )
    assert changed.status_code == 302
    send(client, "track", track, key=write_key)
    client.post(url, {"name": "Demo Requested", "activity_type": "quote_request"})
    dropped = send(client, "track", track, key=write_key)

    # Then track stored the new type, and nothing once the mapping is off (still answered 200)
    assert list(Activity.objects.values_list("type", flat=True)) == [ActivityType.QUOTE_REQUEST]
    assert dropped.status_code == 200


def test_event_names_are_unique_whatever_the_case(client, admin_user, default_events):
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:leads_trackedevent_add"),
        {"name": "demo REQUESTED", "activity_type": "demo_request", "is_active": "on"},
    )

    assert response.status_code == 200
    assert TrackedEvent.objects.filter(name__iexact="demo requested").count() == 1


def test_create_tracking_key_prints_a_key_that_works(client, db):
    # When an operator creates a key from the command line
    out = StringIO()
    call_command("create_tracking_key", "--name", "Marketing site", stdout=out)

    # Then the key alone is on the last line, stored only as a hash
    secret = out.getvalue().strip().splitlines()[-1]
    key = TrackingKey.objects.get()
    assert key.name == "Marketing site"
    assert secret not in (key.key_hash, key.prefix)
    # And it is accepted by the endpoint
    response = send(client, "identify", {"userId": "u-1", "traits": {"email": EMAIL}}, key=secret)
    assert response.status_code == 200


def test_key_added_in_the_admin_is_shown_once_and_works(client, marketer):
    client.force_login(marketer)

    response = client.post(
        reverse("admin:leads_trackingkey_add"), {"name": "App", "is_active": "on"}, follow=True
    )

    shown = [str(m) for m in response.context["messages"]]
    secret = shown[0].split("<code>")[1].split("</code>")[0]
    assert send(client, "page", {"anonymousId": "a"}, key=secret).status_code == 200


def test_pending_events_older_than_30_days_are_purged(db):
    now = timezone.now()
    for days in (31, 29):
        PendingEvent.objects.create(
            anonymous_id=f"a-{days}",
            type="page",
            message={"type": "page", "anonymousId": f"a-{days}"},
            occurred_at=now,
        )
        PendingEvent.objects.filter(anonymous_id=f"a-{days}").update(
            received_at=now - dt.timedelta(days=days)
        )

    deleted = purge_pending_events.delay().get()

    assert deleted == 1
    assert list(PendingEvent.objects.values_list("anonymous_id", flat=True)) == ["a-29"]


def test_seeded_event_mapping_uses_existing_activity_types():
    seed = importlib.import_module("leads.migrations.0006_tracked_event_defaults")

    assert set(seed.DEFAULT_EVENTS.values()) <= set(ActivityType.values)
    assert seed.DEFAULT_EVENTS["Demo Requested"] == ActivityType.DEMO_REQUEST
