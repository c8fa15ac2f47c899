import socket

from celery import shared_task
from django.utils import timezone

from .models import WorkerHeartbeat


@shared_task(ignore_result=True)
def record_heartbeat() -> None:
    """Beat sends this every few seconds; the worker that runs it proves both are alive."""
    WorkerHeartbeat.objects.update_or_create(
        hostname=socket.gethostname(), defaults={"beat_at": timezone.now()}
    )
