"""With the database unreachable nothing can be stored: every way in answers 503 with
``Retry-After``, in its documented error shape, so the client sends it again later."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import Client

from leads.models import Activity, TrackingKey, WebForm
from tests.api_client import error_of, token_client
from tests.conftest import free_port
from tests.factories import LeadFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class Database:
    """Takes the database away from this process and gives it back: while it is down,
    connecting is refused, as when its server has stopped."""

    def __init__(self) -> None:
        self.saved = {name: connection.settings_dict[name] for name in ("HOST", "PORT")}

    def down(self) -> None:
        connection.close()
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))

    def up(self) -> None:
        connection.close()
        connection.settings_dict.update(self.saved)


@pytest.fixture
def database() -> Iterator[Database]:
    database = Database()
    yield database
    database.up()


def test_api_answers_503_with_retry_after_when_the_database_is_down(rep, database):
    lead = LeadFactory(owner=rep)
    client = token_client(rep)
    database.down()

    response = client.post(
        "/api/v1/activities/",
        {"lead": lead.pk, "type": "page_view", "url": "https://x.example/pricing"},
        format="json",
    )

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert error_of(response)["code"] == "unavailable"


def test_tracking_answers_503_with_retry_after_when_the_database_is_down(database):
    _, key = TrackingKey.objects.issue(name="Website")
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    database.down()

    response = Client().post(
        "/v1/track",
        {"userId": "u-1", "event": "Demo Requested"},
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
    )

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    body = json.loads(response.content)
    assert (body["success"], body["code"]) == (False, "unavailable")


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "browser"])
def test_form_post_answers_503_with_retry_after_when_the_database_is_down(database, as_json):
    form = WebForm.objects.create(name="Demo", field_mapping={"email": "email"})
    database.down()

    headers = {"HTTP_ACCEPT": "application/json"} if as_json else {}
    response = Client().post(f"/f/{form.key}/", {"email": "ada@x.example"}, **headers)

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    if as_json:
        assert error_of(response)["code"] == "unavailable"
    else:
        assert b"Send it again later" in response.content


def test_a_request_refused_while_the_database_was_down_succeeds_when_sent_again(rep, database):
    lead = LeadFactory(owner=rep)
    client = token_client(rep)
    body = {"lead": lead.pk, "type": "page_view", "url": "https://x.example/pricing"}
    database.down()
    assert client.post("/api/v1/activities/", body, format="json").status_code == 503

    # When the database is back and the client sends it again
    database.up()
    response = client.post("/api/v1/activities/", body, format="json")

    # Then it is stored, once
    assert response.status_code == 201, response.content
    assert Activity.objects.filter(lead=lead).count() == 1
