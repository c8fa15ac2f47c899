"""Racing tracking calls for one new person, on a real PostgreSQL server."""

from __future__ import annotations

import pytest
from django.test import Client

from leads.models import IdentityKind, Lead, TrackingIdentity, TrackingKey
from tests.test_concurrency_pg import race
from tests.tracking_client import send


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_identifies_for_one_new_email_make_one_lead():
    # Given twenty identify calls for a person not yet in the CRM, from several devices
    _, secret = TrackingKey.objects.issue(name="Website")
    spellings = ["ada@fleet.example", "Ada@Fleet.example", "ADA@FLEET.EXAMPLE", "ada@FLEET.example"]

    def identify(n: int):
        def job() -> int:
            body = {
                "userId": "u-1",
                "anonymousId": f"device-{n}",
                "traits": {"email": spellings[n % 4], "firstName": f"Ada {n}"},
            }
            return send(Client(), "identify", body, key=secret).status_code

        return job

    # When all twenty arrive at once
    outcomes = race(*(identify(n) for n in range(20)))

    # Then every call succeeded, one lead exists and every id points to it
    assert outcomes == [200] * 20, outcomes
    lead = Lead.objects.get()
    assert lead.email == "ada@fleet.example"
    identities = TrackingIdentity.objects.all()
    assert {i.lead_id for i in identities} == {lead.pk}
    assert identities.filter(kind=IdentityKind.USER_ID).count() == 1
    assert identities.filter(kind=IdentityKind.ANONYMOUS_ID).count() == 20
