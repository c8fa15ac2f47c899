"""Tracking calls that cannot be stored: a single call answers 400 saying why; in a batch
only the bad messages are refused, each with its reason, and their neighbours are stored."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.utils import timezone

from leads.models import Activity, Company, Lead, PendingEvent, TrackingKey
from tests.tracking_client import nothing_stored, send

EMAIL = "ada@fleet.example"


@pytest.fixture
def write_key(default_events) -> str:
    return TrackingKey.objects.issue(name="Website")[1]


def track(**fields: Any) -> str:
    """A track call of the known user as JSON text, ``fields`` given as JSON text too, so
    that they can hold what JSON has no spelling for (NaN, Infinity, 1e999)."""
    body = {"type": "track", "userId": "u-1", "event": "Demo Requested"}
    text = json.dumps(body)[:-1]
    return text + "".join(f', "{name}": {value}' for name, value in fields.items()) + "}"


def at(days: float) -> str:
    return json.dumps((timezone.now() + dt.timedelta(days=days)).isoformat())


# Each bad message as JSON text, with a piece of the reason the answer gives.
BAD_MESSAGES = [
    (track(properties='{"price": NaN}'), "finite"),
    (track(properties='{"price": Infinity}'), "finite"),
    (track(properties='{"price": -Infinity}'), "finite"),
    (track(properties='{"price": 1e999}'), "finite"),
    (track(timestamp='"0001-01-01T00:00:00Z"', sentAt='"9999-12-31T23:59:59Z"'), "too far"),
    (track(timestamp='"2026-01-01T00:00:00+16:00"'), "offset"),
    (track(timestamp='"2026-01-01T00:00:00-23:59"'), "offset"),
    (track(timestamp='"2026-01-01T00:00:00+99:00"'), "ISO 8601"),
    (track(sentAt='"2026-01-01T00:00:00+20:00"'), "offset"),
    (track(timestamp='"0001-01-01T00:00:00Z"'), "before 2000"),
    (track(timestamp='"1999-12-31T23:59:59Z"'), "before 2000"),
    (track(timestamp='"9999-12-31T23:59:59Z"'), "in the future"),
    (track(timestamp=at(1)), "in the future"),
    (
        '{"type": "group", "userId": "u-1", "groupId": "g-1", '
        '"traits": {"name": "Huge", "employees": 123456789012345678901234567890}}',
        "employees",
    ),
    (
        '{"type": "group", "userId": "u-1", "groupId": "g-1", '
        '"traits": {"name": "Huge", "employees": "123456789012345678901234567890"}}',
        "employees",
    ),
    ('{"type": "identify", "userId": "u-2", "traits": {"email": "zoë@fleet.example"}}', "ASCII"),
    ('{"type": "identify", "userId": "u-2", "traits": {"email": "not an email"}}', "valid email"),
    ('{"type": "identify", "userId": "u-2", "context": {"traits": "ada"}}', "context.traits"),
    (track(properties='{"note": "a\\u0000b"}'), "NUL"),
    (track(properties='{"note": "\\ud800"}'), "surrogate"),
    (track(properties=json.dumps({"pad": "x" * 33_000})), "32 KB"),
    ('"not an object"', "not a JSON object"),
]


def test_a_batch_stores_its_valid_messages_and_names_each_refused_one(client, write_key):
    # Given a known user
    send(client, "identify", {"userId": "u-1", "traits": {"email": EMAIL}}, key=write_key)
    # And a batch of 25 valid events with every kind of bad message among them
    valid = [track(messageId=f'"m-{i}"', properties=f'{{"n": {i}}}') for i in range(25)]
    bad = [message for message, _ in BAD_MESSAGES]
    items = [m for pair in zip(valid, bad, strict=False) for m in pair] + valid[len(bad) :]
    body = '{"batch": [' + ", ".join(items) + "]}"

    # When it is sent
    response = send(client, "batch", body.encode(), key=write_key)

    # Then it is answered 200, naming each bad message with its reason
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["success"] is True
    rejected = answer["rejected"]
    assert [r["index"] for r in rejected] == [items.index(m) for m in bad]
    for rejection, (_, reason) in zip(rejected, BAD_MESSAGES, strict=True):
        assert rejection["message"].startswith(f"Message {rejection['index']} of the batch")
        assert reason in rejection["message"], rejection
    # And every valid event is stored, and nothing of the bad ones
    stored = Activity.objects.values_list("idempotency_key", flat=True)
    assert sorted(stored) == sorted(f"m-{i}" for i in range(25))
    assert not Company.objects.exists()
    assert list(Lead.objects.values_list("email", flat=True)) == [EMAIL]


def test_duplicates_in_a_batch_with_refused_messages_keep_their_positions(client, write_key):
    send(client, "identify", {"userId": "u-1", "traits": {"email": EMAIL}}, key=write_key)
    send(client, "track", json.loads(track(messageId='"m-1"')), key=write_key)
    body = '{"batch": [' + ", ".join([track(timestamp=at(2)), track(messageId='"m-1"')]) + "]}"

    answer = send(client, "batch", body.encode(), key=write_key).json()

    assert answer["duplicates"] == [1]
    assert [r["index"] for r in answer["rejected"]] == [0]


@pytest.mark.parametrize(("message", "reason"), BAD_MESSAGES)
def test_a_single_bad_call_answers_400_saying_why_and_stores_nothing(
    client, write_key, message, reason
):
    call = json.loads(message)["type"] if message.startswith("{") else "track"

    response = send(client, call, message.encode(), key=write_key)

    assert response.status_code in (400, 413), response.content
    answer = response.json()
    assert answer["success"] is False
    assert reason in answer["message"], answer
    assert nothing_stored()


def test_a_batch_whose_shared_context_cannot_be_stored_is_refused_whole(client, write_key):
    body = {"context": {"ip": "\u0000"}, "batch": [json.loads(track())]}

    response = send(client, "batch", body, key=write_key)

    assert response.status_code == 400
    assert "NUL" in response.json()["message"]
    assert not PendingEvent.objects.exists()


# --- Traits -----------------------------------------------------------------------------


def test_identify_with_traits_in_the_context_creates_the_lead(client, write_key):
    # Given an identify as RudderStack's Python SDK sends it: traits in context.traits only
    body = {
        "type": "identify",
        "userId": "u-1",
        "context": {"traits": {"email": EMAIL, "firstName": "Ada", "title": "CTO"}},
    }

    # When it arrives, followed by an event of the user
    first = send(client, "identify", body, key=write_key)
    send(client, "track", json.loads(track()), key=write_key)

    # Then the lead is created from those traits, and the event is the lead's
    assert first.json() == {"success": True}
    lead = Lead.objects.get()
    assert (lead.email, lead.first_name, lead.job_title) == (EMAIL, "Ada", "CTO")
    assert Activity.objects.get().lead == lead
    assert not PendingEvent.objects.exists()


def test_top_level_traits_win_over_the_context_ones(client, write_key):
    body = {
        "userId": "u-1",
        "traits": {"email": EMAIL, "firstName": "Ada"},
        "context": {"traits": {"email": "old@fleet.example", "lastName": "Lovelace"}},
    }

    send(client, "identify", body, key=write_key)

    lead = Lead.objects.get()
    assert (lead.email, lead.first_name, lead.last_name) == (EMAIL, "Ada", "Lovelace")


def test_an_internationalized_domain_is_accepted_as_forms_accept_it(client, write_key):
    body = {"userId": "u-1", "traits": {"email": "Ada@Bücher.example"}}

    response = send(client, "identify", body, key=write_key)

    assert response.json() == {"success": True}
    assert Lead.objects.get().email == "ada@bücher.example"


def test_a_non_ascii_mailbox_name_is_refused_saying_why_nothing_pending(client, write_key):
    body = {"userId": "u-1", "traits": {"email": "zoë@fleet.example"}}

    response = send(client, "identify", body, key=write_key)

    assert response.status_code == 400
    assert "before the @" in response.json()["message"]
    assert nothing_stored()


def test_a_group_whose_website_is_no_url_finds_its_company_by_name(client, write_key):
    send(client, "identify", {"userId": "u-1", "traits": {"email": EMAIL}}, key=write_key)
    body = {"userId": "u-1", "groupId": "g-1", "traits": {"name": "Fleet", "website": "http://[x"}}

    response = send(client, "group", body, key=write_key)

    assert response.json() == {"success": True}
    assert Lead.objects.get().company == Company.objects.get(name="Fleet", domain="")
