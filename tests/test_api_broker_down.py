"""Ingestion while Redis (broker and cache) is down: events are stored unscored, the
requests succeed, and the sweeper scores the events once Redis is back."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from crm.celery import app as celery_app
from crm.resilience import broker, shared_cache
from leads.models import Activity, Lead, TrackingKey, WebForm
from scoring.models import ProfileRescore, RescoreJob, RescoreStatus
from scoring.rescore_jobs import rescore_job_start, rescore_jobs_resume
from scoring.tasks import sweep_unscored
from tests.api_client import token_client
from tests.conftest import _drop_broker_pools
from tests.factories import LeadFactory, active_model, fit_rule, page_rule

UNREACHABLE = "redis://127.0.0.1:9/0"


@pytest.fixture
def broker_down(settings):
    """Redis, the broker and the cache as in production, cannot be reached.

    Only the address changes: the timeouts and retries are the settings' own.
    """
    overrides = {
        "broker_url": UNREACHABLE,
        "broker_transport_options": {"visibility_timeout": 3600, **settings.REDIS_SOCKET_OPTIONS},
        "task_always_eager": False,
    }
    saved = {name: getattr(celery_app.conf, name) for name in overrides}
    caches = settings.CACHES
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": UNREACHABLE,
            "KEY_PREFIX": caches["default"].get("KEY_PREFIX", ""),
            "OPTIONS": settings.REDIS_SOCKET_OPTIONS,
        }
    }
    celery_app.conf.update(overrides)
    _drop_broker_pools()

    def back() -> None:
        settings.CACHES = caches
        celery_app.conf.update(saved)
        _drop_broker_pools()
        # As once the few seconds this process leaves a failed Redis alone have passed.
        broker.reset()
        shared_cache.reset()

    yield back
    back()


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

    # When Redis is back and the sweeper runs a minute later
    broker_down()
    Activity.objects.update(received_at=timezone.now() - dt.timedelta(minutes=1))
    sweep_unscored.apply()

    lead.refresh_from_db()
    assert lead.score == 25
    assert not Activity.objects.filter(lead=lead, scored_at__isnull=True).exists()
    assert Lead.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_browser_form_post_is_stored_and_redirected_while_redis_is_down(
    default_events, broker_down
):
    # Given a form with a thank-you page, and Redis (broker and cache) down
    form = WebForm.objects.create(
        name="Demo",
        field_mapping={"email": "email"},
        redirect_url="https://x.example/thanks",
    )

    # When a browser posts it, as an HTML form does
    response = Client().post(f"/f/{form.key}/", {"email": "ada@x.example"})

    # Then it is redirected as usual and the submission waits to be scored
    assert response.status_code == 303
    assert response["Location"] == "https://x.example/thanks"
    lead = Lead.objects.get(email="ada@x.example")
    assert Activity.objects.filter(lead=lead, scored_at__isnull=True).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_repeated_idempotency_key_creates_once_while_redis_is_down(
    rep, default_events, broker_down
):
    lead = LeadFactory(owner=rep)
    client = token_client(rep)
    body = {"lead": lead.pk, "type": "page_view", "url": "https://x.example/pricing"}

    # When a client sends the same create twice with one key while Redis is down
    first = client.post("/api/v1/activities/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post("/api/v1/activities/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    # Then the second answer replays the first and one activity is stored
    assert first.status_code == 201, first.content
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Activity.objects.filter(lead=lead).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_rescore_requested_while_the_broker_is_down_runs_once_it_is_back(
    rep, default_events, broker_down
):
    # Given a lead worth 25 under a new rule, and a rescore requested while Redis is down
    model = active_model()
    lead = LeadFactory(owner=rep)
    Activity.objects.create(lead=lead, type="page_view", url="https://x.example/pricing")
    page_rule(model, 25, "/pricing")
    with transaction.atomic():
        job = rescore_job_start(model=model, reason="New rule")
    assert RescoreJob.objects.get(pk=job.pk).status == RescoreStatus.QUEUED

    # When Redis is back and beat's sweeper runs after the job has waited a while
    broker_down()
    later = timezone.now() + dt.timedelta(minutes=10)
    assert rescore_jobs_resume(now=later) == 1

    # Then the job ran, once
    assert RescoreJob.objects.get(pk=job.pk).status == RescoreStatus.DONE
    lead.refresh_from_db()
    assert lead.score == 25
    assert rescore_jobs_resume(now=later) == 0


@pytest.mark.django_db(transaction=True)
def test_a_lead_changed_while_the_broker_is_down_is_rescored_by_the_sweeper(
    rep, default_events, broker_down
):
    # Given a fit rule for CTOs and a lead that is none yet
    fit_rule(active_model(), 20, "job_title", "contains", "CTO")
    lead = LeadFactory(owner=rep, job_title="Engineer")

    # When the lead becomes a CTO through the API while Redis is down
    response = token_client(rep).patch(
        f"/api/v1/leads/{lead.pk}/", {"job_title": "CTO"}, format="json"
    )

    # Then the change is saved, its rescore waiting for the broker
    assert response.status_code == 200, response.content
    lead.refresh_from_db()
    assert (lead.job_title, lead.score) == ("CTO", 0)
    assert ProfileRescore.objects.filter(lead=lead).exists()

    # And once Redis is back, beat's sweeper rescores it, once
    broker_down()
    ProfileRescore.objects.update(requested_at=timezone.now() - dt.timedelta(minutes=1))
    sweep_unscored.apply()
    lead.refresh_from_db()
    assert lead.score == 20
    assert not ProfileRescore.objects.exists()
