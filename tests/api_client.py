"""API clients for tests: one signed in with a real Bearer token, as a REST client would be."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from crm.models import ApiToken, User


def token_client(user: User | None) -> APIClient:
    """An APIClient sending a fresh token of ``user`` (anonymous for None)."""
    client = APIClient()
    if user is not None:
        _, key = ApiToken.objects.issue(user=user, name="tests")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def error_of(response: Any) -> dict[str, Any]:
    """The error object of a response, checked to have the API's one shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"status", "code", "message", "fields"}, error
    assert error["status"] == response.status_code
    return error


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]
