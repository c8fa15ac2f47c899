"""Celery tasks of the leads app: thin wrappers over its services."""

from __future__ import annotations

import logging

from celery import shared_task

from .tracking import pending_events_purge

logger = logging.getLogger(__name__)


@shared_task
def purge_pending_events() -> int:
    """Drop tracking events whose sender was never linked to a lead within 30 days."""
    deleted = pending_events_purge()
    if deleted:
        logger.info("Purged %s pending tracking events", deleted)
    return deleted
