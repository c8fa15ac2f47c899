"""Bad input at every public edge: REST API, web forms and tracking answer an error in
their shape and store nothing; odd but valid text is stored intact."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from leads.models import Activity, Company, Lead, TrackingKey, WebForm
from tests.api_client import error_of, token_client
from tests.factories import LeadFactory

LEADS = "/api/v1/leads/"
ACTIVITIES = "/api/v1/activities/"
BULK = "/api/v1/activities/bulk/"
JSON = "application/json"
LONE_SURROGATE = '"\\ud800"'
EMOJI_AND_RTL = "Zoë 🚀 שלום עליכם مرحبا"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def days_from_now(days: float) -> str:
    return (timezone.now() + dt.timedelta(days=days)).isoformat()


def activity(**fields: Any) -> dict[str, Any]:
    return {"lead": "L", "type": "call", **fields}


# path, body (sent as JSON, or as is when text), content type, status, code, field at fault.
# "L" stands for the id of a lead the caller can see, "+2" for a time two days ahead.
REST_CASES = [
    (LEADS, '{"email": ', JSON, 400, "parse_error", None),
    (LEADS, "", JSON, 400, "invalid", "email"),
    (LEADS, "[]", JSON, 400, "invalid", "non_field_errors"),
    (LEADS, "[" * 100_000, JSON, 400, "parse_error", None),
    (LEADS, {"email": 42}, JSON, 400, "invalid", "email"),
    (
        LEADS,
        {"email": "ada@example.com", "first_name": ["Ada"]},
        JSON,
        400,
        "invalid",
        "first_name",
    ),
    (LEADS, {"email": "ada@example.com", "frist_name": "Ada"}, JSON, 400, "invalid", "frist_name"),
    (LEADS, {"email": "ada@"}, JSON, 400, "invalid", "email"),
    (
        LEADS,
        {"email": "ada@example.com", "first_name": "x" * 101},
        JSON,
        400,
        "invalid",
        "first_name",
    ),
    (LEADS, {"email": "a" * 250 + "@example.com"}, JSON, 400, "invalid", "email"),
    (
        LEADS,
        {"email": "ada@example.com", "first_name": "A\u0000da"},
        JSON,
        400,
        "invalid",
        "first_name",
    ),
    (
        LEADS,
        '{"email": "ada@example.com", "last_name": ' + LONE_SURROGATE + "}",
        JSON,
        400,
        "invalid",
        "last_name",
    ),
    (
        LEADS,
        {"email": "ada@example.com", "custom_fields": {"k\u0000": 1}},
        JSON,
        400,
        "invalid",
        "custom_fields",
    ),
    (
        LEADS,
        "email=ada@example.com",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
        None,
    ),
    (LEADS, '{"email": "ada@example.com"}', "text/plain", 415, "unsupported_media_type", None),
    (ACTIVITIES, activity(duration_seconds="long"), JSON, 400, "invalid", "duration_seconds"),
    (ACTIVITIES, activity(duration_seconds=-1), JSON, 400, "invalid", "duration_seconds"),
    (ACTIVITIES, activity(type=7), JSON, 400, "invalid", "type"),
    (ACTIVITIES, activity(colour="red"), JSON, 400, "invalid", "colour"),
    (ACTIVITIES, activity(url="https://x.example/" + "p" * 2000), JSON, 400, "invalid", "url"),
    (ACTIVITIES, activity(properties=[1, 2]), JSON, 400, "invalid", "properties"),
    (ACTIVITIES, activity(properties=nested(11)), JSON, 400, "invalid", "properties"),
    (ACTIVITIES, activity(properties={"blob": "x" * 17_000}), JSON, 400, "invalid", "properties"),
    (ACTIVITIES, activity(properties={"note": "a\u0000b"}), JSON, 400, "invalid", "properties"),
    (ACTIVITIES, activity(properties={"a\u0000": "b"}), JSON, 400, "invalid", "properties"),
    (
        ACTIVITIES,
        '{"lead": "L", "type": "call", "properties": {"p": ' + LONE_SURROGATE + "}}",
        JSON,
        400,
        "invalid",
        "properties",
    ),
    (ACTIVITIES, activity(idempotency_key="k\u0000"), JSON, 400, "invalid", "idempotency_key"),
    (ACTIVITIES, activity(occurred_at="1999-12-31T23:59:59Z"), JSON, 400, "invalid", "occurred_at"),
    (ACTIVITIES, activity(occurred_at="1970-01-01T00:00:00Z"), JSON, 400, "invalid", "occurred_at"),
    (ACTIVITIES, activity(occurred_at="+2"), JSON, 400, "invalid", "occurred_at"),
    (ACTIVITIES, activity(occurred_at="not a time"), JSON, 400, "invalid", "occurred_at"),
    (ACTIVITIES, activity(lead="forty-two"), JSON, 400, "invalid", "lead"),
    (BULK, "", JSON, 400, "invalid", "activities"),
    (BULK, {"activities": "call"}, JSON, 400, "invalid", "activities"),
    (BULK, {"activities": []}, JSON, 400, "invalid", "activities"),
    (
        BULK,
        {"activities": [activity(colour="red")]},
        JSON,
        400,
        "invalid",
        "activities.0.colour",
    ),
    (BULK, {"activities": [activity(url="a\u0000")]}, JSON, 400, "invalid", "activities.0.url"),
    (
        BULK,
        {"activities": [activity(properties=nested(12))]},
        JSON,
        400,
        "invalid",
        "activities.0.properties",
    ),
    (BULK, {"activities": [activity()], "extra": 1}, JSON, 400, "invalid", "extra"),
    (
        BULK,
        '{"activities": [{"lead": "L", "type": "call", "properties": {"p": 1e999}}]}',
        JSON,
        400,
        "invalid",
        "activities.0.properties",
    ),
    (
        ACTIVITIES,
        '{"lead": "L", "type": "call", "properties": {"p": [-1e999]}}',
        JSON,
        400,
        "invalid",
        "properties",
    ),
    (
        LEADS,
        '{"email": "ada@example.com", "custom_fields": {"n": 1e999}}',
        JSON,
        400,
        "invalid",
        "custom_fields",
    ),
    (ACTIVITIES, activity(occurred_at="9999-12-31T23:59:59Z"), JSON, 400, "invalid", "occurred_at"),
    (
        ACTIVITIES,
        activity(occurred_at="0001-01-01T00:00:00+15:00"),
        JSON,
        400,
        "invalid",
        "occurred_at",
    ),
    (BULK, {"activities": [activity()] * 1001}, JSON, 413, "too_large", None),
]


def counts() -> tuple[int, int, int]:
    return Lead.objects.count(), Activity.objects.count(), Company.objects.count()


def with_lead(body: Any, lead_id: int) -> Any:
    if isinstance(body, str):
        return body.replace('"L"', str(lead_id))
    text = json.dumps(body).replace('"L"', str(lead_id))
    return text.replace('"+2"', json.dumps(days_from_now(2)))


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "code", "field"),
    REST_CASES,
    ids=[f"{i}-{case[0].split('/')[3]}-{case[4]}-{case[5]}" for i, case in enumerate(REST_CASES)],
)
def test_rest_api_refuses_bad_input_and_stores_nothing(
    rep, path, body, content_type, status, code, field
):
    api = token_client(rep)
    lead = LeadFactory(owner=rep)
    before = counts()

    response = api.generic(
        "POST", path, with_lead(body, lead.pk).encode("utf-8", "surrogatepass"), content_type
    )

    assert response.status_code == status, response.content
    error = error_of(response)
    assert error["code"] == code
    if field is not None:
        assert field in error["fields"], error
    assert counts() == before


def test_emoji_and_right_to_left_text_are_stored_intact(rep):
    api = token_client(rep)
    lead_body = {"email": "zoe@example.com", "first_name": EMOJI_AND_RTL, "city": "تل أبيب"}

    made = api.post(LEADS, lead_body, format="json")
    logged = api.post(
        ACTIVITIES,
        activity(lead=made.json()["id"], properties={"📝": EMOJI_AND_RTL, "deep": nested(9)}),
        format="json",
    )

    assert (made.status_code, logged.status_code) == (201, 201), (made.content, logged.content)
    lead = Lead.objects.get()
    assert (lead.first_name, lead.city) == (EMOJI_AND_RTL, "تل أبيب")
    assert Activity.objects.get().properties == {"📝": EMOJI_AND_RTL, "deep": nested(9)}


# --- Web forms -------------------------------------------------------------------------


@pytest.fixture
def web_form(db) -> WebForm:
    return WebForm.objects.create(
        name="Demo request", field_mapping={"email": "email", "fname": "first_name"}
    )


FORM_CASES = [
    # body, content type, status, code, field
    ('{"email": ', JSON, 400, "parse_error", None),
    ("[" * 50_000, JSON, 400, "parse_error", None),
    ("[]", JSON, 400, "parse_error", None),
    ("{}", JSON, 400, "invalid", "email"),
    ("", JSON, 400, "parse_error", None),
    ({"email": 42}, JSON, 400, "invalid", "email"),
    ({"email": "ada@"}, JSON, 400, "invalid", "email"),
    ({"email": "ada@example.com", "fname": {"first": "Ada"}}, JSON, 400, "invalid", "fname"),
    ({"email": "ada@example.com", "fname": "x" * 101}, JSON, 400, "invalid", "fname"),
    ({"email": "ada@example.com", "fname": "A\u0000da"}, JSON, 400, "invalid", "fname"),
    ({"email": "ada@example.com", "note\u0000": "hi"}, JSON, 400, "invalid", "note\u0000"),
    (
        '{"email": "ada@example.com", "fname": ' + LONE_SURROGATE + "}",
        JSON,
        400,
        "invalid",
        "fname",
    ),
    (
        "email=ada%40example.com&fname=A%00da",
        "application/x-www-form-urlencoded",
        400,
        "invalid",
        "fname",
    ),
    ({"email": "ada@example.com", "notes": "x" * 70_000}, JSON, 413, "too_large", None),
    ({"email": "zoë@example.com"}, JSON, 400, "invalid", "email"),
    ("email=ada@example.com", "text/plain", 415, "unsupported_media_type", None),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code", "field"), FORM_CASES)
def test_form_endpoint_refuses_bad_input_and_stores_nothing(
    web_form, body, content_type, status, code, field
):
    before = counts()
    data = body if isinstance(body, str) else json.dumps(body)

    response = Client().generic(
        "POST",
        f"/f/{web_form.key}/",
        data.encode("utf-8", "surrogatepass"),
        content_type,
        CONTENT_TYPE=content_type,
        HTTP_ACCEPT=JSON,
    )

    assert response.status_code == status, response.content
    error = error_of(response)
    assert error["code"] == code
    if field is not None:
        assert field in error["fields"], error
    assert counts() == before


def test_a_form_key_with_a_nul_answers_404(db):
    response = Client().post("/f/%00/", {"email": "ada@example.com"}, HTTP_ACCEPT=JSON)

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert counts() == (0, 0, 0)


def test_a_non_ascii_mailbox_name_is_refused_saying_why(web_form):
    response = Client().post(f"/f/{web_form.key}/", {"email": "zoë@example.com"}, HTTP_ACCEPT=JSON)

    assert response.status_code == 400
    (message,) = error_of(response)["fields"]["email"]
    assert "before the @" in message


# --- Filters ---------------------------------------------------------------------------

FILTER_CASES = [
    ("/api/v1/leads/", "updated_since"),
    ("/api/v1/activities/", "occurred_after"),
    ("/api/v1/activities/", "occurred_before"),
    ("/api/v1/tasks/", "due_before"),
]


@pytest.mark.parametrize(("path", "name"), FILTER_CASES)
@pytest.mark.parametrize("offset", ["+16:00", "-15:59:30", "+23:59"])
def test_a_time_filter_with_an_offset_beyond_the_databases_answers(rep, path, name, offset):
    response = token_client(rep).get(path, {name: f"2026-01-01T00:00:00{offset}"})

    assert response.status_code == 200, response.content


def test_a_time_filter_with_an_offset_beyond_15_59_compares_in_utc(rep):
    # Given an activity at midnight UTC
    lead = LeadFactory(owner=rep)
    Activity.objects.create(
        lead=lead, type="page_view", occurred_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    api = token_client(rep)

    # When filtered by times a minute either side, written with an offset of +23:59
    after = api.get("/api/v1/activities/", {"occurred_after": "2026-01-01T23:58:00+23:59"})
    before = api.get("/api/v1/activities/", {"occurred_after": "2026-01-02T00:00:00+23:59"})

    # Then each is compared as the UTC time it names
    assert len(after.json()["results"]) == 1
    assert before.json()["results"] == []


@pytest.mark.parametrize(("path", "name"), FILTER_CASES)
def test_a_time_filter_takes_the_largest_offsets_in_use(rep, path, name):
    api = token_client(rep)

    answers = [api.get(path, {name: f"2026-01-01T00:00:00{o}"}) for o in ("+14:00", "-15:59")]

    assert [a.status_code for a in answers] == [200, 200]


def test_form_keeps_emoji_and_right_to_left_text(web_form):
    response = Client().post(
        f"/f/{web_form.key}/",
        {"email": "zoe@example.com", "fname": EMOJI_AND_RTL},
        content_type=JSON,
    )

    assert response.status_code == 202, response.content
    assert Lead.objects.get().first_name == EMOJI_AND_RTL


# --- Tracking --------------------------------------------------------------------------


@pytest.fixture
def write_key(default_events) -> str:
    return TrackingKey.objects.issue(name="Website")[1]


def track(**fields: Any) -> dict[str, Any]:
    return {"userId": "u-1", "event": "Signed Up", "properties": {"plan": "pro"}, **fields}


TRACKING_CASES = [
    # call, body, content type, status, code
    ("track", '{"event": ', JSON, 400, "invalid_request"),
    ("track", "[" * 20_000, JSON, 400, "invalid_request"),
    ("track", "[]", JSON, 400, "invalid_request"),
    ("track", "", JSON, 400, "invalid_request"),
    ("track", track(event=["Signed Up"]), JSON, 400, "invalid_request"),
    ("track", track(userId=None), JSON, 400, "invalid_request"),
    ("track", track(timestamp="yesterday"), JSON, 400, "invalid_request"),
    ("track", track(properties={"plan": "p\u0000ro"}), JSON, 400, "invalid_request"),
    (
        "track",
        '{"userId": "u-1", "event": "E", "properties": {"p": ' + LONE_SURROGATE + "}}",
        JSON,
        400,
        "invalid_request",
    ),
    ("track", track(properties={"blob": "x" * 40_000}), JSON, 400, "too_large"),
    ("batch", {"batch": "track"}, JSON, 400, "invalid_request"),
    ("batch", {"batch": [track()], "context": {"ip": "\u0000"}}, JSON, 400, "invalid_request"),
]


@pytest.mark.parametrize(("call", "body", "content_type", "status", "code"), TRACKING_CASES)
def test_tracking_endpoint_refuses_bad_input_and_stores_nothing(
    write_key, call, body, content_type, status, code
):
    before = counts()
    data = body if isinstance(body, str) else json.dumps(body)

    response = Client().generic(
        "POST",
        f"/v1/{call}",
        data.encode("utf-8", "surrogatepass"),
        content_type,
        HTTP_AUTHORIZATION=_basic(write_key),
    )

    assert response.status_code == status, response.content
    assert response.json() == {
        "success": False,
        "code": code,
        "message": response.json()["message"],
    }
    assert counts() == before


def test_tracking_keeps_emoji_and_right_to_left_text(write_key):
    body = {"userId": "u-1", "traits": {"email": "zoe@example.com", "firstName": EMOJI_AND_RTL}}

    response = Client().post(
        "/v1/identify", body, content_type=JSON, HTTP_AUTHORIZATION=_basic(write_key)
    )

    assert response.status_code == 200, response.content
    assert Lead.objects.get().first_name == EMOJI_AND_RTL


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()
