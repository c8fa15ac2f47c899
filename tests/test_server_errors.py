"""A server error answers in the shape its caller reads: JSON on the API, form and tracking
paths, an HTML page for people in a browser."""

from __future__ import annotations

import pytest
from django.test import Client

from leads.models import LeadQuerySet, TrackingKey, WebForm
from tests.api_client import error_of, token_client
from tests.tracking_client import send


class Failure(Exception):
    """Stands for any fault a request may hit (a bug, a lost database connection)."""


def fail(*args, **kwargs):
    raise Failure("the database went away")


@pytest.fixture
def failing_lead_queries(monkeypatch):
    # Every way a surface narrows leads to what its user may see.
    monkeypatch.setattr(LeadQuerySet, "visible_to", fail)
    monkeypatch.setattr(LeadQuerySet, "visible_in_rank", fail)


def test_api_server_error_answers_the_error_shape(rep, failing_lead_queries):
    client = token_client(rep)
    client.raise_request_exception = False

    response = client.get("/api/v1/leads/", HTTP_ACCEPT="text/html")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    error = error_of(response)
    assert (error["code"], error["fields"]) == ("server_error", {})
    assert "the database went away" not in response.content.decode()


def test_form_post_server_error_answers_the_error_shape(db, monkeypatch):
    monkeypatch.setattr("api.forms.lead_submit_form", fail)
    form = WebForm.objects.create(name="Demo request")

    response = Client(raise_request_exception=False).post(
        f"/f/{form.key}/", {"email": "ada@example.com"}, content_type="application/json"
    )

    assert response.status_code == 500
    assert error_of(response)["code"] == "server_error"


def test_tracking_server_error_answers_segments_error_shape(default_events, monkeypatch):
    monkeypatch.setattr("api.tracking.tracking_messages_ingest", fail)
    _, write_key = TrackingKey.objects.issue(name="Website")

    response = send(
        Client(raise_request_exception=False),
        "track",
        {"userId": "u-1", "event": "Demo Requested"},
        key=write_key,
    )

    assert response.status_code == 500
    body = response.json()
    assert (body["success"], body["code"]) == (False, "server_error")
    assert set(body) == {"success", "code", "message"}
    assert response["Access-Control-Allow-Origin"] == "*"


def test_a_page_for_people_keeps_the_html_error_page(client, rep, failing_lead_queries):
    client.force_login(rep)
    client.raise_request_exception = False

    response = client.get("/leads/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")


def test_a_page_asked_for_as_json_answers_the_error_shape(client, rep, failing_lead_queries):
    client.force_login(rep)
    client.raise_request_exception = False

    response = client.get("/leads/", HTTP_ACCEPT="application/json")

    assert response.status_code == 500
    assert error_of(response)["code"] == "server_error"
