import socket

from celery import shared_task
from django.utils import timezone

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
