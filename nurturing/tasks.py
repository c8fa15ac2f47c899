"""Celery tasks of nurturing: thin wrappers over its services.

``send_message`` runs on the email queue (``CELERY_TASK_ROUTES``); beat runs
``process_due``, ``enroll_matching`` and ``resume_stalled`` (``CELERY_BEAT_SCHEDULE``).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError as DatabaseOperationalError

from .due_steps import enrollments_process_due
from .enrollment import lead_sync, sequences_enroll_matching
from .sending import TransientSendError, message_send, messages_resume_stalled

logger = logging.getLogger(__name__)

SEND_RETRIES = 8


def send_backoff(retries: int) -> int:
    """Seconds before retry ``retries + 1``: 30 s doubling, at most an hour."""
    return min(30 * 2**retries, 3600)


@shared_task(bind=True, max_retries=SEND_RETRIES, ignore_result=True)
def send_message(self, message_id: int) -> str:
    """Send one nurture message, at most once; transient SMTP errors retry with backoff,
    and the last attempt records the failure instead."""
    final = self.request.retries >= self.max_retries
    try:
        return message_send(message_id=message_id, final_attempt=final)
    except TransientSendError as exc:
        raise self.retry(exc=exc, countdown=send_backoff(self.request.retries)) from exc


@shared_task(ignore_result=True)
def process_due() -> int:
    """Beat: run every due step of every active enrollment."""
    handled = enrollments_process_due()
    if handled:
        logger.info("Handled %s due nurture steps", handled)
    return handled


@shared_task(autoretry_for=(DatabaseOperationalError,), retry_backoff=True, max_retries=5)
def sync_lead(lead_id: int) -> bool:
    """Move one lead to the nurture track its band and stage call for."""
    return lead_sync(lead_id=lead_id) is not None


@shared_task(autoretry_for=(DatabaseOperationalError,), retry_backoff=True, max_retries=5)
def sync_leads(lead_ids: list[int]) -> int:
    """Move each of these leads to the nurture track its band and stage call for, each in
    a transaction of its own (a retry syncs them all again, which changes nothing for
    those already in line); how many were put on a new track."""
    return sum(lead_sync(lead_id=lead_id) is not None for lead_id in lead_ids)


@shared_task(ignore_result=True)
def enroll_matching() -> int:
    """Beat: enroll matching leads that are on no automatic track yet."""
    return sequences_enroll_matching()


@shared_task(ignore_result=True)
def resume_stalled() -> int:
    """Beat: queue again the messages whose task message was lost."""
    return messages_resume_stalled()
