import socket

from celery import shared_task
from django.utils import timezone

from . import webhooks
from .models import IdempotentRequest, WorkerHeartbeat


@shared_task(ignore_result=True)
def record_heartbeat() -> None:
    """Beat sends this every few seconds; the worker that runs it proves both are alive."""
    WorkerHeartbeat.objects.update_or_create(
        hostname=socket.gethostname(), defaults={"beat_at": timezone.now()}
    )


@shared_task(ignore_result=True)
def purge_idempotent_requests() -> int:
    """Forget answers to Idempotency-Keys older than a day; how many were."""
    deleted, _ = IdempotentRequest.objects.expired().delete()
    return deleted


@shared_task(ignore_result=True)
def webhook_deliver(delivery_id: int) -> None:
    """Make one attempt at a webhook delivery (a no-op unless it is due and unclaimed)."""
    webhooks.webhook_deliver(delivery_id=delivery_id)


@shared_task(ignore_result=True)
def webhook_retry_due() -> int:
    """Beat's sweeper: queue the deliveries whose next attempt is due, lost messages too."""
    return webhooks.webhook_retry_due()
