"""Team webhooks under concurrency (PostgreSQL) and through a real Celery worker."""

from __future__ import annotations

import pytest

from crm import webhooks
from crm.models import DeliveryStatus, TeamWebhook, WebhookDelivery
from leads.models import HandOff, Stage
from leads.stages import lead_move_to_stage
from tests.factories import LeadFactory
from tests.test_concurrency_pg import race
from tests.test_webhooks import expected_signature, running_receiver
from tests.test_worker import wait_for


@pytest.fixture(autouse=True)
def _webhook_settings(settings) -> None:
    settings.WEBHOOK_ALLOW_LOCALHOST = True
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    settings.SITE_URL = "https://crm.example.com"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_sending_one_delivery_post_it_once(team):
    with running_receiver() as receiver:
        # Given a stored delivery and a receiver that takes its time to answer
        receiver.delay = 0.5
        webhook = TeamWebhook.objects.create(team=team, name="#sales", url=receiver.url)
        delivery = WebhookDelivery.objects.create(
            webhook=webhook, event="handoff.assigned", key="handoff.assigned:1", payload={"n": 1}
        )

        # When two workers and beat's sweeper pick it up at the same moment
        def send():
            return webhooks.webhook_deliver(delivery_id=delivery.pk)

        outcomes = race(send, send, webhooks.webhook_retry_due, send)

    # Then one of them posted it, once; the others found it claimed or delivered. The
    # sweeper's queued send runs at once here (tasks are eager), so it may be the one.
    assert len(receiver.requests) == 1
    first, second, swept, third = outcomes
    sends = [first, second, third]
    delivered_by_a_worker = [type(o).__name__ for o in sends].count("WebhookDelivery")
    assert delivered_by_a_worker + sends.count(None) == 3
    assert delivered_by_a_worker == 1 or swept == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_event_announced_by_two_workers_at_once_is_stored_once(team):
    with running_receiver() as receiver:
        # Given a webhook
        TeamWebhook.objects.create(team=team, name="#sales", url=receiver.url)

        # When two workers announce the same hand-off at the same moment
        def announce():
            return webhooks.webhook_event(
                team=team, event="handoff.assigned", key="handoff.assigned:7", payload={"n": 7}
            )

        outcomes = race(announce, announce)

    # Then both find the one delivery, which was posted once
    assert not any(isinstance(o, Exception) for o in outcomes)
    assert {o[0].pk for o in outcomes} == set(WebhookDelivery.objects.values_list("pk", flat=True))
    assert WebhookDelivery.objects.count() == 1
    assert len(receiver.requests) == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_live_worker_posts_a_handoff_to_the_team_webhook(celery_worker_live, rep):
    with running_receiver() as receiver:
        # Given a rep's MQL lead and a webhook on the rep's team
        webhook = TeamWebhook.objects.create(team=rep.team, name="#sales", url=receiver.url)
        lead = LeadFactory(owner=rep, stage=Stage.MQL, first_name="Ada", last_name="Lovelace")

        # When the lead is moved to SQL and the worker runs the hand-off
        lead_move_to_stage(lead_id=lead.pk, stage=Stage.SQL, reason="Call booked")

        # Then the worker assigns it and posts the signed event to the webhook, once
        def delivered() -> bool:
            return WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).exists()

        assert wait_for(delivered), "no delivery within 20 s"
    handoff = HandOff.objects.get(lead=lead)
    (request,) = receiver.requests
    assert request.headers["X-Hotlist-Event"] == "handoff.assigned"
    assert request.headers["X-Hotlist-Signature"] == expected_signature(
        webhook.secret, request.headers, request.body
    )
    body = request.json()
    assert body["handoff"]["id"] == handoff.pk
    assert body["lead"]["url"] == f"https://crm.example.com/leads/{lead.pk}/"
    assert body["text"].startswith("Hand-off: Ada Lovelace")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.key, delivery.attempts) == (f"handoff.assigned:{handoff.pk}", 1)
