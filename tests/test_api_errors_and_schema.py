"""The API's one error shape, its throttling, and its OpenAPI schema and docs page."""

from __future__ import annotations

import uuid

import pytest
from django.core.management import call_command
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from tests.api_client import error_of, token_client
from tests.factories import LeadFactory


def test_415_for_a_body_that_is_not_json(rep):
    response = token_client(rep).post(
        "/api/v1/leads/", "email=a@example.com", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_400_for_malformed_json(rep):
    response = token_client(rep).post(
        "/api/v1/leads/", "{not json", content_type="application/json"
    )

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "parse_error"
    assert error["message"].startswith("JSON parse error")


def test_404_for_an_unknown_id(rep):
    response = token_client(rep).get("/api/v1/leads/424242/")

    assert response.status_code == 404
    assert error_of(response) == {
        "status": 404,
        "code": "not_found",
        "message": "Not found.",
        "fields": {},
    }


@pytest.fixture
def throttle_history(monkeypatch):
    """Throttle counts in a cache of this test's own: the shared cache is cleared by the
    tests other processes run at the same time."""
    from django.core.cache.backends.locmem import LocMemCache
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "cache", LocMemCache(f"throttle-{uuid.uuid4()}", {}))


def test_429_with_retry_after_when_throttled(rep, monkeypatch, throttle_history):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "2/minute", "anon": None})
    client = token_client(rep)

    statuses = [client.get("/api/v1/leads/").status_code for _ in range(3)]
    response = client.get("/api/v1/leads/")

    assert statuses == [200, 200, 429]
    assert error_of(response)["code"] == "throttled"
    assert int(response["Retry-After"]) > 0


def test_anonymous_callers_of_public_endpoints_are_throttled(db, monkeypatch, throttle_history):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "1/minute", "user": None})
    client = token_client(None)

    first, second = client.get("/api/schema/"), client.get("/api/schema/")

    assert (first.status_code, second.status_code) == (200, 429)
    assert "Retry-After" in second


def test_schema_answers_and_lists_every_resource(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in [
        "/api/v1/leads/",
        "/api/v1/leads/{id}/score/",
        "/api/v1/leads/{id}/transition/",
        "/api/v1/activities/bulk/",
        "/api/v1/companies/",
        "/api/v1/deals/",
        "/api/v1/tasks/",
        "/api/v1/notes/",
        "/api/v1/tokens/",
        "/api/v1/tokens/{id}/revoke/",
        "/api/v1/scoring-models/{model_pk}/rules/{id}/",
    ]:
        assert path in paths, path
    leads = paths["/api/v1/leads/"]["get"]
    params = {p["name"] for p in leads["parameters"]}
    assert {"owner", "score_min", "updated_since", "search", "ordering", "cursor"} <= params
    assert {"400", "401", "403", "429"} <= set(leads["responses"])
    assert "409" in paths["/api/v1/leads/{id}/transition/"]["post"]["responses"]
    assert "413" in paths["/api/v1/activities/bulk/"]["post"]["responses"]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    assert "/api/v1/leads/" in target.read_text()


def test_docs_page_loads_swagger_ui_from_the_sidecar_package(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "/api/schema/" in page


@pytest.mark.parametrize("method", ["put", "delete"])
def test_405_names_the_method(rep, method):
    lead = LeadFactory(owner=rep)
    response = getattr(token_client(rep), method)(
        f"/api/v1/activities/{lead.pk}/", {}, format="json"
    )

    assert response.status_code == 405
    assert method.upper() in error_of(response)["message"]
