"""Personal API tokens: created once shown, stored hashed, revocable, and used as Bearer keys."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from crm.models import ApiToken
from tests.api_client import error_of, ids, token_client
from tests.factories import LeadFactory

TOKENS = "/api/v1/tokens/"


def test_created_key_is_shown_once_and_stored_only_as_a_hash(rep):
    # Given a rep signed in through the browser session
    client = APIClient()
    client.force_login(rep)

    # When they create a token
    response = client.post(TOKENS, {"name": "CLI"}, format="json")

    # Then the key is in the answer, and only its hash and prefix are stored
    assert response.status_code == 201
    key = response.json()["key"]
    token = ApiToken.objects.get(pk=response.json()["id"])
    assert token.user == rep
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(token.prefix)
    assert key not in {token.prefix, token.key_hash, token.name}
    # and it is never shown again
    assert "key" not in client.get(f"{TOKENS}{token.pk}/").json()
    assert all("key" not in row for row in client.get(TOKENS).json()["results"])


def test_created_key_authenticates_as_its_user(rep):
    client = APIClient()
    client.force_login(rep)
    key = client.post(TOKENS, {"name": "CLI"}, format="json").json()["key"]
    own = LeadFactory(owner=rep)

    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = bearer.get("/api/v1/leads/")

    assert ids(response) == [own.pk]


def test_token_needs_a_name(rep):
    response = token_client(rep).post(TOKENS, {"name": ""}, format="json")

    assert response.status_code == 400
    assert "name" in error_of(response)["fields"]


def test_revoked_token_is_refused(rep):
    # Given a token that works
    token, key = ApiToken.objects.issue(user=rep, name="old")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/leads/").status_code == 200

    # When its owner revokes it
    response = client.post(f"{TOKENS}{token.pk}/revoke/")

    # Then it is marked revoked and answers 401 from then on
    assert response.status_code == 200
    assert response.json()["revoked"] is True
    refused = client.get("/api/v1/leads/")
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "authentication_failed"
    assert refused["WWW-Authenticate"].startswith("Bearer")


def test_unknown_key_is_refused(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer hl_not-a-real-key")

    response = client.get("/api/v1/leads/")

    assert response.status_code == 401


def test_key_of_a_deactivated_user_is_refused(rep):
    client = token_client(rep)
    rep.is_active = False
    rep.save(update_fields=["is_active"])

    assert client.get("/api/v1/leads/").status_code == 401


def test_last_use_is_recorded_at_most_once_a_minute(rep, django_assert_num_queries):
    token, key = ApiToken.objects.issue(user=rep, name="cli")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    # First use: recorded
    client.get(TOKENS)
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None

    # A second use within the minute writes nothing
    client.get(TOKENS)
    token.refresh_from_db()
    assert token.last_used_at == first

    # A use after a minute is recorded again, with one UPDATE
    ApiToken.objects.filter(pk=token.pk).update(
        last_used_at=timezone.now() - dt.timedelta(minutes=2)
    )
    token.refresh_from_db()
    with django_assert_num_queries(1) as captured:
        assert token.touch() is True
    assert captured.captured_queries[0]["sql"].startswith("UPDATE")
    token.refresh_from_db()
    assert token.last_used_at > first


def test_users_see_and_revoke_only_their_own_tokens(rep, other_rep):
    ApiToken.objects.issue(user=rep, name="mine")
    theirs, _ = ApiToken.objects.issue(user=other_rep, name="theirs")
    client = token_client(rep)

    listed = {row["name"] for row in client.get(TOKENS).json()["results"]}
    revoke = client.post(f"{TOKENS}{theirs.pk}/revoke/")

    assert "theirs" not in listed
    assert "mine" in listed
    assert revoke.status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_admin_lists_and_revokes_every_token(admin_user, rep):
    theirs, _ = ApiToken.objects.issue(user=rep, name="theirs")
    client = token_client(admin_user)

    listed = {row["name"] for row in client.get(TOKENS).json()["results"]}
    response = client.post(f"{TOKENS}{theirs.pk}/revoke/")

    assert "theirs" in listed
    assert response.status_code == 200
    theirs.refresh_from_db()
    assert theirs.revoked_at is not None


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Token abc"])
def test_malformed_authorization_is_refused_or_ignored(rep, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/v1/leads/")

    # A malformed Bearer header fails; another scheme is not ours and leaves the caller anonymous
    assert response.status_code == 401
    error_of(response)


def test_session_still_works_for_the_browser(rep):
    own = LeadFactory(owner=rep)
    client = APIClient()
    client.force_login(rep)

    assert ids(client.get("/api/v1/leads/")) == [own.pk]


def test_admin_revokes_tokens_in_the_django_admin(admin_user, rep, client):
    token, _ = ApiToken.objects.issue(user=rep, name="laptop")
    client.force_login(admin_user)

    listed = client.get("/admin/crm/apitoken/")
    response = client.post(
        "/admin/crm/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )

    assert listed.status_code == 200
    assert "laptop" in listed.content.decode()
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
