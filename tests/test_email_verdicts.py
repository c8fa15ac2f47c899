"""One verdict on an email address, whichever way it arrives: the public web form, the
REST API, a tracking call and the lead admin's form all take or refuse it alike, and
refuse it in the same words (``leads.profiles.email_error``, on Django's
``validate_email``)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory

from leads.models import Lead, TrackingKey, WebForm
from leads.profiles import email_error
from tests.api_client import error_of, token_client
from tests.tracking_client import send


def _long(length: int) -> str:
    """A well-formed address of ``length`` characters (64 before the @, labels of at
    most 63)."""
    filler = length - 64 - 1 - len(f"{'b' * 63}.{'c' * 63}..example")
    return f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * filler}.example"


ADDRESSES = {
    "internationalized domain": ("ada@bücher.example", True),
    "punycode domain": ("ada@xn--bcher-kva.example", True),
    "non-ASCII mailbox name": ("zoë@fleet.example", False),
    "254 characters": (_long(254), True),
    "255 characters": (_long(255), False),
    "no domain dot (Django allows localhost)": ("ada@localhost", True),
    "domain without a dot": ("ada@fleet", False),
    "two @": ("ada@@fleet.example", False),
    "blanks and capitals": ("  Ada@Fleet.Example ", True),
}


@pytest.fixture
def web_form(db) -> WebForm:
    return WebForm.objects.create(name="Demo", field_mapping={"email": "email"})


@pytest.fixture
def write_key(default_events) -> str:
    return TrackingKey.objects.issue(name="Website")[1]


def _web_form(form: WebForm, email: str) -> tuple[bool, str]:
    response = Client().post(f"/f/{form.key}/", {"email": email}, content_type="application/json")
    if response.status_code == 202:
        return True, ""
    assert response.status_code == 400, response.content
    return False, error_of(response)["fields"]["email"][0]


def _api(user, email: str) -> tuple[bool, str]:
    response = token_client(user).post("/api/v1/leads/", {"email": email}, format="json")
    if response.status_code == 201:
        return True, ""
    assert response.status_code == 400, response.content
    return False, error_of(response)["fields"]["email"][0]


def _tracking(key: str, email: str) -> tuple[bool, str]:
    body = {"userId": "u-1", "traits": {"email": email}}
    response = send(Client(), "identify", body, key=key)
    if response.status_code == 200:
        return True, ""
    assert response.status_code == 400, response.content
    return False, response.content.decode()


def _admin(user, email: str) -> tuple[bool, str]:
    request = RequestFactory().get("/admin/leads/lead/add/")
    request.user = user
    form = admin.site._registry[Lead].get_form(request)(data={"email": email})
    form.is_valid()
    errors = form.errors.get("email")
    return (False, errors[0]) if errors else (True, "")


@pytest.mark.parametrize(("email", "valid"), ADDRESSES.values(), ids=ADDRESSES)
def test_every_surface_gives_the_same_verdict_in_the_same_words(
    email, valid, web_form, write_key, admin_user
):
    why = email_error(email.strip().lower())
    assert (not why) == valid

    verdicts = {}
    for surface, check in [
        ("web form", lambda: _web_form(web_form, email)),
        ("api", lambda: _api(admin_user, email)),
        ("admin", lambda: _admin(admin_user, email)),
    ]:
        verdicts[surface] = check()
        # Each surface meets the address new, not taken by the one before.
        assert Lead.objects.filter(email=email.strip().lower()).exists() == (
            valid and surface != "admin"
        )
        Lead.objects.all().delete()
    tracked, tracking_says = _tracking(write_key, email)

    assert verdicts == {surface: (valid, why) for surface in verdicts}
    assert tracked == valid
    assert why in tracking_says
