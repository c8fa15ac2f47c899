"""Racing form posts for one new email, on a real PostgreSQL server."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from leads.models import Activity, ActivityType, Lead, WebForm
from tests.test_concurrency_pg import race


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@override_settings(FORM_RATE_PER_IP=100, FORM_RATE_PER_FORM=100)
def test_twenty_simultaneous_posts_for_one_new_email_make_one_lead():
    # Given a form and twenty posts for a person not yet in the CRM, in several spellings
    form = WebForm.objects.create(name="Demo request")
    spellings = ["ada@fleet.example", "Ada@Fleet.example", "ADA@FLEET.EXAMPLE", "ada@FLEET.example"]

    def post(n: int):
        def job() -> int:
            body = {"email": spellings[n % 4], "first_name": f"Ada {n}"}
            response = Client().post(f"/f/{form.key}/", body, content_type="application/json")
            return response.status_code

        return job

    # When all twenty arrive at once
    outcomes = race(*(post(n) for n in range(20)))

    # Then every post was accepted, one lead exists, and each post left its activity
    assert outcomes == [202] * 20, outcomes
    lead = Lead.objects.get()
    assert lead.email == "ada@fleet.example"
    assert Activity.objects.filter(lead=lead, type=ActivityType.FORM_SUBMISSION).count() == 20
