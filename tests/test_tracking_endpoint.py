"""The Segment-compatible endpoint /v1/…: keys, bodies, limits, answers and idempotency."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import override_settings
from django.utils import timezone

from leads.models import Activity, ActivityType, Lead, PendingEvent, TrackingKey
from tests.tracking_client import basic_auth, nothing_stored, send

EMAIL = "ada@fleet.example"


@pytest.fixture
def write_key(default_events) -> str:
    _, secret = TrackingKey.objects.issue(name="Website")
    return secret


def identify(**fields) -> dict:
    return {"userId": "u-1", "traits": {"email": EMAIL, "firstName": "Ada"}, **fields}


def test_identify_with_basic_auth_creates_the_lead(client, write_key):
    # When a back end identifies a user with its write key as the Basic user name
    response = send(client, "identify", identify(), key=write_key)

    # Then it answers as Segment does and the lead exists
    assert (response.status_code, response.json()) == (200, {"success": True})
    lead = Lead.objects.get()
    assert (lead.email, lead.first_name) == (EMAIL, "Ada")


def test_write_key_in_the_body_is_accepted(client, write_key):
    response = send(client, "identify", identify(writeKey=write_key))

    assert (response.status_code, response.json()) == (200, {"success": True})
    assert Lead.objects.filter(email=EMAIL).exists()


def test_key_use_is_recorded(client, write_key):
    send(client, "identify", identify(), key=write_key)

    assert TrackingKey.objects.get().last_used_at is not None


@pytest.mark.parametrize(
    "headers_or_body",
    [
        {"headers": basic_auth("hlw_wrong")},
        {"body": {"writeKey": "hlw_wrong"}},
        {"body": {}},
        {"headers": {"HTTP_AUTHORIZATION": "Basic !!not-base64"}},
        {"inactive": True},
    ],
    ids=["wrong-basic", "wrong-body", "missing", "garbled-basic", "inactive"],
)
def test_bad_or_missing_key_answers_401_and_stores_nothing(client, write_key, headers_or_body):
    # Given a call with a wrong, missing or switched-off key
    body = {**identify(), **headers_or_body.get("body", {})}
    headers = headers_or_body.get("headers", {})
    if headers_or_body.get("inactive"):
        TrackingKey.objects.update(is_active=False)
        headers = basic_auth(write_key)

    # When it is sent
    response = client.post(
        "/v1/identify", json.dumps(body), content_type="application/json", **headers
    )

    # Then it is refused in Segment's shape and nothing is stored
    assert response.status_code == 401
    assert response.json()["success"] is False
    assert response.json()["message"]
    assert nothing_stored()


def test_key_only_submits_it_cannot_read(client, write_key):
    # The tracking URLs take POST only, and the key opens nothing else
    assert client.get("/v1/identify", **basic_auth(write_key)).status_code == 405
    api = client.get("/api/v1/leads/", HTTP_AUTHORIZATION=f"Bearer {write_key}")
    assert api.status_code == 401


@pytest.mark.parametrize(
    ("call", "body"),
    [
        ("track", {"userId": "u-1", "event": "Demo Requested", "properties": {"plan": "pro"}}),
        (
            "page",
            {"userId": "u-1", "name": "Pricing", "properties": {"url": "https://x.example/p"}},
        ),
        ("screen", {"userId": "u-1", "name": "Dashboard"}),
    ],
)
def test_event_calls_of_a_known_user_record_an_activity(client, write_key, call, body):
    # Given a user identified earlier
    send(client, "identify", identify(), key=write_key)

    # When the call is sent
    response = send(client, call, body, key=write_key)

    # Then the activity is stored for the lead, from the tracking source
    assert response.status_code == 200, response.content
    activity = Activity.objects.get()
    assert (activity.lead.email, activity.source) == (EMAIL, "tracking")
    expected = ActivityType.DEMO_REQUEST if call == "track" else ActivityType.PAGE_VIEW
    assert activity.type == expected


def test_page_takes_its_url_from_properties_else_context(client, write_key):
    send(client, "identify", identify(), key=write_key)

    send(
        client,
        "page",
        {"userId": "u-1", "properties": {"url": "https://x.example/a"}},
        key=write_key,
    )
    send(
        client,
        "page",
        {"userId": "u-1", "context": {"page": {"url": "https://x.example/b"}}},
        key=write_key,
    )

    assert sorted(Activity.objects.values_list("url", flat=True)) == [
        "https://x.example/a",
        "https://x.example/b",
    ]


def test_unmapped_event_is_kept_as_a_custom_activity(client, write_key):
    send(client, "identify", identify(), key=write_key)

    response = send(
        client,
        "track",
        {"userId": "u-1", "event": "Invoice Paid", "properties": {"n": 3}},
        key=write_key,
    )

    assert response.status_code == 200
    activity = Activity.objects.get()
    assert activity.type == ActivityType.CUSTOM
    assert activity.properties == {"n": 3, "event": "Invoice Paid"}


def test_batch_stores_every_message_with_batch_level_context(client, write_key):
    # Given a batch as the client libraries send it, with context at the batch level
    body = {
        "batch": [
            {"type": "identify", **identify()},
            {"type": "track", "userId": "u-1", "event": "Signed Up", "messageId": "m-1"},
            {"type": "page", "userId": "u-1", "messageId": "m-2"},
        ],
        "context": {"page": {"url": "https://x.example/welcome"}},
    }

    # When it is sent to /v1/batch and the same shape to /v1/import
    response = send(client, "batch", body, key=write_key)
    again = send(client, "import", {**body, "batch": body["batch"][1:]}, key=write_key)

    # Then each message is stored once, the page with the batch's page URL, and the
    # second batch says both of its messages were repeats
    assert response.json() == {"success": True}
    assert again.json() == {"success": True, "duplicates": [0, 1]}
    types = sorted(Activity.objects.values_list("type", "url"))
    assert types == [
        (ActivityType.PAGE_VIEW, "https://x.example/welcome"),
        (ActivityType.TRIAL_SIGNUP, "https://x.example/welcome"),
    ]


def test_analytics_js_one_letter_paths_are_the_same_calls(client, write_key):
    # When analytics.js sends identify, page and track to /v1/i, /v1/p, /v1/t and a batch
    # to /v1/b
    answers = [
        send(client, "i", identify(), key=write_key),
        send(client, "p", {"userId": "u-1", "messageId": "m-1"}, key=write_key),
        send(
            client,
            "t",
            {"userId": "u-1", "event": "Demo Requested", "messageId": "m-2"},
            key=write_key,
        ),
        send(
            client,
            "b",
            {"batch": [{"type": "track", "userId": "u-1", "event": "Signed Up"}]},
            key=write_key,
        ),
    ]

    # Then each is the call it stands for
    assert [answer.json() for answer in answers] == [{"success": True}] * 4
    assert sorted(Activity.objects.values_list("type", flat=True)) == sorted(
        [ActivityType.PAGE_VIEW, ActivityType.DEMO_REQUEST, ActivityType.TRIAL_SIGNUP]
    )
    assert Lead.objects.get().email == EMAIL


def test_gzipped_batch_is_accepted(client, write_key):
    body = {"batch": [{"type": "identify", **identify()}]}

    response = send(client, "batch", body, key=write_key, gzipped=True)

    assert (response.status_code, response.json()) == (200, {"success": True})
    assert Lead.objects.filter(email=EMAIL).exists()


def test_message_id_is_the_idempotency_key(client, write_key):
    # Given a known user
    send(client, "identify", identify(), key=write_key)
    track = {"userId": "u-1", "event": "Demo Requested", "messageId": "msg-42"}

    # When the client sends the same message twice (a retry)
    first = send(client, "track", track, key=write_key)
    second = send(client, "track", track, key=write_key)

    # Then both succeed, the second says it was a repeat, and one activity is stored
    assert (first.json(), second.json()) == (
        {"success": True},
        {"success": True, "duplicate": True},
    )
    activity = Activity.objects.get()
    assert (activity.source, activity.idempotency_key) == ("tracking", "msg-42")


def test_repeated_anonymous_message_is_kept_once(client, write_key):
    track = {"anonymousId": "anon-1", "event": "Demo Requested", "messageId": "msg-7"}

    first = send(client, "track", track, key=write_key)
    second = send(client, "track", track, key=write_key)

    assert (first.json(), second.json()) == (
        {"success": True},
        {"success": True, "duplicate": True},
    )
    assert PendingEvent.objects.count() == 1


def test_clock_skew_is_corrected_with_sent_at(client, write_key):
    # Given a device whose clock is 2 hours fast, sending an event it saw 30 seconds before
    device_now = timezone.now() + dt.timedelta(hours=2)
    event_time = device_now - dt.timedelta(seconds=30)
    send(client, "identify", identify(), key=write_key)
    body = {
        "userId": "u-1",
        "event": "Demo Requested",
        "timestamp": event_time.isoformat(),
        "sentAt": device_now.isoformat(),
    }

    # When it arrives
    before = timezone.now()
    send(client, "track", body, key=write_key)
    after = timezone.now()

    # Then the event is dated 30 seconds before the server received it
    occurred = Activity.objects.get().occurred_at
    assert before - dt.timedelta(seconds=30) <= occurred <= after - dt.timedelta(seconds=30)


def test_without_sent_at_the_timestamp_is_taken_as_is(client, write_key):
    send(client, "identify", identify(), key=write_key)
    when = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)

    send(client, "page", {"userId": "u-1", "timestamp": "2026-03-01T12:00:00Z"}, key=write_key)
    send(
        client,
        "page",
        {"userId": "u-1", "originalTimestamp": "2026-03-01T12:00:00Z"},
        key=write_key,
    )

    assert list(Activity.objects.values_list("occurred_at", flat=True)) == [when, when]


@pytest.mark.parametrize(
    ("call", "body", "message"),
    [
        ("identify", b"{not json", "not valid JSON"),
        ("identify", b"[1, 2]", "not a JSON object"),
        ("identify", {"traits": {"email": EMAIL}}, "neither a userId nor an anonymousId"),
        ("track", {"userId": "u-1"}, "without an event name"),
        ("group", {"userId": "u-1"}, "without a groupId"),
        ("alias", {"userId": "u-1"}, "without both userId and previousId"),
        ("page", {"userId": "u-1", "timestamp": "yesterday"}, "timestamp"),
        ("batch", {"messages": []}, "no batch list"),
    ],
)
def test_malformed_calls_answer_400_naming_the_problem_and_store_nothing(
    client, write_key, call, body, message
):
    response = send(client, call, body, key=write_key)

    assert response.status_code == 400
    assert response.json()["success"] is False
    assert message in response.json()["message"], response.json()
    assert nothing_stored()


def test_a_batch_refuses_its_malformed_messages_alone(client, write_key):
    # Given a batch whose messages 1 to 3 are malformed around a valid identify
    batch = [
        identify(type="identify"),
        {"userId": "u-1"},
        {"type": "explode", "userId": "u"},
        "x",
    ]

    # When it is sent
    response = send(client, "batch", {"batch": batch}, key=write_key)

    # Then the identify is stored and each bad message is named with its reason
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "rejected": [
            {
                "index": 1,
                "code": "invalid_request",
                "message": "Message 1 of the batch has no type.",
            },
            {
                "index": 2,
                "code": "invalid_request",
                "message": "Message 2 of the batch has an unknown type “explode”.",
            },
            {
                "index": 3,
                "code": "invalid_request",
                "message": "Message 3 of the batch is not a JSON object.",
            },
        ],
    }
    assert Lead.objects.get().email == EMAIL


def test_a_bad_gzip_body_answers_400(client, write_key):
    response = client.post(
        "/v1/batch",
        b"\x1f\x8bnot gzip at all",
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
        **basic_auth(write_key),
    )

    assert response.status_code == 400
    assert "gzip" in response.json()["message"]


def test_a_message_over_32_kb_is_refused_alone(client, write_key):
    big = identify(traits={"email": EMAIL, "notes": "x" * (32 * 1024)})

    single = send(client, "identify", big, key=write_key)
    assert single.status_code == 400
    assert "32 KB" in single.json()["message"]
    assert nothing_stored()

    in_batch = send(
        client,
        "batch",
        {"batch": [identify(type="identify"), {"type": "identify", **big}]},
        key=write_key,
    )
    assert in_batch.status_code == 200
    (rejection,) = in_batch.json()["rejected"]
    assert rejection == {
        "index": 1,
        "code": "too_large",
        "message": "Message 1 of the batch is larger than 32 KB.",
    }
    assert Lead.objects.count() == 1


def test_a_batch_over_500_kb_answers_400_and_stores_nothing(client, write_key):
    # Given a batch of messages each under 32 KB, together over 500 KB once decompressed
    items = [
        {"type": "track", "userId": "u-1", "event": "Big", "properties": {"pad": "x" * 20_000}}
        for _ in range(30)
    ]

    # When it is sent gzipped (small on the wire)
    response = send(
        client, "batch", {"batch": [identify(type="identify"), *items]}, key=write_key, gzipped=True
    )

    # Then it is refused whole
    assert response.status_code == 400
    assert "500 KB" in response.json()["message"]
    assert nothing_stored()


@override_settings(TRACKING_RATE_PER_KEY=2)
def test_over_the_rate_limit_answers_429_with_retry_after(client, write_key, private_rate_limits):
    responses = [send(client, "identify", identify(), key=write_key) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 429]
    assert int(responses[2]["Retry-After"]) >= 1
    assert responses[2].json()["success"] is False


def test_browsers_on_any_site_may_call_it(client, write_key):
    preflight = client.options("/v1/track", HTTP_ORIGIN="https://www.acme.example")
    response = send(client, "identify", identify(), key=write_key)

    assert preflight.status_code == 204
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]
    assert response["Access-Control-Allow-Origin"] == "*"


def test_text_plain_body_with_write_key_is_accepted_as_analytics_js_sends_it(client, write_key):
    body = json.dumps({**identify(), "writeKey": write_key})

    response = client.post("/v1/identify", body, content_type="text/plain")

    assert response.status_code == 200
    assert Lead.objects.filter(email=EMAIL).exists()
