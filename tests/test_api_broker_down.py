"""Ingestion while the broker is down: events are stored unscored, and the sweeper scores them."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from crm.celery import app as celery_app
from leads.models import Activity, Lead, TrackingKey, WebForm
from scoring.tasks import sweep_unscored
from tests.api_client import token_client
from tests.conftest import _drop_broker_pools
from tests.factories import LeadFactory, active_model, page_rule

UNREACHABLE = "redis://127.0.0.1:9/0"


@pytest.fixture
def broker_down():
    """Tasks are sent to a broker nobody listens on, without retrying."""
    overrides = {
        "broker_url": UNREACHABLE,
        "task_always_eager": False,
        "task_publish_retry": False,
        "broker_connection_retry": False,
        "broker_connection_timeout": 1,
        "broker_transport_options": {"max_retries": 0},
    }
    saved = {name: getattr(celery_app.conf, name) for name in overrides}
    celery_app.conf.update(overrides)
    _drop_broker_pools()
    yield
    celery_app.conf.update(saved)
    _drop_broker_pools()


def post_activity(rep, lead):
    return token_client(rep).post(
        "/api/v1/activities/",
        {"lead": lead.pk, "type": "page_view", "url": "https://x.example/pricing"},
        format="json",
    )


def post_form(lead):
    form = WebForm.objects.create(name="Demo", field_mapping={"email": "email"})
    return Client().post(f"/f/{form.key}/", {"email": lead.email}, content_type="application/json")


def post_tracking(lead):
    _, key = TrackingKey.objects.issue(name="Website")
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    body = {"type": "page", "userId": "u-1", "properties": {"url": "https://x.example/pricing"}}
    Client().post(
        "/v1/identify",
        {"userId": "u-1", "traits": {"email": lead.email}},
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
    )
    return Client().post("/v1/page", body, content_type="application/json", HTTP_AUTHORIZATION=auth)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("send", "status"),
    [
        (lambda rep, lead: post_activity(rep, lead), 201),
        (lambda rep, lead: post_form(lead), 202),
        (lambda rep, lead: post_tracking(lead), 200),
    ],
    ids=["api", "form", "tracking"],
)
def test_events_are_stored_unscored_while_the_broker_is_down(
    rep, default_events, broker_down, send, status
):
    # Given a lead and a rule the event will match, and a broker that cannot be reached
    page_rule(active_model(), 25, "/pricing")
    lead = LeadFactory(owner=rep)

    # When an event arrives
    response = send(rep, lead)

    # Then it is accepted and stored, waiting to be scored
    assert response.status_code == status, response.content
    activity = Activity.objects.filter(lead=lead).latest("id")
    assert activity.scored_at is None


@pytest.mark.django_db(transaction=True)
def test_sweeper_scores_what_was_stored_while_the_broker_was_down(rep, default_events, broker_down):
    page_rule(active_model(), 25, "/pricing")
    lead = LeadFactory(owner=rep)
    assert post_activity(rep, lead).status_code == 201

    # When the broker is back and the sweeper runs a minute later (the queued-drain
    # marker of the lost message has expired by then)
    celery_app.conf.task_always_eager = True
    cache.clear()
    Activity.objects.update(received_at=timezone.now() - dt.timedelta(minutes=1))
    sweep_unscored.apply()

    lead.refresh_from_db()
    assert lead.score == 25
    assert not Activity.objects.filter(lead=lead, scored_at__isnull=True).exists()
    assert Lead.objects.count() == 1
