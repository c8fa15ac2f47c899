"""Celery tasks of the leads app: thin wrappers over its services."""

from __future__ import annotations

import logging
from smtplib import SMTPException

from celery import shared_task
from django.conf import settings
from django.db import OperationalError as DatabaseOperationalError

from . import handoff_assignment
from .company_duplicates import company_duplicates_scan
from .duplicates import duplicates_scan
from .export_jobs import export_job_run, export_jobs_sweep
from .handoff_escalation import handoffs_escalate_overdue
from .notifications import notification_email_send, notifications_email_resume
from .tracking_ingest import pending_events_purge

logger = logging.getLogger(__name__)


@shared_task
def purge_pending_events() -> int:
    """Drop tracking events whose sender was never linked to a lead within 30 days."""
    deleted = pending_events_purge()
    if deleted:
        logger.info("Purged %s pending tracking events", deleted)
    return deleted


@shared_task
def scan_duplicates() -> dict[str, int]:
    """Beat, nightly: compare the leads, then the companies, changed since the last scan
    with everyone and queue the likely duplicates for review."""
    result = duplicates_scan()
    companies = company_duplicates_scan()
    logger.info(
        "Duplicate scan: %s leads compared, %s pairs (%s new); %s companies compared, "
        "%s pairs (%s new)",
        result.leads,
        result.pairs,
        result.new_pairs,
        companies.companies,
        companies.pairs,
        companies.new_pairs,
    )
    return {
        "leads": result.leads,
        "pairs": result.pairs,
        "new_pairs": result.new_pairs,
        "companies": companies.companies,
        "company_pairs": companies.pairs,
        "new_company_pairs": companies.new_pairs,
    }


# --- Hand-off -------------------------------------------------------------------------


@shared_task(autoretry_for=(DatabaseOperationalError,), retry_backoff=True, max_retries=5)
def handoff_assign(handoff_id: int) -> bool:
    """Assign, task and notify one hand-off; repeated runs do nothing more."""
    return handoff_assignment.handoff_assign(handoff_id=handoff_id) is not None


@shared_task
def handoff_escalate_overdue() -> int:
    """Beat: escalate the hand-offs past their SLA to the owners' managers."""
    escalated = handoffs_escalate_overdue()
    if escalated:
        logger.info("Escalated %s overdue hand-offs", escalated)
    return escalated


@shared_task
def handoff_resume_stalled() -> int:
    """Beat: queue again the hand-offs whose assignment message was lost."""
    return handoff_assignment.handoffs_resume_stalled()


@shared_task
def notification_email_resume() -> int:
    """Beat: queue again the notification emails whose message was lost."""
    return notifications_email_resume()


@shared_task(
    autoretry_for=(SMTPException, OSError),
    retry_backoff=30,
    retry_backoff_max=3600,
    max_retries=8,
)
def send_notification_email(notification_id: int) -> bool:
    """Email one notification, once."""
    return notification_email_send(notification_id=notification_id)


# --- Exports --------------------------------------------------------------------------


@shared_task(
    ignore_result=True,
    acks_late=True,
    soft_time_limit=settings.EXPORT_TIME_LIMIT,
    time_limit=settings.EXPORT_TIME_LIMIT + 60,
)
def export_run(job_id: int) -> None:
    """Write a queued export's file (a job already claimed, or gone, is a no-op)."""
    export_job_run(job_id=job_id)


@shared_task(ignore_result=True)
def export_sweep() -> dict[str, int]:
    """Beat: queue again exports whose message was lost, start over those whose worker
    died, and delete files past their keeping time."""
    return export_jobs_sweep()
