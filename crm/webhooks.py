"""Outgoing team webhooks: signed JSON posts of hand-off events, retried with backoff.

``webhook_event`` stores one ``WebhookDelivery`` per subscribed webhook (the row is the
outbox) and queues it once the transaction commits; ``webhook_deliver`` claims the row,
posts it and records the outcome. Beat runs ``webhook_retry_due``, which queues every
delivery whose next attempt is due, so a lost message delays a delivery but never loses
it. ``docs/WEBHOOKS.md`` describes the requests a receiver gets and how to verify them.

The requests go out through ``crm.webhook_http``, to an address checked just before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import (
    DeliveryStatus,
    Team,
    TeamWebhook,
    WebhookDelivery,
    WebhookDeliveryQuerySet,
    WebhookEvent,
)
from .resilience import task_enqueue
from .webhook_http import (
    REQUEST_SECONDS,
    Attempt,
    WebhookURLError,
    webhook_post,
    webhook_url_check,
)

log = logging.getLogger(__name__)

USER_AGENT = "Hotlist-Webhooks/1"
# Waits after the 1st, 2nd, … failed attempt; after the last one the delivery fails.
RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# A claimed delivery is left alone this long: the request's limit and a margin for
# resolving the host and recording the outcome. So only a sender that died loses its
# claim, and the delivery it held is retried about half a minute later, not after the
# task's time limit.
LOCK_DURATION = timedelta(seconds=REQUEST_SECONDS + 10)
# Deliveries queued by one run of the retry sweeper; the rest wait for the next run.
RETRY_BATCH = 500


# --- Announcing an event -------------------------------------------------------------


def webhook_event(
    *, team: Team | None, event: str, key: str, payload: dict[str, Any]
) -> list[WebhookDelivery]:
    """Store ``payload`` for each of the team's active webhooks taking ``event``, and
    queue the sending once the current transaction commits.

    ``key`` names the occurrence (``handoff.assigned:42``): announcing it again, from a
    retried task or a second worker, finds the stored delivery instead of adding one.
    ``payload`` must be JSON-ready (dates as ISO strings). Returns the deliveries.
    """
    if team is None:
        return []
    deliveries = []
    for webhook in TeamWebhook.objects.subscribed(team=team, event=event):
        delivery, created = WebhookDelivery.objects.get_or_create(
            webhook=webhook,
            key=key,
            defaults={"event": event, "payload": payload, "next_attempt_at": timezone.now()},
        )
        if created:
            transaction.on_commit(partial(webhook_delivery_enqueue, delivery_id=delivery.pk))
        deliveries.append(delivery)
    return deliveries


def webhook_delivery_enqueue(*, delivery_id: int) -> bool:
    """Queue the sending of a stored delivery; call after commit.

    When the broker cannot be reached the delivery stays pending and the retry sweeper
    queues it once the broker is back. Returns whether it was queued.
    """
    return task_enqueue(
        "crm.tasks.webhook_deliver", delivery_id, what=f"Webhook delivery {delivery_id}"
    )


def webhook_retry_due(*, now: datetime | None = None) -> int:
    """Queue the deliveries whose next attempt is due; how many were queued.

    A delivery queued twice is sent once: ``webhook_deliver`` claims it first.
    """
    now = now or timezone.now()
    ids = list(
        WebhookDelivery.objects.due(now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:RETRY_BATCH]
    )
    for delivery_id in ids:
        webhook_delivery_enqueue(delivery_id=delivery_id)
    return len(ids)


def webhook_retry_now(*, deliveries: WebhookDeliveryQuerySet) -> int:
    """Make the given deliveries due now (failed ones get one more attempt) and queue
    them after commit. Delivered ones, and ones a worker is sending, are left alone."""
    now = timezone.now()
    retryable = deliveries.exclude(status=DeliveryStatus.DELIVERED).unlocked(now)
    ids = list(retryable.values_list("pk", flat=True))
    # A worker claiming one of them meanwhile keeps its claim: only the claim sends.
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=DeliveryStatus.PENDING, next_attempt_at=now
    )
    for delivery_id in ids:
        transaction.on_commit(partial(webhook_delivery_enqueue, delivery_id=delivery_id))
    return len(ids)


def webhook_test_send(*, webhook: TeamWebhook) -> WebhookDelivery:
    """Post a test event to the webhook now, once (no retries); the delivery with its
    outcome. Works for an inactive webhook too, to try it before switching it on."""
    now = timezone.now()
    delivery = WebhookDelivery.objects.create(
        webhook=webhook,
        event=WebhookEvent.TEST,
        key=f"{WebhookEvent.TEST}:{uuid.uuid4().hex}",
        payload={
            "event": str(WebhookEvent.TEST),
            "occurred_at": now.isoformat(),
            "text": f"Test event from Hotlist for the webhook “{webhook.name}” of {webhook.team}.",
            "team": {"id": webhook.team_id, "name": webhook.team.name},
            "webhook": {"id": webhook.pk, "name": webhook.name},
        },
        next_attempt_at=now,
    )
    webhook_deliver(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


# --- Sending -----------------------------------------------------------------------


def webhook_deliver(*, delivery_id: int) -> WebhookDelivery | None:
    """Make one attempt at a due delivery and record it; None when nothing was due.

    Safe to call any number of times from any number of workers: a conditional UPDATE
    claims the row (``locked_until``, one more attempt) before the request, so a
    duplicate message, a second worker or an early retry finds nothing to do. The claim
    is a short statement rather than a row lock held during the request, so no
    transaction (on SQLite: the database's write lock) stays open while the receiver
    answers. A 2xx answer delivers; anything else waits ``RETRY_DELAYS`` and tries
    again, up to ``MAX_ATTEMPTS`` attempts, then the delivery has failed.
    """
    now = timezone.now()
    claimed = (
        WebhookDelivery.objects.due(now)
        .filter(pk=delivery_id)
        .update(locked_until=now + LOCK_DURATION, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    if delivery.webhook.active or delivery.event == WebhookEvent.TEST:
        attempt = _post(delivery)
    else:
        attempt = Attempt(error="The webhook is switched off.")
    _record(delivery, attempt)
    return delivery


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>`` keyed with the secret."""
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_request(*, delivery: WebhookDelivery, timestamp: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the POST for a delivery, signed with its webhook's secret."""
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Hotlist-Event": delivery.event,
        "X-Hotlist-Delivery": str(delivery.pk),
        "X-Hotlist-Timestamp": timestamp,
        "X-Hotlist-Signature": webhook_signature(
            secret=delivery.webhook.secret, timestamp=timestamp, body=body
        ),
    }
    return body, headers


def _post(delivery: WebhookDelivery) -> Attempt:
    try:
        addresses = webhook_url_check(delivery.webhook.url)
    except WebhookURLError as exc:
        return Attempt(error=str(exc))
    body, headers = webhook_request(delivery=delivery, timestamp=str(int(time.time())))
    return webhook_post(delivery.webhook.url, addresses=addresses, body=body, headers=headers)


def _record(delivery: WebhookDelivery, attempt: Attempt) -> None:
    """Store the attempt's outcome, unless another worker claimed the row meanwhile."""
    now = timezone.now()
    changes: dict[str, Any] = {
        "last_status_code": attempt.status_code,
        "last_error": attempt.error,
        "locked_until": None,
    }
    limit = 1 if delivery.event == WebhookEvent.TEST else MAX_ATTEMPTS
    if attempt.ok:
        changes.update(status=DeliveryStatus.DELIVERED, delivered_at=now)
    elif delivery.attempts >= limit:
        changes.update(status=DeliveryStatus.FAILED)
    else:
        changes.update(next_attempt_at=now + RETRY_DELAYS[delivery.attempts - 1])
    WebhookDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts).update(**changes)
    for name, value in changes.items():
        setattr(delivery, name, value)
    if not attempt.ok:
        log.warning(
            "Webhook delivery %s, attempt %s: %s", delivery.pk, delivery.attempts, attempt.error
        )
